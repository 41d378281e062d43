"""The compressed-video data layer: reader, cache, datasets, sampling, transforms.

Never imports ``methods`` or ``cvbench``. Dataset modules register themselves on import,
one per line below.
"""
