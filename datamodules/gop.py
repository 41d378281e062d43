"""GOP structure of an encoded video, indexed by the I-frames actually found."""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass


@dataclass(frozen=True)
class GopIndex:
    """Frame count and the frame index of every I-frame, in decoding (= display) order.

    Built from the packet key flags, never from ``frame // 12``: scene cuts, a short
    last GOP or another encoder's GOP length are all indexed as they are.
    """

    num_frames: int  # frames in the stream
    gop_starts: tuple[int, ...]  # frame index of each I-frame; gop_starts[0] == 0

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise ValueError("a GOP index needs at least one frame")
        if not self.gop_starts or self.gop_starts[0] != 0:
            raise ValueError("the first frame must be an I-frame")
        if any(b <= a for a, b in itertools.pairwise(self.gop_starts)):
            raise ValueError("I-frame indices must increase")
        if self.gop_starts[-1] >= self.num_frames:
            raise ValueError("an I-frame index lies past the last frame")

    @property
    def num_gops(self) -> int:
        return len(self.gop_starts)

    def gop_of(self, frame: int) -> int:
        """Index of the GOP that holds ``frame``."""
        if not 0 <= frame < self.num_frames:
            raise IndexError(f"frame {frame} outside 0..{self.num_frames - 1}")
        return bisect.bisect_right(self.gop_starts, frame) - 1

    def gop_start(self, gop: int) -> int:
        return self.gop_starts[gop]

    def gop_length(self, gop: int) -> int:
        end = self.gop_starts[gop + 1] if gop + 1 < self.num_gops else self.num_frames
        return end - self.gop_starts[gop]

    def gop_lengths(self) -> list[int]:
        return [self.gop_length(g) for g in range(self.num_gops)]

    def is_iframe(self, frame: int) -> bool:
        return self.gop_starts[self.gop_of(frame)] == frame
