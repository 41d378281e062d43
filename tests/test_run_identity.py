"""A run's identity, append-only records, what a record says about itself, scores files.

The replays of issue 9: a smoke run (``--limit-*-batches``) and a run on another root no
longer share the id (and work folder) of a full run; a repeated run adds a record;
``--resume`` refuses a checkpoint of another identity, naming the field; a killed and
resumed run lists both attempts; the per-video scores are written beside the record; a
record that cannot be written is printed; ``cvbench test`` refuses another split.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import lightning as L
import pytest
import torch

import cvbench.run as run_module
from cvbench.cli import main
from cvbench.identity import RunIdentityError, identity_differences
from cvbench.report.classify import classify
from cvbench.run import RecordWriteError, RunSpec, train_and_test
from cvbench.scores import COLUMNS, read_scores
from datamodules.datasets import official_count

OPTIONS = {"num_classes": 3, "videos_per_class": 4, "frames": 24, "size": [64, 80]}


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synthetic")


def _args(root: Path, tmp_path: Path, *extra: str) -> list[str]:
    out = [
        "run",
        "--method",
        "iframe",
        "--config-dir",
        str(tmp_path / "no-configs"),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--no-progress",
        "--root",
        str(root),
        "--work-dir",
        str(tmp_path / "work"),
        "--output",
        str(tmp_path / "records"),
        "--json",
    ]
    for key, value in OPTIONS.items():
        out += ["--dataset-option", f"{key}={value}"]
    return [*out, *extra]


def _run(root: Path, tmp_path: Path, capsys, *extra: str) -> dict:
    assert main(_args(root, tmp_path, *extra)) == 0
    return json.loads(capsys.readouterr().out)


def _spec(root: Path, tmp_path: Path, **changes) -> RunSpec:
    options = {
        "method": "iframe",
        "root": str(root),
        "dataset_options": OPTIONS,
        "epochs": 3,
        "batch_size": 2,
        "limit_train_batches": 2,
        "work_dir": str(tmp_path / "work"),
        "output": str(tmp_path / "records"),
        "progress": False,
        **changes,
    }
    return RunSpec(**options)


def test_smoke_run_other_root_and_repeat_never_replace_a_record(
    synthetic_root: Path, tmp_path: Path, capsys
) -> None:
    full = _run(synthetic_root, tmp_path, capsys)
    limits = ("--limit-train-batches", "2", "--limit-test-batches", "1")
    with pytest.warns(UserWarning, match="differs in limits: checkpoint"):  # not resumed
        smoke = _run(synthetic_root, tmp_path, capsys, *limits, "--resume")
    assert smoke["resumed"] is False and smoke["attempts"][0]["epoch_start"] == 0
    assert smoke["run_id"] != full["run_id"]
    assert smoke["identity"]["limits"] == {"train": 2, "test": 1.0}
    assert smoke["changed_settings"]["limit_train_batches"] == {"recipe": 1.0, "run": 2}
    # the same videos under another root: another run (and another work folder)
    other = tmp_path / "other-root"
    shutil.copytree(synthetic_root, other)
    moved = _run(other, tmp_path, capsys)
    assert moved["run_id"] != full["run_id"]
    assert moved["identity"]["data"] == full["identity"]["data"]  # same names and sizes
    assert moved["identity"]["root"] == str(other.resolve())
    # the same identity again: the same id, a second record
    again = _run(synthetic_root, tmp_path, capsys)
    assert again["run_id"] == full["run_id"] and again["identity"] == full["identity"]
    assert again["record_file"] != full["record_file"]
    # each record keeps its own final weights; last.ckpt is only the resume point
    assert again["checkpoint"] != full["checkpoint"]
    assert again["resume_checkpoint"] == full["resume_checkpoint"]
    assert Path(full["checkpoint"]).is_file() and Path(again["checkpoint"]).is_file()
    first = torch.load(full["checkpoint"], map_location="cpu", weights_only=True)
    assert first["cvbench"]["run_id"] == full["run_id"]
    assert first["cvbench"]["attempts"][0]["started"] == full["attempts"][0]["started"]
    records = sorted(p.name for p in (tmp_path / "records").glob("*.json"))
    assert len(records) == 4
    for r in (full, smoke, moved, again):  # <run id>-<UTC time>[-N].json
        assert re.fullmatch(re.escape(r["run_id"]) + r"-\d{8}T\d{6}(-\d+)?\.json", r["record_file"])
    stored = json.loads((tmp_path / "records" / full["record_file"]).read_text())
    assert stored["identity_hash"][:12] == full["run_id"][-12:]

    # the tables' classifier reads what cvbench run writes: a real record is never
    # "invalid" for its own field layout (a tiny synthetic run is custom, a smoke run partial)
    assert classify(full).cls == "custom", classify(full)
    assert classify(smoke).cls == "partial", classify(smoke)
    assert all("`" not in r or "expected" not in r for r in classify(full).reasons)

    # what the record says about itself
    assert full["record_format"] == 2 and full["resumed"] is False
    assert (full["epochs_requested"], full["epochs_completed"]) == (1, 1)
    assert full["batches"] == {
        "train_seen": 3,  # 9 training videos in batches of 4
        "train_available": 3,
        "test_seen": 1,
        "test_available": 1,
    }
    assert smoke["batches"]["train_seen"] == 2 and smoke["batches"]["train_available"] == 3
    assert full["test_videos"] == {"scored": 3, "in_split": 3, "official": None}
    assert full["train_videos"] == {"used": 9, "in_split": 9, "official": None}
    assert full["skipped_videos"] == []
    assert full["weights"] == [{"option": "pretrained", "file": "none", "sha256": None}]
    assert full["changed_settings"]["epochs"] == {"recipe": 40, "run": 1}
    (attempt,) = full["attempts"]
    assert (attempt["epoch_start"], attempt["epoch_end"], attempt["train_batches"]) == (0, 1, 3)
    assert full["timings"]["train_s_total"] == attempt["train_s"] == full["timings"]["train_s"]

    # the per-video scores beside the record
    scores = read_scores(tmp_path / "records" / full["scores_file"])
    assert full["scores_file"] == full["record_file"].replace(".json", ".scores.csv.gz")
    assert len(scores) == 3 and list(scores.columns[:4]) == list(COLUMNS)
    assert list(scores.columns[4:]) == [f"translate_{d}" for d in ("right", "left", "up")]
    top1 = (scores.iloc[:, 4:].to_numpy().argmax(1) == scores["label"].to_numpy()).mean()
    assert top1 == pytest.approx(full["metrics"]["top1"])
    assert (scores["views"] == 1).all() and scores["video"].str.endswith(".m4v").all()


def test_official_counts() -> None:
    assert [official_count("ucf101", s, "test") for s in (1, 2, 3)] == [3783, 3734, 3696]
    assert [official_count("ucf101", s, "train") for s in (1, 2, 3)] == [9537, 9586, 9624]
    assert official_count("hmdb51", 2, "test") == 1530
    assert official_count("hmdb51", 3, "train") == 3570
    assert official_count("synthetic", 1, "test") is None


class _Kill(L.Callback):
    """Kill the run when epoch 2 starts, after the epoch-1 checkpoint was written."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == 2:
            raise RuntimeError("killed after the epoch-1 checkpoint")


