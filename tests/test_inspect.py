"""``cvbench inspect``: exact reconstruction from the served arrays, stream facts, errors."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from cvbench.cli import main
from cvbench.commands import inspect as inspect_command
from cvbench.commands.inspect import inspect_video
from datamodules.synthetic import make_translation_video


def _decoded_types(path: Path) -> str:
    with av.open(str(path)) as container:
        return "".join(
            av.video.frame.PictureType(f.pict_type).name for f in container.decode(video=0)
        )


@pytest.fixture(scope="module")
def real_report(real_video: Path) -> dict:
    return inspect_video(real_video)


def test_reconstruction_is_exact_on_real_footage(real_report: dict) -> None:
    recon = real_report["reconstruction"]
    assert recon["accumulated"]["max_error"] == 0
    assert recon["previous_frame"]["max_error"] == 0
    assert recon["pframes_checked"] == real_report["frames"] - real_report["gops"]


def test_stream_facts_of_real_footage(real_report: dict, real_video: Path) -> None:
    r = real_report
    assert (r["codec"], r["width"], r["height"], r["frames"]) == ("mpeg4", 340, 256, 250)
    assert r["frame_types"] == _decoded_types(real_video)
    assert r["frame_types_match_gops"]
    assert r["gop_starts"] == [i for i, t in enumerate(r["frame_types"]) if t == "I"]
    assert sum(r["gop_lengths"]) == 250 and len(set(r["gop_lengths"])) > 1  # scene cuts
    assert 0 < r["packet_bytes"] <= r["file_bytes"]
    mv = r["mv"]
    assert mv["pframes"] == 250 - r["gops"]
    assert 0 < mv["nonzero_fraction"] <= 1
    assert 0 < mv["mean_magnitude_px"] <= mv["max_magnitude_px"]
    assert mv["mean_abs_dx_px"] >= abs(mv["mean_dx_px"])


def test_generated_video_exact_and_motion_has_the_right_sign(tmp_path: Path) -> None:
    # content moves right and down (vx 2 > vy 1 px/frame): MV = dst - src is positive
    truth = make_translation_video(tmp_path / "t.m4v", frames=24, velocity=(1.0, 2.0))
    r = inspect_video(truth.path)
    assert r["reconstruction"]["accumulated"]["max_error"] == 0
    assert r["reconstruction"]["previous_frame"]["max_error"] == 0
    assert r["frame_types"] == ("I" + "P" * 11) * 2
    assert r["gop_starts"] == [0, 12] and r["gop_lengths"] == [12, 12]
    mv = r["mv"]
    assert mv["mean_dx_px"] > mv["mean_dy_px"] > 0
    assert mv["nonzero_fraction"] < 0.5  # the textured background is static


def test_cli_json_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    truth = make_translation_video(tmp_path / "t.m4v", size=(64, 96), frames=14)
    assert main(["inspect", str(truth.path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reconstruction"]["accumulated"]["max_error"] == 0
    assert report["path"] == str(truth.path) and report["frames"] == 14
    assert main(["inspect", str(truth.path)]) == 0
    text = capsys.readouterr().out
    assert "96x64" in text and "max error 0  OK" in text and "IPPPPPPPPPPPIP" in text


@pytest.mark.parametrize("kind", ["missing", "not a video", "empty"])
def test_unreadable_video_exit_code_and_message(
    tmp_path: Path, capsys: pytest.CaptureFixture, kind: str
) -> None:
    path = tmp_path / "v.m4v"
    if kind == "not a video":
        path.write_text("hello, I am a text file\n" * 10)
    elif kind == "empty":
        path.write_bytes(b"")
    assert main(["inspect", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert str(path) in captured.err and "error" in captured.err
    if kind == "missing":
        assert "file not found" in captured.err


def test_nonzero_reconstruction_error_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    truth = make_translation_video(tmp_path / "t.m4v", size=(48, 64), frames=4)
    report = inspect_video(truth.path)
    report["reconstruction"]["accumulated"].update(
        max_error=3, frames_with_error=1, first_bad_frame=2
    )
    monkeypatch.setattr(inspect_command, "inspect_video", lambda path: report)
    assert main(["inspect", str(truth.path)]) == 1
    captured = capsys.readouterr()
    assert "FAIL" in captured.out and "reconstruction error" in captured.err
