"""The `cvbench` command in-process: help for every subcommand, prepare and data end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cvbench.cli import build_parser, main
from datamodules.encode import EncodeOptions, encode_frames


def _subcommands() -> list[list[str]]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    out = []
    for name, sub in action.choices.items():
        nested = [a for a in sub._actions if getattr(a, "choices", None) and a.dest != "help"]
        nested = [a for a in nested if isinstance(a.choices, dict)]
        out += [[name, n] for a in nested for n in a.choices] or [[name]]
    return out


@pytest.mark.parametrize("command", _subcommands(), ids=" ".join)
def test_every_option_is_explained(command: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    parser = build_parser()
    # every optional argument of the subcommand carries a help text
    sub = parser._subparsers._group_actions[0].choices[command[0]]
    for part in command[1:]:
        sub = next(
            a for a in sub._actions if isinstance(getattr(a, "choices", None), dict)
        ).choices[part]
    for action in sub._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{' '.join(command)} {action.option_strings} has no help"
    assert "usage:" in text


def test_prepare_then_data_on_a_folder_dataset(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    for c in range(2):
        for v in range(3):
            path = src / f"class{c}" / f"v{v}.avi"
            path.parent.mkdir(parents=True, exist_ok=True)
            frames = [rng.integers(0, 255, (48, 64, 3), np.uint8) for _ in range(14)]
            encode_frames(frames, path, EncodeOptions(width=64, height=48, gop=5, container="avi"))
    (src / "class1" / "broken.avi").write_bytes(b"\x00" * 100)
    dst = tmp_path / "videos"
    args = [
        "prepare",
        str(src),
        str(dst),
        "--width",
        "64",
        "--height",
        "48",
        "--workers",
        "1",
        "--no-progress",
    ]
    assert main(args) == 1  # one source failed
    out = capsys.readouterr()
    assert "6 encoded" in out.out and "1 failed" in out.out and "broken.avi" in out.err
    assert main(args) == 1
    assert "6 already done" in capsys.readouterr().out  # resumes: nothing re-encoded

    assert (
        main(
            [
                "data",
                "--dataset",
                "folder",
                "--root",
                str(dst),
                "--size",
                "32",
                "--batch-size",
                "2",
                "--batches",
                "1",
                "--json",
                "--no-progress",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["train_videos"] + report["test_videos"] == 6
    assert report["train"]["shapes"]["mv"].startswith("(2, 3, 2, 32, 32)")


def test_run_writes_a_record_and_resumes(tmp_path: Path, capsys) -> None:
    args = [
        "run",
        "--method",
        "iframe",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--no-progress",
        "--root",
        str(tmp_path / "synthetic"),
        "--dataset-option",
        "num_classes=3",
        "--dataset-option",
        "videos_per_class=4",
        "--dataset-option",
        "frames=24",
        "--dataset-option",
        "size=[64, 80]",
        "--set",
        "dropout=0.1",
        "--work-dir",
        str(tmp_path / "work"),
        "--output",
        str(tmp_path / "records"),
        "--json",
    ]
    assert main(args) == 0
    record = json.loads(capsys.readouterr().out)
    path = tmp_path / "records" / record["record_file"]
    assert json.loads(path.read_text())["config_hash"] == record["config_hash"]
    for key in (
        "method",
        "preset",
        "dataset",
        "split",
        "config",
        "seed",
        "code_version",
        "hardware",
        "pretrained",
        "metrics",
        "total_params",
        "tunable_params",
        "views",
        "timings",
        "wall_s",
    ):
        assert key in record, key
    assert record["config"]["dropout"] == 0.1 and record["pretrained"][0]["weights"] == "none"
    assert Path(record["checkpoint"]).is_file()
    # a second run with --resume starts from the last checkpoint (nothing left to train)
    assert main([*args, "--resume"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["run_id"] == record["run_id"]


def test_run_rejects_an_unknown_config_key(tmp_path: Path, capsys) -> None:
    code = main(
        [
            "run",
            "--method",
            "iframe",
            "--set",
            "no_such_field=1",
            "--root",
            str(tmp_path),
            "--dataset-option",
            "num_classes=2",
            "--dataset-option",
            "videos_per_class=2",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2  # one line, no traceback (tests/test_cli_contract.py has the rest)
    assert err.startswith("cvbench run: error:") and "no_such_field" in err


def test_two_process_ddp_run_on_cpu(tmp_path: Path) -> None:
    """`cvbench run --devices 2 --strategy ddp` on the CPU (gloo): Lightning launches the
    second process; test scores are gathered across ranks before the per-video metrics."""
    import subprocess
    import sys

    script = Path(sys.executable).parent / "cvbench"
    out = subprocess.run(
        [
            str(script),
            "run",
            "--method",
            "iframe",
            "--epochs",
            "1",
            "--batch-size",
            "2",
            "--accelerator",
            "cpu",
            "--devices",
            "2",
            "--strategy",
            "ddp",
            "--no-progress",
            "--root",
            str(tmp_path / "syn"),
            "--dataset-option",
            "num_classes=3",
            "--dataset-option",
            "videos_per_class=4",
            "--dataset-option",
            "frames=24",
            "--work-dir",
            str(tmp_path / "work"),
            "--output",
            str(tmp_path / "records"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    record = json.loads(out.stdout)
    # 3 test videos split over 2 ranks (the sampler pads one): gathered and counted once
    assert record["metrics"]["test_videos"] == 3
    assert len(list((tmp_path / "records").glob("*.json"))) == 1