def test_resume_lists_attempts_and_refuses_another_identity(
    synthetic_root: Path, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError, match="killed"):
        train_and_test(_spec(synthetic_root, tmp_path), callbacks=[_Kill()])
    record = train_and_test(_spec(synthetic_root, tmp_path, resume=True))
    assert record["resumed"] is True
    first, second = record["attempts"]
    assert (first["epoch_start"], first["epoch_end"], first["train_batches"]) == (0, 2, 4)
    assert (second["epoch_start"], second["epoch_end"], second["train_batches"]) == (2, 3, 2)
    assert record["timings"]["train_s_total"] == pytest.approx(
        first["train_s"] + second["train_s"], abs=0.011
    )
    assert (record["epochs_requested"], record["epochs_completed"]) == (3, 3)
    assert record["batches"]["train_seen"] == 6 and record["batches"]["train_available"] == 15

    # a checkpoint whose identity differs (here: crafted) is refused, naming the field
    last = Path(record["checkpoint"])
    state = torch.load(last, weights_only=True)
    state["cvbench"]["identity"]["root"] = "/elsewhere"
    state["cvbench"]["identity"]["limits"] = {"train": 1.0, "test": 1.0}
    torch.save(state, last)
    with pytest.raises(RunIdentityError, match="limits: checkpoint .*; root: checkpoint"):
        train_and_test(_spec(synthetic_root, tmp_path, resume=True))
    del state["cvbench"]["identity"]
    torch.save(state, last)
    with pytest.raises(RunIdentityError, match="the checkpoint has none"):
        train_and_test(_spec(synthetic_root, tmp_path, resume=True))


