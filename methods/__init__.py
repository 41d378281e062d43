"""The compared methods and baselines, one module each, registered on import (one line each).

``methods`` may import the batch contract and sampling types from ``datamodules``, never
``cvbench``.
"""

from methods import (
    coviar,  # noqa: F401  (CoViAR: I/MV/R ResNet streams, 2:1:1 late fusion)
    cvpt,  # noqa: F401  (CVPT, NeurIPS 2023: prompt tuning of a frozen VideoMAE ViT)
    iframe,  # noqa: F401  (appearance-only baseline)
    meaci,  # noqa: F401  (MEACI-Net: I3D-R50 + CME two streams, SMC/CMA)
    stm,  # noqa: F401  (spiking temporal modulators + unified transformer, arXiv 2503.13724)
    tcar,  # noqa: F401  (TCAR-Net: frozen CLIP on I/MV/R + text-guided saliency)
    tpclip,  # noqa: F401  (temporal-prompt CLIP, Electronics 2024: frozen CLIP + reparameterized temporal prompts, EN+ZH labels, RGB)
)
