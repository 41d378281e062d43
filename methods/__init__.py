"""The compared methods and baselines, one module each, registered on import (one line each).

``methods`` may import the batch contract and sampling types from ``datamodules``, never
``cvbench``.
"""

from methods import iframe  # noqa: F401  (appearance-only baseline)
