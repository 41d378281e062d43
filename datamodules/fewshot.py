"""K-shot training lists: K videos per class, drawn by a seeded RNG.

The few-shot protocol of the temporal-prompt CLIP paper (Table 7, after X-CLIP):
"randomly select K samples from each category to construct a training dataset",
K in {2, 4, 8, 16}, tested on the full test split.

The draw is a function of (seed, class name, the class's video names) only: each class
draws from its own generator (seeded by the seed and a checksum of the class name) over
its videos sorted by name, so neither the order of the split files nor the other
classes change which videos a class keeps.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections import defaultdict

import numpy as np

from datamodules.datasets import VideoItem, VideoList
from datamodules.errors import CvbenchError

PAPER_SHOTS = (2, 4, 8, 16)  # the K values of the temporal-prompt CLIP paper's Table 7


class FewShotError(CvbenchError, ValueError):
    """A K-shot subset that cannot be drawn (a class with fewer than K videos)."""


def few_shot(videos: VideoList, shots: int, seed: int) -> VideoList:
    """``videos`` cut to ``shots`` videos per class (kept in name order), drawn with ``seed``.

    A class with fewer than ``shots`` videos is a :class:`FewShotError` naming the class.
    """
    by_label = _by_label(videos)
    check_shots(videos, shots)
    kept: list[VideoItem] = []
    for label, name in enumerate(videos.classes):
        items = sorted(by_label.get(label, []), key=lambda item: item.name)
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        chosen = sorted(rng.choice(len(items), size=shots, replace=False).tolist())
        kept += [items[i] for i in chosen]
    return dataclasses.replace(videos, items=tuple(kept))


def check_shots(videos: VideoList, shots: int) -> None:
    """A :class:`FewShotError` naming the smallest class and its count when ``videos`` has
    a class with fewer than ``shots`` videos (or ``shots`` < 1)."""
    if shots < 1:
        raise FewShotError(f"shots must be a positive number of videos per class, got {shots}")
    by_label = _by_label(videos)
    counts = [(len(by_label.get(label, [])), name) for label, name in enumerate(videos.classes)]
    count, name = min(counts, default=(0, "?"))
    if count < shots:
        raise FewShotError(
            f"{videos.dataset} split {videos.split} {videos.subset}: class {name!r} has "
            f"{count} videos, fewer than shots={shots}"
        )


def _by_label(videos: VideoList) -> dict[int, list[VideoItem]]:
    by_label: dict[int, list[VideoItem]] = defaultdict(list)
    for item in videos.items:
        by_label[item.label].append(item)
    return by_label
