"""The on-disk cache: exact contents, resume, corruption and staleness."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from datamodules.cache import CacheCorruptError, VideoCache
from datamodules.contract import DataSpec, Modality
from datamodules.datamodule import read_kwargs, spec_key
from datamodules.reader import CompressedVideo
from datamodules.sampling import PAPER_SAMPLINGS, plan_test_views, plan_view


@pytest.fixture()
def video(tmp_path: Path, real_video: Path) -> Path:
    path = tmp_path / "v.m4v"
    path.write_bytes(real_video.read_bytes())
    return path


def _tcar_spec() -> DataSpec:
    sampling, modalities = PAPER_SAMPLINGS["tcar16"]
    return DataSpec(modalities=modalities, sampling=sampling)


def test_cached_samples_equal_stream_samples(tmp_path: Path, video: Path) -> None:
    spec = _tcar_spec()
    reader = CompressedVideo(video)
    plans = plan_test_views(spec.sampling, reader.gop, spec.modalities)
    key = spec_key(spec)
    cache = VideoCache(tmp_path / "cache")
    entry = cache.build(video, {key: plans}, {key: read_kwargs(spec)})
    assert entry.gop == reader.gop

    stream = reader.read(plans[0].iframes, plans[0].pframes)
    cached = entry.test_sample(key, 0)
    for name in ("iframe", "mv", "residual"):
        np.testing.assert_array_equal(getattr(cached, name), getattr(stream, name))

    # index tier: I-frames and accumulated MVs of any (training) plan, no decoding
    rng = np.random.default_rng(0)
    plan = plan_view(
        spec.sampling, reader.gop, True, rng, modalities=(Modality.IFRAME, Modality.MV)
    )
    from_index = VideoCache(tmp_path / "cache").load(video).read(plan.iframes, plan.pframes)
    stream = reader.read(plan.iframes, plan.pframes, residual=False)
    np.testing.assert_array_equal(from_index.iframe, stream.iframe)
    np.testing.assert_array_equal(from_index.mv, stream.mv)

    sizes = cache.size_bytes(video)
    assert sizes["index"] > 0 and sizes["test"] > sizes["index"]


def test_complete_entries_are_not_rebuilt(tmp_path: Path, video: Path, monkeypatch) -> None:
    cache = VideoCache(tmp_path / "cache")
    cache.build(video)
    calls = []
    monkeypatch.setattr(VideoCache, "_write_tmp", staticmethod(lambda *a: calls.append(a)))
    VideoCache(tmp_path / "cache").build(video)
    assert calls == []


def test_a_corrupt_entry_is_detected_deleted_and_rebuilt(tmp_path: Path, video: Path) -> None:
    cache = VideoCache(tmp_path / "cache")
    entry = cache.build(video)
    path = entry.directory / "mv_grids.npy"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte in the payload
    path.write_bytes(bytes(data))

    fresh = VideoCache(tmp_path / "cache")  # a new process hashes each file it reads
    with pytest.raises(CacheCorruptError, match="checksum"):
        fresh.load(video).array("mv_grids")
    assert fresh.discarded and "checksum" in fresh.discarded[0][1]
    assert not entry.directory.exists()
    rebuilt = fresh.build(video)
    assert fresh.load(video) is not None and rebuilt.directory.exists()
    assert fresh.summary()["rebuilt"] == {"checksum mismatch": 1}

    # the process that wrote (and so knows) the file re-hashes it once it changes
    path.write_bytes(bytes(data))
    assert cache.load(video, verify=True) is None


def test_a_truncated_array_is_detected(tmp_path: Path, video: Path) -> None:
    cache = VideoCache(tmp_path / "cache")
    entry = cache.build(video)
    path = entry.directory / "iframes.npy"
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    assert cache.load(video) is None  # sizes are checked on every open


def test_a_changed_source_makes_the_entry_stale(tmp_path: Path, video: Path) -> None:
    cache = VideoCache(tmp_path / "cache")
    cache.build(video)
    st = video.stat()
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cache.load(video) is not None  # touched, same bytes: still the same video
    data = bytearray(video.read_bytes())
    data[len(data) // 2] ^= 0xFF
    video.write_bytes(bytes(data))
    assert cache.load(video) is None
    assert "stale" in cache.discarded[0][1]


def test_interrupted_write_leaves_no_entry(tmp_path: Path, video: Path, monkeypatch) -> None:
    cache = VideoCache(tmp_path / "cache")

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(json, "dumps", boom)  # dies just before meta.json is written
    with pytest.raises(KeyboardInterrupt):
        cache.build(video)
    monkeypatch.undo()
    assert cache.load(video) is None
    leftovers = list((tmp_path / "cache").rglob("*"))
    assert all(p.is_dir() for p in leftovers), leftovers  # no stray temp files
    assert cache.build(video) is not None
