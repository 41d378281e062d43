"""A cache that cannot lie (issue 11, item 3): tampering, a replaced source, racing
builders, a full disk, and the counts of every rebuild.

Every check compares what the dataset serves with what the stream gives: an entry that
fails a check is rebuilt, never served, and never raises.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cvbench.cli import main
from cvbench.commands.data import _cache_line
from datamodules import cache as cache_module
from datamodules.cache import (
    CHECKSUM,
    CORRUPT_META,
    MISSING_FILE,
    OLD_FORMAT,
    STALE_SOURCE,
    TEST_TIER,
    WRONG_SIZE,
    CacheCorruptError,
    VideoCache,
    meta_checksum,
)
from datamodules.contract import DataSpec
from datamodules.datamodule import CompressedVideoDataset, _cache_one, spec_key
from datamodules.datasets import VideoItem
from datamodules.sampling import PAPER_SAMPLINGS
from datamodules.synthetic import SyntheticConfig, generate

SPEC = DataSpec(*reversed(PAPER_SAMPLINGS["tcar16"]), size=32)  # I-frames, MVs, residuals
KEY = spec_key(SPEC)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A class-per-folder tree of 3 x 2 small generated videos (64x80, 30 frames)."""
    config = SyntheticConfig(num_classes=3, videos_per_class=2, frames=30, size=(64, 80))
    return generate(config, tmp_path_factory.mktemp("tiny"), workers=1, progress=False)


