"""Kinetics-400 and Something-Something v2 from their official annotation files.

Listing tests use empty placeholder videos (the builders only list files); the prepare
and training tests encode small videos.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import av
import numpy as np
import pytest

import datamodules.layouts  # noqa: F401  (registers kinetics400, ssv2)
from cvbench.cli import main
from datamodules.datasets import create_dataset, official_count
from datamodules.encode import EncodeOptions
from datamodules.errors import DatasetLayoutError, SplitError
from datamodules.layouts import DatasetLayoutWarning
from datamodules.prepare import find_videos, prepare_tree, prepared_name, shard_manifests

# label, youtube_id, start, end; "air drumming" has a space, as the official labels do
K400_TRAIN = [
    ("abseiling", "aaaaaaaaaa1", 10, 20),
    ("abseiling", "aaaaaaaaaa2", 0, 10),
    ("air drumming", "bbbbbbbbbb1", 5, 15),
    ("air drumming", "bbbbbbbbbb2", 30, 40),
    ("zumba", "zzzzzzzzzz1", 100, 110),
    ("zumba", "zzzzzzzzzz2", 7, 17),
]
K400_VAL = [
    ("abseiling", "vvvvvvvvvv1", 1, 11),
    ("air drumming", "vvvvvvvvvv2", 2, 12),
    ("zumba", "vvvvvvvvvv3", 3, 13),
]
K400_GONE = {"aaaaaaaaaa2", "vvvvvvvvvv3"}  # listed, never downloaded


def k400_stem(video: str, start: int, end: int) -> str:
    return f"{video}_{start:06d}_{end:06d}"


def _csv(path: Path, rows: list[tuple[str, str, int, int]], split: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["label,youtube_id,time_start,time_end,split"]
    lines += [f"{label},{video},{start},{end},{split}" for label, video, start, end in rows]
    path.write_text("\n".join(lines) + "\n")


def write_k400(root: Path, per_class: bool, make_video=None, suffix: str = ".mp4") -> Path:
    """A Kinetics-400 stand-in: the official CSVs, videos flat or per class (folder names
    with underscores, as downloaders write them), the K400_GONE videos absent."""
    _csv(root / "annotations" / "train.csv", K400_TRAIN, "train")
    _csv(root / "annotations" / "validate.csv", K400_VAL, "val")
    _csv(root / "annotations" / "test.csv", [], "test")
    for subset, rows in (("train", K400_TRAIN), ("val", K400_VAL)):
        for n, (label, video, start, end) in enumerate(rows):
            if video in K400_GONE:
                continue
            folder = root / "videos" / subset
            if per_class:
                folder = folder / label.replace(" ", "_")
            path = folder / f"{k400_stem(video, start, end)}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            if make_video is None:
                path.write_bytes(b"")
            else:
                make_video(path, n)
    return root


SSV2_LABELS = {
    "Approaching something with your camera": "1",
    "Putting something on a surface": "0",
    "Pushing something from left to right": "2",
}
SSV2_TRAIN = [
    (11, "Putting [something] on a surface", "Putting a cup on a surface"),
    (12, "Putting [something] on a surface", "Putting a pen on a surface"),
    (13, "Approaching [something] with your camera", "Approaching a door with your camera"),
    (14, "Approaching [something] with your camera", "Approaching a box with your camera"),
    (15, "Pushing [something] from left to right", "Pushing a ball from left to right"),
    (16, "Pushing [something] from left to right", "Pushing a car from left to right"),
]
SSV2_VAL = [
    (21, "Putting [something] on a surface", "Putting a key on a surface"),
    (22, "Pushing [something] from left to right", "Pushing a can from left to right"),
]
SSV2_GONE = {16}


def write_ssv2(root: Path, make_video=None, suffix: str = ".webm") -> Path:
    ann = root / "annotations"
    ann.mkdir(parents=True)
    (ann / "labels.json").write_text(json.dumps(SSV2_LABELS))
    for name, rows in (("train.json", SSV2_TRAIN), ("validation.json", SSV2_VAL)):
        entries = [
            {"id": str(i), "label": label, "template": template, "placeholders": ["x"]}
            for i, template, label in rows
        ]
        (ann / name).write_text(json.dumps(entries))
    (root / "videos").mkdir(parents=True)
    for n, (i, *_) in enumerate(SSV2_TRAIN + SSV2_VAL):
        if i in SSV2_GONE:
            continue
        path = root / "videos" / f"{i}{suffix}"
        if make_video is None:
            path.write_bytes(b"")
        else:
            make_video(path, n)
    return root


# --------------------------------------------------------------------------- listing


@pytest.mark.parametrize("per_class", [False, True], ids=["flat", "per-class"])
def test_kinetics_lists_both_layouts_and_reports_missing(tmp_path: Path, per_class: bool) -> None:
    root = write_k400(tmp_path / "k400", per_class)
    with pytest.warns(DatasetLayoutWarning, match="1 of 6 videos .* missing"):
        train = create_dataset("kinetics400", root, 1, "train")
    assert train.classes == ("abseiling", "air drumming", "zumba")  # sorted labels
    assert [item.name for item in train.items] == [
        k400_stem(v, s, e) for _, v, s, e in K400_TRAIN if v not in K400_GONE
    ]
    assert [item.label for item in train.items] == [0, 1, 1, 2, 2]
    assert train.missing == (k400_stem("aaaaaaaaaa2", 0, 10),)
    with pytest.warns(DatasetLayoutWarning):
        test = create_dataset("kinetics400", root, 1, "test")
    assert [item.label for item in test.items] == [0, 1]
    assert test.missing == (k400_stem("vvvvvvvvvv3", 3, 13),)
    assert {p.name for p in test.sources} == {"train.csv", "validate.csv"}


def test_kinetics_missing_error_and_one_split(tmp_path: Path) -> None:
    root = write_k400(tmp_path / "k400", per_class=False)
    with pytest.raises(DatasetLayoutError, match="missing=.skip"):
        create_dataset("kinetics400", root, 1, "train", missing="error")
    for split in (2, 3):
        with pytest.raises(SplitError, match="kinetics400 has one split, 1 .the official train"):
            create_dataset("kinetics400", root, split, "train")
        with pytest.raises(SplitError, match="ssv2 has one split, 1 .the official train"):
            create_dataset("ssv2", root, split, "test")


def test_kinetics_rejects_mislabelled_folder_and_bad_csv(tmp_path: Path) -> None:
    root = write_k400(tmp_path / "k400", per_class=True)
    stem = k400_stem("zzzzzzzzzz1", 100, 110)
    (root / "videos/train/zumba" / f"{stem}.mp4").rename(
        root / "videos/train/abseiling" / f"{stem}.mp4"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetLayoutWarning)
        with pytest.raises(DatasetLayoutError, match="folder of another class"):
            create_dataset("kinetics400", root, 1, "train")
    (root / "annotations/train.csv").write_text("youtube_id,label\nx,y\n")
    with pytest.raises(DatasetLayoutError, match="lacks time_start"):
        create_dataset("kinetics400", root, 1, "train")


def test_kinetics_prefers_prepared_copy(tmp_path: Path) -> None:
    root = write_k400(tmp_path / "k400", per_class=False)
    stem = k400_stem("aaaaaaaaaa1", 10, 20)
    (root / "videos/train" / f"{stem}.m4v").write_bytes(b"")
    with pytest.warns(DatasetLayoutWarning):
        train = create_dataset("kinetics400", root, 1, "train")
    assert train.items[0].path.suffix == ".m4v"


def test_ssv2_lists_by_template(tmp_path: Path) -> None:
    root = write_ssv2(tmp_path / "ssv2")
    with pytest.warns(DatasetLayoutWarning, match="1 of 6"):
        train = create_dataset("ssv2", root, 1, "train")
    # labels.json order (its indices), not file order
    assert train.classes == (
        "Putting something on a surface",
        "Approaching something with your camera",
        "Pushing something from left to right",
    )
    assert [(item.name, item.label) for item in train.items] == [
        ("11.webm", 0),
        ("12.webm", 0),
        ("13.webm", 1),
        ("14.webm", 1),
        ("15.webm", 2),
    ]
    assert train.missing == ("16.webm",)
    assert train.hflip_labels == (0, 1, -1)  # no "right to left" class here: no flips
    with pytest.warns(DatasetLayoutWarning, match="no video in this subset"):
        test = create_dataset("ssv2", root, 1, "test")
    assert [item.label for item in test.items] == [0, 2] and test.missing == ()


def test_ssv2_unknown_template_is_an_error(tmp_path: Path) -> None:
    root = write_ssv2(tmp_path / "ssv2")
    bad = [{"id": "30", "label": "x", "template": "Juggling [something]", "placeholders": []}]
    (root / "annotations/validation.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetLayoutError, match="Juggling something"):
        create_dataset("ssv2", root, 1, "test")


def test_official_counts_for_one_split_datasets() -> None:
    assert official_count("kinetics400", 1, "train") == 240436
    assert official_count("kinetics400", 1, "test") == 19796
    assert official_count("ssv2", 1, "train") == 168913
    assert official_count("ssv2", 1, "test") == 24777
    assert official_count("ssv2", 2, "test") is None
    assert official_count("ucf101", 3, "test") == 3696


# --------------------------------------------------------------------------- prepare

VP9 = "libvpx-vp9" in av.codecs_available
SMALL = EncodeOptions(width=64, height=48)


def encode_source(path: Path, seed: int, codec: str = "mpeg4", frames: int = 30) -> None:
    """A small moving texture in ``codec`` (what a download would hold)."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (6, 10, 3), np.uint8).repeat(8, 0).repeat(8, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.height, stream.width = texture.shape[:2]
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.roll(texture, 2 * i, axis=1), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _files(root: Path, suffix: str) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob(f"*{suffix}")}


