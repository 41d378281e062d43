"""The command line's contract (issue 9): a user's mistake is one line and exit 2, checked
before any work; ``--debug`` shows the traceback; the batch limits read as Lightning reads
them; written files get the umask's permissions; ``--help`` imports no heavy library."""

from __future__ import annotations

import argparse
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cvbench.cli import build_parser, main
from cvbench.commands import batch_limit
from datamodules.errors import (
    CvbenchError,
    DatasetLayoutError,
    DatasetOptionError,
    SplitError,
    UnknownNameError,
    VideoError,
)

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "lightning", "timm", "open_clip", "transformers", "av")
# a synthetic dataset small enough to generate in a moment
TINY = ["num_classes=2", "videos_per_class=2", "frames=8", "size=[32, 32]"]


def _tiny(root: Path) -> list[str]:
    return ["--root", str(root), *(a for o in TINY for a in ("--dataset-option", o))]


def _one_line(err: str, command: str) -> None:
    assert "Traceback" not in err, err
    assert err.count("\n") == 1 and err.startswith(f"cvbench {command}: error: "), err


# ------------------------------------------------------------------ one line, exit 2

RUN = ["run", "--method", "iframe", "--no-progress"]
MISTAKES = [
    # (argv, words the line must carry)
    (["run", "--method", "nope"], ["unknown method 'nope'", "iframe"]),
    ([*RUN, "--preset", "nope"], ["no preset 'nope'", "tiny"]),
    ([*RUN, "--set", "no_such_key=1"], ["no_such_key", "unknown key"]),
    ([*RUN, "--set", "dropout=abc"], ["dropout", "expected float"]),
    ([*RUN, "--dataset", "ucf101", "--root", "{tmp}/nowhere"], ["root directory does not exist"]),
    ([*RUN, "--dataset-option", "bogus=1"], ["bogus", "known"]),
    ([*RUN, "--dataset", "folder", "--root", "{tmp}", "--dataset-option", "colour=1"], ["colour"]),
    ([*RUN, "--batch-size", "0"], ["--device-batch 0"]),
    ([*RUN, "--device-batch", "-2"], ["--device-batch -2"]),
    ([*RUN, "--test-batch-size", "0"], ["--test-batch-size 0"]),
    ([*RUN, "--global-batch", "0"], ["--global-batch 0"]),
    ([*RUN, "--epochs", "0"], ["--epochs 0"]),
    ([*RUN, "--epochs", "-1"], ["--epochs -1"]),
    ([*RUN, "--workers", "-1"], ["--workers -1"]),
    ([*RUN, "--lr", "0"], ["--lr 0"]),
    ([*RUN, "--lr", "-0.1"], ["--lr -0.1"]),
    ([*RUN, "--lr", "nan"], ["--lr nan"]),
    ([*RUN, "--lr", "inf"], ["--lr inf"]),
    ([*RUN, "--shots", "0"], ["--shots 0"]),
    (["data", "--dataset", "ucf101", "--root", "{tmp}/nowhere"], ["root directory does not exist"]),
    (["data", "--batch-size", "0"], ["--batch-size 0"]),
    (["data", "--workers", "-1"], ["--workers -1"]),
    (["test", "--checkpoint", "{tmp}/missing.ckpt"], ["checkpoint not found"]),
    (["test", "--checkpoint", "{tmp}/corrupt.ckpt"], ["not a readable checkpoint"]),
    (["test", "--checkpoint", "{tmp}/x.ckpt", "--batch-size", "0"], ["--batch-size 0"]),
    (["test", "--checkpoint", "{tmp}/x.ckpt", "--workers", "-2"], ["--workers -2"]),
    # a split the dataset does not have, before its root, checkpoint or settings are read
    *(
        (argv, [f"--split {n}: {d} has one split, 1 (the official train / validation split)"])
        for d, n in (("kinetics400", 2), ("ssv2", 3))
        for argv in (
            [*RUN, "--dataset", d, "--split", str(n)],
            ["run", "--method", "all", "--dataset", d, "--split", str(n), "--print-config"],
            [*RUN, "--dataset", d, "--split", str(n), "--root", "{tmp}/nowhere"],
            ["test", "--checkpoint", "{tmp}/missing.ckpt", "--dataset", d, "--split", str(n)],
            ["data", "--dataset", d, "--split", str(n)],
            ["control", "--dataset", d, "--split", str(n)],
        )
    ),
]


@pytest.mark.parametrize(("argv", "words"), MISTAKES, ids=lambda v: " ".join(v)[:60])
def test_a_mistake_is_one_line_and_exit_2(
    argv: list[str], words: list[str], tmp_path: Path, capsys
) -> None:
    (tmp_path / "corrupt.ckpt").write_bytes(b"not a checkpoint" * 8)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    _one_line(err, argv[0])
    for word in words:
        assert word in err


