"""Errors raised by the data layer: each names the file and the problem."""

from __future__ import annotations

from pathlib import Path


class VideoError(Exception):
    """A video that cannot be used, with the file and the cause in the message."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UnsupportedVideoError(VideoError):
    """A readable video in a format the compressed-domain reader refuses (H.264, B-frames, ...)."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(
            path,
            f"{problem}; re-encode it to MPEG-4 Part 2 with `cvbench prepare` "
            "(see README, 'Real datasets')",
        )


class DatasetLayoutError(Exception):
    """A dataset directory or split file that is missing or inconsistent."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