def _prepare(src: Path, dst: Path, *extra: str) -> int:
    return main(["prepare", str(src), str(dst), "--width", "64", "--height", "48",
                 "--workers", "1", "--no-progress", *extra])  # fmt: skip


def test_shards_are_disjoint_cover_all_and_resume(tmp_path: Path, capsys) -> None:
    root = write_k400(tmp_path / "k400", per_class=True, make_video=encode_source)
    src, dst = root / "videos", tmp_path / "prepared"
    sources = [p.as_posix() for p in find_videos(src)]
    assert len(sources) == 7
    outputs = []
    for i in (0, 1):
        assert _prepare(src, dst, "--shard", f"{i}/2") == 0
        before = _files(dst, ".m4v") - {o for part in outputs for o in part}
        outputs.append(before)
        manifest = json.loads((dst / f"prepare_manifest.shard-{i}-of-2.json").read_text())
        assert manifest["shard"] == {"index": i, "count": 2} and manifest["complete"]
        # every 2nd sorted source from the i-th
        expected = {prepared_name(s, SMALL) for s in sources[i::2]}
        assert before == expected and manifest["counts"]["done"] == len(expected)
    assert not outputs[0] & outputs[1]
    assert outputs[0] | outputs[1] == {prepared_name(s, SMALL) for s in sources}
    # each shard resumes on its own: a rerun skips everything it did
    assert _prepare(src, dst, "--shard", "1/2") == 0
    rerun = json.loads((dst / "prepare_manifest.shard-1-of-2.json").read_text())
    assert rerun["counts"]["skipped"] == len(outputs[1]) and rerun["counts"]["done"] == 0
    # the merge: the whole tree's run skips every video and writes the one manifest
    assert _prepare(src, dst) == 0
    whole = json.loads((dst / "prepare_manifest.json").read_text())
    assert whole["counts"]["skipped"] == 7 and whole["complete"] and whole["shard"] is None
    assert set(shard_manifests(dst)) == {
        "prepare_manifest.json",
        "prepare_manifest.shard-0-of-2.json",
        "prepare_manifest.shard-1-of-2.json",
    }
    capsys.readouterr()
    for bad in ("2/2", "1", "-1/2", "a/b"):
        assert main(["prepare", str(src), str(dst), f"--shard={bad}"]) == 2
    assert "shard" in capsys.readouterr().err
    # a shard with other options than the tree's is refused
    with pytest.raises(DatasetLayoutError, match="other options"):
        prepare_tree(src, dst, EncodeOptions(width=32, height=24), shard=(0, 2), progress=False)