def test_a_split_the_dataset_lacks_is_refused_before_any_work(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    import cvbench.commands.run as run_command
    import cvbench.run as run_module
    from datamodules import datasets

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the split was checked")

    monkeypatch.setattr(run_command, "_resolve_all", no_work)
    monkeypatch.setattr(datasets, "_DATASETS", {k: no_work for k in datasets._DATASETS})
    assert main([*RUN, "--dataset", "kinetics400", "--split", "2", "--root", str(tmp_path)]) == 2
    _one_line(capsys.readouterr().err, "run")
    assert main(["bench", "loader", "--workers", "1", "--dataset", "ssv2", "--split", "2"]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "cvbench bench loader: error: --split 2: ssv2 has one split, 1 (the official train / validation split)\n"
    )
    # cvbench test on the checkpoint's own dataset: refused once the checkpoint is read,
    # before the method is rebuilt
    import torch

    hparams = {"method": "x", "config": {}, "num_classes": 2, "class_names": [], "optim": {}}
    checkpoint = {"state_dict": {}, "hyper_parameters": hparams,
                  "cvbench": {"method": "iframe", "dataset": "kinetics400", "split": 1}}  # fmt: skip
    torch.save(checkpoint, tmp_path / "k400.ckpt")
    monkeypatch.setattr(run_module, "rebuild_method", no_work)
    assert main(["test", "--checkpoint", str(tmp_path / "k400.ckpt"), "--split", "2"]) == 2
    err = capsys.readouterr().err
    _one_line(err, "test")
    assert "--split 2: kinetics400 has one split, 1" in err


def test_each_dataset_has_its_splits_and_help_says_which(capsys) -> None:
    from datamodules.datasets import check_split, dataset_splits

    for name in ("ucf101", "hmdb51", "synthetic", "folder"):
        assert dataset_splits(name) == (1, 2, 3)
        assert [check_split(name, n) for n in (1, 2, 3)] == [1, 2, 3]
    for name in ("kinetics400", "ssv2"):
        assert dataset_splits(name) == (1,) and check_split(name, 1) == 1
    for command in (["run"], ["test"], ["data"], ["control"], ["bench", "loader"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--split {1,2,3}" in text, command
        assert "kinetics400, ssv2: 1 (the official train / validation split)" in text, command
        assert "hmdb51, ucf101: 1-3 (the official train / test lists)" in text, command
        assert "synthetic: 1-3 (seeded partitions of the generated videos)" in text, command


def test_shots_above_the_smallest_class_name_it_before_training(tmp_path: Path, capsys) -> None:
    from datamodules.datasets import create_dataset

    create_dataset(  # generated here, quietly: the command would show its progress bar
        "synthetic", tmp_path, 1, "train", progress=False, num_classes=2, videos_per_class=2,
        frames=8, size=[32, 32],
    )  # fmt: skip
    assert main([*RUN, *_tiny(tmp_path), "--shots", "3", "--work-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    _one_line(err, "run")
    assert re.search(
        r"synthetic split 1 train: class '\w+' has [12] videos, fewer than shots=3", err
    )
    assert not list(tmp_path.glob("iframe-*")), "nothing is built or trained"


@pytest.mark.parametrize(
    "argv",
    [
        [*RUN, "--limit-train-batches", "0"],
        [*RUN, "--limit-test-batches", "1.5"],
        ["test", "--checkpoint", "x", "--limit-test-batches", "abc"],
        ["run", "--preset", "tiny"],  # --method is required
        ["nope"],
    ],
    ids=" ".join,
)
def test_a_flag_the_parser_refuses_is_one_line_and_exit_2(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    prefix = "cvbench" if argv == ["nope"] else f"cvbench {argv[0]}"
    assert "Traceback" not in err and "usage:" not in err
    assert err.count("\n") == 1 and err.startswith(f"{prefix}: error: "), err


def test_debug_raises_the_error_with_its_traceback(capsys) -> None:
    with pytest.raises(UnknownNameError, match="unknown method 'nope'"):
        main(["--debug", "run", "--method", "nope"])
    assert main(["run", "--method", "nope"]) == 2  # the same mistake without --debug


def test_debug_prints_the_traceback_from_the_command_line() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cvbench.cli", "--debug", "data", "--batch-size", "0"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert out.returncode == 1
    assert "Traceback" in out.stderr and "SettingsError: --batch-size 0" in out.stderr


def test_a_bug_keeps_its_traceback(monkeypatch) -> None:
    import cvbench.commands.data as data

    def broken(args: argparse.Namespace) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(data, "check_flags", broken)
    with pytest.raises(ZeroDivisionError):
        main(["data"])


def test_the_suite_errors_share_one_base_and_keep_their_old_ones() -> None:
    from cvbench.reported import ReportedError
    from cvbench.runsettings import SettingsError
    from datamodules.fewshot import FewShotError
    from methods.config import ConfigError
    from methods.weights import WeightsError

    for error, old in [
        (ConfigError, ValueError),
        (SettingsError, ValueError),
        (FewShotError, ValueError),
        (ReportedError, ValueError),
        (WeightsError, FileNotFoundError),
        (UnknownNameError, KeyError),
        (DatasetOptionError, TypeError),
        (DatasetOptionError, ValueError),
        (VideoError, Exception),
        (DatasetLayoutError, Exception),
        (SplitError, ValueError),
    ]:
        assert issubclass(error, CvbenchError) and issubclass(error, old), error
    assert str(UnknownNameError("unknown method 'x'")) == "unknown method 'x'"  # no quotes


# ------------------------------------------------------------------ batch limits


@pytest.mark.parametrize(
    ("text", "value"), [("2", 2), ("1", 1), ("10", 10), ("0.5", 0.5), ("1.0", 1.0), ("0.25", 0.25)]
)
def test_a_batch_limit_is_a_count_or_a_fraction(text: str, value: float) -> None:
    parsed = batch_limit(text)
    assert parsed == value and type(parsed) is type(value)  # "1" one batch, "1.0" all


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "abc", "", "nan", "inf", "0.0", "-0.5"])
def test_other_batch_limits_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="batch count >= 1"):
        batch_limit(text)


def test_the_limits_reach_the_run_and_the_test_unchanged(tmp_path: Path) -> None:
    from cvbench.commands.run import build_spec

    parser = build_parser()
    base = ["run", "--method", "iframe", "--root", str(tmp_path)]
    args = parser.parse_args(base)
    assert (args.limit_train_batches, args.limit_test_batches) == (1.0, 1.0)  # all, floats
    args = parser.parse_args([*base, "--limit-train-batches", "2", "--limit-test-batches", "1"])
    spec = build_spec(args, "iframe")
    assert spec.limit_train_batches == 2 and isinstance(spec.limit_train_batches, int)
    assert spec.limit_test_batches == 1 and isinstance(spec.limit_test_batches, int)
    args = parser.parse_args([*base, "--limit-train-batches", "0.5"])
    assert build_spec(args, "iframe").limit_train_batches == 0.5
    args = parser.parse_args(["test", "--checkpoint", "x", "--limit-test-batches", "3"])
    assert args.limit_test_batches == 3 and isinstance(args.limit_test_batches, int)


# ------------------------------------------------------------------ permissions


@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_get_the_umask_s_permissions(tmp_path: Path, umask: int) -> None:
    from datamodules.cache import VideoCache
    from datamodules.encode import EncodeOptions, encode_frames, write_json_atomic
    from datamodules.files import umask as read_umask

    assert read_umask() == umask
    file_mode, dir_mode = 0o666 & ~umask, 0o777 & ~umask
    record = tmp_path / "results" / "runs" / "r.json"
    write_json_atomic(record, {"a": 1})
    video = tmp_path / "videos" / "v.m4v"
    frames = [np.zeros((32, 32, 3), np.uint8)] * 3
    encode_frames(frames, video, EncodeOptions(width=32, height=32, gop=2))
    entry = tmp_path / "cache" / "ab" / "entry"
    VideoCache._write(entry, {"iframes": np.zeros(4, np.uint8)}, {"format": 1})
    for path in (record, video, entry / "iframes.npy", entry / "meta.json"):
        assert _mode(path) == file_mode, (path, oct(_mode(path)))
    for path in (record.parent, video.parent, entry.parent, entry):
        assert _mode(path) == dir_mode, (path, oct(_mode(path)))
    assert not [p for p in tmp_path.rglob(".*")], "no temporary file is left"


def test_the_synthetic_dataset_is_shared_too(tmp_path: Path, umask: int) -> None:
    from datamodules.datasets import create_dataset

    videos = create_dataset(
        "synthetic", tmp_path, 1, "train", progress=False, num_classes=2, videos_per_class=2,
        frames=8, size=[32, 32],
    )  # fmt: skip
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert videos.items[0].path in written and any(p.suffix == ".json" for p in written)
    assert {_mode(p) for p in written} == {0o666 & ~umask}


# ------------------------------------------------------------------ startup

IMPORT_CHECK = f"""
import argparse, sys
from cvbench.cli import build_parser

def parsers(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from parsers(sub)

for parser in parsers(build_parser()):
    parser.format_help()
print(sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r}))
"""


def test_help_imports_no_heavy_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    )
    assert out.stdout.strip() == "[]", out.stdout[:2000]


def test_help_is_quick() -> None:
    """Prints the wall time of `cvbench --help`; the bound is loose (the import check above
    is the real guard): about 0.2 s here, 7 s when Lightning was imported."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "cvbench.cli", "--help"],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    )
    elapsed = time.perf_counter() - started
    print(f"cvbench --help: {elapsed:.2f} s")
    assert elapsed < 10


def test_resume_from_a_corrupt_checkpoint_is_one_line(tmp_path: Path, capsys) -> None:
    argv = [
        *RUN, *_tiny(tmp_path / "data"), "--epochs", "1", "--batch-size", "2",
        "--limit-train-batches", "1", "--limit-test-batches", "1",
        "--work-dir", str(tmp_path / "work"), "--output", str(tmp_path / "records"),
    ]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    (last,) = (tmp_path / "work").glob("*/checkpoints/last.ckpt")
    last.write_bytes(b"not a checkpoint" * 8)
    try:
        code = main([*argv, "--resume"])
    except Exception as exc:  # noqa: BLE001  (an escaped error fails with its name)
        pytest.fail(f"{type(exc).__name__} escaped: {exc}")
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("cvbench run: error: ")
    assert str(last) in err