def test_the_cli_refuses_a_resume_of_another_identity_with_one_line(
    synthetic_root: Path, tmp_path: Path, capsys
) -> None:
    record = _run(synthetic_root, tmp_path, capsys)
    last = Path(record["checkpoint"])
    state = torch.load(last, weights_only=True)
    state["cvbench"]["identity"]["seed"] = 7
    torch.save(state, last)
    assert main(_args(synthetic_root, tmp_path, "--resume")) == 2
    err = capsys.readouterr().err
    assert "cvbench run: error: --resume:" in err and "seed: checkpoint 7, this run 0" in err


def test_config_differences_are_named_by_field() -> None:
    lines = identity_differences(
        {"config_sha256": "a", "seed": 0},
        {"config_sha256": "b", "seed": 0},
        {"dropout": 0.1, "segments": 2},
        {"dropout": 0.5, "segments": 2},
    )
    assert lines == ["config.dropout: checkpoint 0.1, this run 0.5"]


def test_a_record_that_cannot_be_written_is_printed_and_named(
    synthetic_root: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    def full_disk(path: Path, record: dict) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run_module, "_write_record", full_disk)
    with pytest.raises(RecordWriteError, match="No space left on device") as error:
        train_and_test(_spec(synthetic_root, tmp_path, epochs=1))
    err = capsys.readouterr().err
    printed, _ = json.JSONDecoder().raw_decode(err[err.index('{\n  "kind"') :])
    assert printed["kind"] == "run" and printed["metrics"]["test_videos"] == 3
    assert printed["record_file"] in str(error.value)
    # the CLI: one line, exit 2
    assert main(_args(synthetic_root, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "cvbench run: error: " in err and "No space left on device" in err


def test_test_on_another_split_is_refused_unless_allowed(
    synthetic_root: Path, tmp_path: Path, capsys
) -> None:
    record = _run(synthetic_root, tmp_path, capsys)
    base = ["test", "--checkpoint", record["checkpoint"], "--no-progress", "--json"]
    base += ["--output", str(tmp_path / "eval")]
    assert main([*base, "--split", "2"]) == 2
    err = capsys.readouterr().err
    assert "cvbench test: error:" in err and "trained on synthetic split 1" in err
    assert "--allow-split-mismatch" in err
    assert main([*base, "--split", "2", "--allow-split-mismatch"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["split"] == 2 and evaluated["split_mismatch"] is True
    assert evaluated["weights_trained_on_split"] == 1
    assert evaluated["identity"] == record["identity"]
    scores = read_scores(tmp_path / "eval" / evaluated["scores_file"])
    assert len(scores) == evaluated["test_videos"]["scored"]
    assert main(base) == 0  # its own split
    same = json.loads(capsys.readouterr().out)
    assert same["split_mismatch"] is False and same["metrics"] == record["metrics"]
    # the classifier reads real evaluation records: a mismatch is partial, not invalid
    assert classify(evaluated).cls == "partial", classify(evaluated)
    assert any("split_mismatch" in r for r in classify(evaluated).reasons)
    assert classify(same).cls == "custom", classify(same)


def test_samples_dropped_from_batches_are_named() -> None:
    from datamodules.datamodule import CompressedVideoDataModule, SkippedSample, collate
    from methods.registry import create_method

    good = {"label": 0, "video_index": 0, "view": 0, "mv": torch.zeros(2)}
    batch = collate([good, SkippedSample("a/bad.m4v", "truncated GOP", "train")])
    only_bad = collate([SkippedSample("a/worse.m4v", "no frames", "test")])
    spec = create_method("iframe", "tiny", num_classes=3, class_names=["a", "b", "c"]).data_spec
    dm = CompressedVideoDataModule(spec, check=False)
    assert set(dm.on_after_batch_transfer(batch, 0)) == {"label", "video_index", "view", "mv"}
    assert dm.on_after_batch_transfer(only_bad, 0) == {"empty": True}  # skipped by the method
    assert dm.skipped == 2 and dm.empty_batches == 1
    assert dm.skipped_videos == [
        {"file": "a/bad.m4v", "cause": "truncated GOP", "subset": "train"},
        {"file": "a/worse.m4v", "cause": "no frames", "subset": "test"},
    ]
