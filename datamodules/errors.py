"""The suite's errors: each names the file, the setting or the name that is wrong.

:class:`CvbenchError` is the base of every error a user can fix (a name, a setting, a
file); ``cvbench`` prints its message as one line and exits 2, without a traceback. It
lives here, in the data layer's leaf module, so that ``datamodules``, ``methods`` and
``cvbench`` can all derive from it without importing one another. Each error also keeps
the built-in base its callers catch (``ValueError``, ``KeyError``, ...).
"""

from __future__ import annotations

from pathlib import Path


class CvbenchError(Exception):
    """A problem the user can fix, said in one line (``cvbench`` exits 2 on it)."""


class UnknownNameError(CvbenchError, KeyError):
    """A name a registry does not know (a method, a preset, a dataset); the message lists
    the known ones."""

    def __str__(self) -> str:  # KeyError's own quotes the message
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class DatasetOptionError(CvbenchError, TypeError, ValueError):
    """A dataset option a builder does not take, or a value it cannot use."""


class SplitError(CvbenchError, ValueError):
    """A split number the dataset does not have; the message names the dataset and its
    splits."""


class VideoError(CvbenchError):
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


class DatasetLayoutError(CvbenchError):
    """A dataset directory or split file that is missing or inconsistent."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