@pytest.mark.skipif(not VP9, reason="this PyAV build has no VP9 encoder (libvpx-vp9)")
def test_prepare_reads_vp9_webm(tmp_path: Path) -> None:
    assert av.codec.Codec("vp9", "r")  # the decoder SSv2's sources need
    root = write_ssv2(tmp_path / "ssv2", make_video=lambda p, n: encode_source(p, n, "libvpx-vp9"))
    with av.open(str(root / "videos" / "11.webm")) as probe:
        assert probe.streams.video[0].codec_context.name in ("vp9", "libvpx-vp9")
    report = prepare_tree(root / "videos", tmp_path / "prepared", SMALL, progress=False)
    assert (report.done, report.failed, report.rejected) == (7, 0, 0)
    with av.open(str(tmp_path / "prepared" / "11.m4v")) as out:
        assert out.streams.video[0].codec_context.name == "mpeg4"
    # the prepared tree is read with the original names
    with pytest.warns(DatasetLayoutWarning):
        train = create_dataset("ssv2", root, 1, "train", videos_dir=tmp_path / "prepared")
    assert [item.path.name for item in train.items][:2] == ["11.m4v", "12.m4v"]
    assert train.items[0].name == "11.webm" and train.missing == ("16.webm",)


# --------------------------------------------------------------------------- pretrain, fine-tune

