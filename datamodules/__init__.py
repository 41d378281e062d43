"""The compressed-video data layer: reader, cache, datasets, sampling, transforms.

Never imports ``methods`` or ``cvbench``. Dataset modules register themselves on import,
one per line below.
"""

from datamodules import (
    layouts,  # noqa: F401  (registers ucf101, hmdb51, folder)
    synthetic,  # noqa: F401  (registers synthetic)
)