@pytest.fixture(scope="module")
def pristine(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(video, cache root with its complete entry), copied by each test that tampers."""
    video = tmp_path_factory.mktemp("video") / "v.m4v"
    shutil.copyfile(sorted(tiny.rglob("*.m4v"))[0], video)
    root = video.parent / "pristine"
    assert _cache_one((str(root), str(video), SPEC)) == (
        None,
        {"built": 1, "rebuilt": {}, "write_failures": 0},
    )
    return video, root


@pytest.fixture()
def entry(pristine: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path, Path]:
    """(video, cache root, entry directory): a fresh copy of the pristine entry."""
    video, root = pristine
    shutil.copytree(root, tmp_path / "cache")
    cache = VideoCache(tmp_path / "cache")
    return video, cache.root, cache.entry_dir(video)


def tier_args(video: Path, key: str = KEY) -> tuple[dict, dict]:
    """``VideoCache.build``'s test-tier arguments for SPEC under ``key``."""
    from datamodules.datamodule import _select, read_kwargs
    from datamodules.reader import CompressedVideo
    from datamodules.sampling import SamplePlan, plan_test_views

    gop = CompressedVideo(video).gop
    plans = [
        SamplePlan(**_select(p, SPEC)) for p in plan_test_views(SPEC.sampling, gop, SPEC.modalities)
    ]
    return {key: plans}, {key: read_kwargs(SPEC)}


def served(video: Path, cache: VideoCache | None) -> dict[str, torch.Tensor]:
    """The dataset's test sample (view 0) of ``video``, from ``cache`` or the stream."""
    data = CompressedVideoDataset([VideoItem(video, 0, video.name)], SPEC, False, cache)
    return {k: v for k, v in data[0].items() if isinstance(v, torch.Tensor)}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def assert_rebuilt(video: Path, root: Path, cause: str) -> None:
    """Never served (the sample is the stream's), then rebuilt for ``cause``, then served."""
    stream = served(video, None)
    assert_same(served(video, VideoCache(root)), stream)  # a new process: the stream's
    problem, counts = _cache_one((str(root), str(video), SPEC))
    assert problem is None
    assert counts == {"built": 0, "rebuilt": {cause: 1}, "write_failures": 0}, counts
    cache = VideoCache(root)
    assert cache.load(video, verify=True).has_test(KEY)
    assert_same(served(video, cache), stream)


# --------------------------------------------------------------------------- meta.json


def _edit_meta(edit):
    def tamper(directory: Path) -> None:
        path = directory / "meta.json"
        path.write_text(edit(path.read_text()))

    return tamper


def _digit_in_gop_starts(text: str) -> str:
    start = text.index('"gop_starts"')
    at = text.index("12", start)  # the second GOP starts at frame 12
    return text[:at] + "13" + text[at + 2 :]


def _resealed(change):
    """A meta.json edited and given a correct checksum: its fields are checked too."""

    def edit(text: str) -> str:
        meta = json.loads(text)
        change(meta)
        meta["checksum"] = meta_checksum(meta)
        return json.dumps(meta)

    return edit


META_TAMPERING = {
    "a digit of gop_starts": (_edit_meta(_digit_in_gop_starts), CHECKSUM),
    "a list": (_edit_meta(lambda t: "[1, 2, 3]"), CORRUPT_META),
    "a string": (_edit_meta(lambda t: '"meta"'), CORRUPT_META),
    "invalid JSON": (_edit_meta(lambda t: t[: len(t) // 2]), CORRUPT_META),
    "not UTF-8": (lambda d: (d / "meta.json").write_bytes(b"\xff\xfe{}"), CORRUPT_META),
    "empty": (_edit_meta(lambda t: ""), CORRUPT_META),
    "deleted": (lambda d: (d / "meta.json").unlink(), MISSING_FILE),
    "another format": (_edit_meta(_resealed(lambda m: m.update(version=1))), OLD_FORMAT),
    "width a string": (_edit_meta(_resealed(lambda m: m.update(width="80"))), CORRUPT_META),
    "arrays missing": (_edit_meta(_resealed(lambda m: m.pop("arrays"))), CORRUPT_META),
    "a size changed": (
        _edit_meta(_resealed(lambda m: m["arrays"]["iframes"].update(bytes=1))),
        CORRUPT_META,
    ),
}


@pytest.mark.parametrize("name", sorted(META_TAMPERING))
def test_tampered_meta_is_rebuilt_never_served(entry, name: str) -> None:
    video, root, directory = entry
    tamper, cause = META_TAMPERING[name]
    tamper(directory)
    assert_rebuilt(video, root, cause)


# --------------------------------------------------------------------------- array files


def _truncate(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size - 1)


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # the last payload byte: same size, other content
    path.write_bytes(bytes(data))


def _flip_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(b"'shape'")
    data[at + 1] = ord("S")  # the header's text: np.load would still parse it
    path.write_bytes(bytes(data))


FILE_TAMPERING = {
    "truncated": (_truncate, WRONG_SIZE),
    "one payload bit": (_flip, CHECKSUM),
    "one header byte": (_flip_header, CHECKSUM),
    "deleted": (Path.unlink, MISSING_FILE),
}


@pytest.mark.parametrize("name", sorted(FILE_TAMPERING))
def test_every_tampered_array_file_is_rebuilt_never_served(
    pristine, tmp_path: Path, name: str
) -> None:
    video, clean = pristine
    tamper, cause = FILE_TAMPERING[name]
    files = sorted(p.name for p in VideoCache(clean).entry_dir(video).glob("*.npy"))
    assert len(files) == 5  # iframes, mv_grids, and the test view's iframe, mv, residual
    for index, file in enumerate(files):
        root = tmp_path / f"cache{index}"
        shutil.copytree(clean, root)
        tamper(VideoCache(root).entry_dir(video) / file)
        assert_rebuilt(video, root, cause)


def test_a_file_changed_after_it_was_checked_is_checked_again(entry) -> None:
    video, root, directory = entry
    cache = VideoCache(root)
    assert_same(served(video, cache), served(video, None))  # read and hashed once
    _flip(directory / f"test-{KEY}-0-residual.npy")  # ... then changed in place
    with pytest.raises(CacheCorruptError, match="checksum"):
        cache.load(video).test_sample(KEY, 0)
    assert cache.discarded[-1][1].startswith(CHECKSUM) and not directory.exists()


def test_a_resealed_meta_is_trusted_only_as_far_as_its_hashes(entry) -> None:
    """Whoever rewrites meta.json and its checksum by hand owns the result; the hashes
    still pin every array file, so a listed size or hash that no longer fits is caught."""
    video, root, directory = entry
    meta = json.loads((directory / "meta.json").read_text())
    meta["arrays"]["mv_grids"]["crc32"] += 1
    meta["checksum"] = meta_checksum(meta)
    (directory / "meta.json").write_text(json.dumps(meta))
    assert_rebuilt(video, root, CHECKSUM)


# --------------------------------------------------------------------------- the source


def _same_size_other_video(tiny: Path, size: int) -> bytes:
    """Another generated video padded to ``size`` bytes inside its user data (which
    decoders skip): the same size, other frames."""
    for path in sorted(tiny.rglob("*.m4v"))[1:]:
        data = path.read_bytes()
        if len(data) <= size:
            at = data.index(b"Lavc") + 4  # the encoder's user data string
            return data[:at] + b" " * (size - len(data)) + data[at:]
    raise AssertionError("no smaller video to pad")


def test_a_replaced_video_of_the_same_size_and_mtime_is_re_extracted(
    tiny, pristine, tmp_path: Path
) -> None:
    video, root = tmp_path / "v.m4v", tmp_path / "cache"  # not the shared video: replaced
    shutil.copyfile(pristine[0], video)
    assert _cache_one((str(root), str(video), SPEC))[0] is None
    before = served(video, VideoCache(root))
    st = video.stat()
    video.write_bytes(_same_size_other_video(tiny, st.st_size))
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert video.stat().st_size == st.st_size and video.stat().st_mtime_ns == st.st_mtime_ns
    stream = served(video, None)
    assert not torch.equal(stream["iframe"], before["iframe"])  # another video indeed
    assert_rebuilt(video, root, STALE_SOURCE)


def test_a_touched_video_is_not_re_extracted(entry) -> None:
    video, root, _ = entry
    st = video.stat()
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert _cache_one((str(root), str(video), SPEC))[1]["rebuilt"] == {}


# --------------------------------------------------------------------------- the race


def _race(root: str, video: str, worker: int, rounds: int, barrier, out) -> None:
    reference = served(Path(video), None)
    failures = []
    counts = VideoCache(root)
    for round_ in range(rounds):
        barrier.wait()
        if worker == 0:  # every round starts with no entry or a corrupt one
            directory = VideoCache(root).entry_dir(video)
            if round_ % 2:
                (directory / "meta.json").write_text("[]")
            else:
                VideoCache(root).discard(video, "the race")
        barrier.wait()
        try:
            problem, summary = _cache_one((root, video, SPEC))
            counts.add(summary)
            if problem:
                failures.append(problem)
            assert_same(served(Path(video), VideoCache(root)), reference)
        except Exception as exc:  # noqa: BLE001 (the test counts every failure)
            failures.append(f"{type(exc).__name__}: {exc}")
    out.put((worker, failures, counts.summary()))


def test_racing_builders_never_fail(pristine, tmp_path: Path) -> None:
    """4 processes x 30 builds of one entry, each round from no entry (even rounds) or a
    corrupt one (odd rounds): no failure, every sample the stream's, the entry valid."""
    video, _ = pristine
    workers, rounds = 4, 30
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(workers, timeout=120), ctx.Queue()
    procs = [
        ctx.Process(target=_race, args=(str(tmp_path), str(video), w, rounds, barrier, out))
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * workers
    assert {w: f for w, f, _ in results if f} == {}
    made = sum(c["built"] + sum(c["rebuilt"].values()) for _, _, c in results)
    assert made >= rounds  # at least one build per round; losers read the winner's
    cache = VideoCache(tmp_path)
    assert cache.load(video, verify=True).has_test(KEY)
    assert_same(served(video, cache), served(video, None))
    # no temporary or trashed directory left behind (a late discard's note may stay)
    leftovers = [p for p in cache.entry_dir(video).parent.iterdir() if p.name.startswith(".")]
    assert [p for p in leftovers if p.is_dir()] == []


def test_a_loser_reads_the_winners_entry(entry, monkeypatch) -> None:
    """The rename that loses (the entry appeared meanwhile) serves the winner's entry."""
    video, root, directory = entry
    winner = VideoCache(root).load(video, verify=True)
    shutil.rmtree(directory)
    real_write = VideoCache._write_tmp

    def write_then_lose(directory, arrays, meta):
        tmp = real_write(directory, arrays, meta)
        shutil.copytree(tmp, directory)  # another builder renames its copy in first
        return tmp

    monkeypatch.setattr(VideoCache, "_write_tmp", staticmethod(write_then_lose))
    cache = VideoCache(root)
    got = cache.build(video, *tier_args(video))
    assert got is not None and got.meta == winner.meta
    assert cache.summary()["built"] == 0  # not ours: the winner counts it
    assert [p for p in directory.parent.iterdir() if p.name.startswith(".")] == []


def test_an_entry_without_the_wanted_test_tier_is_replaced(entry) -> None:
    video, root, _ = entry
    cache = VideoCache(root)
    assert cache.build(video, *tier_args(video, "other")).meta["test"].keys() == {"other"}
    assert cache.summary()["rebuilt"] == {TEST_TIER: 1}


# --------------------------------------------------------------------------- write failures


def _no_space(self, data):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_degrades_to_the_stream_with_one_warning(
    tiny, tmp_path: Path, monkeypatch, caplog
) -> None:
    monkeypatch.setattr(cache_module._HashingWriter, "write", _no_space)
    videos = sorted(tiny.rglob("*.m4v"))
    cache = VideoCache(tmp_path / "cache")
    with caplog.at_level("WARNING", logger="datamodules.cache"):
        for video in videos:
            assert cache.build(video) is None
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1, warned
    assert "No space left on device" in warned[0] and str(tmp_path / "cache") in warned[0]
    assert ".npy" in warned[0]  # the file being written
    assert cache.summary()["write_failures"] == 1  # then it stops extracting
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []
    assert cache.load(videos[0]) is None


def test_an_unwritable_directory_degrades_to_the_stream(tiny, tmp_path: Path, monkeypatch, caplog):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), kwargs.get("dir"))

    monkeypatch.setattr(cache_module.tempfile, "mkdtemp", denied)
    video = sorted(tiny.rglob("*.m4v"))[0]
    cache = VideoCache(tmp_path / "cache")
    with caplog.at_level("WARNING", logger="datamodules.cache"):
        assert cache.build(video) is None
    assert "Permission denied" in caplog.text and str(tmp_path / "cache") in caplog.text
    assert_same(served(video, cache), served(video, None))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0o500")
def test_a_read_only_directory_degrades_to_the_stream(tiny, tmp_path: Path, caplog) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    root.chmod(0o500)
    try:
        cache = VideoCache(root)
        assert cache.build(sorted(tiny.rglob("*.m4v"))[0]) is None
        assert "Permission denied" in caplog.text
    finally:
        root.chmod(0o700)


def test_cvbench_data_on_a_full_disk_serves_from_the_stream(
    tiny, tmp_path: Path, monkeypatch, capsys, caplog
) -> None:
    monkeypatch.setattr(cache_module._HashingWriter, "write", _no_space)
    args = ["data", "--dataset", "folder", "--root", str(tiny), "--size", "32"]
    args += ["--batch-size", "2", "--batches", "1", "--no-progress"]
    with caplog.at_level("WARNING", logger="datamodules.cache"):
        assert main([*args, "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "cache: 0 built, 0 rebuilt, 1 write failures (cannot write " in out
    assert "No space left on device; served from the stream)" in out
    assert len([r for r in caplog.records if "No space" in r.getMessage()]) == 1


# --------------------------------------------------------------------------- counters


def test_rebuilds_are_counted_by_cause_and_added_up(entry) -> None:
    video, root, directory = entry
    cache = VideoCache(root)
    (directory / "meta.json").write_text("{")
    assert cache.build(video) is not None
    _flip(directory / "iframes.npy")
    assert cache.build(video) is not None
    shutil.rmtree(directory)
    assert cache.build(video) is not None
    assert cache.summary() == {
        "built": 1,
        "rebuilt": {CHECKSUM: 1, CORRUPT_META: 1},
        "write_failures": 0,
    }
    assert [why.split(":")[0] for _, why in cache.discarded] == [CORRUPT_META, CHECKSUM]
    total = VideoCache(root)
    total.add(cache.summary())
    total.add({"built": 2, "rebuilt": {CHECKSUM: 1}, "write_failures": 3, "write_error": "x"})
    assert total.summary() == {
        "built": 3,
        "rebuilt": {CHECKSUM: 2, CORRUPT_META: 1},
        "write_failures": 3,
        "write_error": "x",
    }
    assert _cache_line(total.summary()) == (
        "cache: 3 built, 3 rebuilt (2 checksum mismatch, 1 corrupt meta), 3 write failures "
        "(x; served from the stream)"
    )


def test_the_datamodule_summary_reports_the_cache(tiny, tmp_path: Path) -> None:
    from datamodules.datamodule import CompressedVideoDataModule

    dm = CompressedVideoDataModule(
        SPEC, dataset="folder", root=tiny, cache_dir=tmp_path / "cache", progress=False
    )
    dm.prepare_data()
    dm.setup("test")
    assert dm.summary()["cache"] == {"built": 6, "rebuilt": {}, "write_failures": 0}
    assert np.all([VideoCache(tmp_path / "cache").load(i.path) for i in dm.lists["test"].items])