FINE_TUNE = {"num_classes": 4, "videos_per_class": 3, "frames": 24, "size": [64, 80]}


def _run(*args: str) -> dict:
    code = main(["run", "--method", "stm", "--preset", "tiny", "--epochs", "1",
                 "--limit-train-batches", "2", "--limit-test-batches", "1",
                 "--accelerator", "cpu", "--workers", "0", "--logger", "csv", "--no-progress",
                 *args])  # fmt: skip
    assert code == 0
    return json.loads(sorted(Path(args[args.index("--output") + 1]).glob("*.json"))[-1].read_text())


@pytest.mark.filterwarnings("ignore::datamodules.layouts.DatasetLayoutWarning")
def test_kinetics_pretrain_then_fine_tune(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    src = write_k400(tmp_path / "k400-src", per_class=True, make_video=encode_source)
    root = tmp_path / "k400"
    for i in (0, 1):  # two array jobs
        assert _prepare(src / "videos", root / "videos", "--shard", f"{i}/2") == 0
    (root / "annotations").mkdir(parents=True)
    for name in ("train.csv", "validate.csv"):
        (root / "annotations" / name).write_bytes((src / "annotations" / name).read_bytes())

    parent = _run("--dataset", "kinetics400", "--root", str(root), "--output", "pre")
    assert parent["dataset"] == "kinetics400" and parent["data"]["num_classes"] == 3
    assert parent["data"]["missing"] == 2
    assert {(v["file"], v["subset"]) for v in parent["data"]["missing_videos"]} == {
        (k400_stem("aaaaaaaaaa2", 0, 10), "train"),
        (k400_stem("vvvvvvvvvv3", 3, 13), "test"),
    }
    assert parent["test_videos"]["official"] == 19796
    assert parent["train_videos"]["official"] == 240436
    assert "init_from" not in parent and "init_from" not in parent["identity"]

    options = [a for k, v in FINE_TUNE.items() for a in ("--dataset-option", f"{k}={v}")]
    synthetic = ["--dataset", "synthetic", "--root", str(tmp_path / "synthetic"), *options]
    # a run id is looked up among the records of --output
    child = _run(*synthetic, "--output", "pre", "--init-from", parent["run_id"])
    checkpoint = Path(parent["checkpoint"])
    assert child["init_from"]["run_id"] == parent["run_id"]
    assert Path(child["init_from"]["checkpoint"]) == checkpoint
    assert child["init_from"]["record"].startswith("pre/" + parent["run_id"])
    assert child["init_from"]["sha256"] == child["identity"]["init_from"]
    assert child["init_from"]["head"] == "re-created" and child["init_from"]["skipped_keys"]
    assert child["init_from"]["parent_classes"] == 3 and child["data"]["num_classes"] == 4
    # the same run from scratch has another identity, so another run id
    scratch = _run(*synthetic, "--output", "scratch")
    assert scratch["run_id"] != child["run_id"] and "init_from" not in scratch
    # a checkpoint file and a record name the same parent
    by_file = _run(*synthetic, "--output", "file", "--init-from", str(checkpoint))
    assert by_file["run_id"] == child["run_id"] and by_file["init_from"]["run_id"] is None


def test_init_from_errors(tmp_path: Path, capsys) -> None:
    assert main(["run", "--method", "stm", "--init-from", "no-such-run", "--output",
                 str(tmp_path), "--epochs", "1"]) == 2  # fmt: skip
    assert "no-such-run" in capsys.readouterr().err


def test_ssv2_mirrored_labels_swap_directions() -> None:
    from datamodules.layouts import ssv2_mirrored

    classes = ("Pushing something from left to right", "Holding something",
               "Pushing something from right to left")  # fmt: skip
    assert ssv2_mirrored(classes) == (2, 1, 0)


@pytest.mark.parametrize(
    ("method", "dataset"),
    [("meaci", "kinetics400"), ("stm", "kinetics400"), ("stm", "ssv2"), ("cvpt", "ssv2")],
)
def test_new_configs_resolve_and_name_the_chain(method: str, dataset: str) -> None:
    import methods  # noqa: F401  (registers the methods)
    from cvbench.configs import CONFIGS_DIR, resolve
    from methods.config import apply_overrides
    from methods.registry import get_method

    text = (CONFIGS_DIR / method / f"{dataset}.yaml").read_text()
    assert text.startswith("#") and "Chain" in text
    settings = resolve(method, dataset)
    entry = get_method(method)
    entry.make_config(settings.preset, settings.config)
    apply_overrides(entry.module.default_optim(), settings.optim)
