"""CI regression checks: the papers' structural numbers, the seeded baselines, `cvbench check`.

The planted regressions prove the checks fail when they should: a paper preset built at
another width fails its structural comparison naming the method and the number, and a real
short benchmark of the iframe baseline with its input zeroed makes `cvbench baseline` exit 1.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import methods  # noqa: F401  (registers every method)
from cvbench import baseline as bl
from cvbench import structural as st
from cvbench.cli import main
from cvbench.reported import load_reported
from methods.base import BaseMethod
from methods.registry import get_method, list_methods

# a small synthetic set and schedule: the real benchmark's code path in a few seconds
SMALL_DATA = {"num_classes": 4, "videos_per_class": 4, "frames": 30, "size": [64, 80]}
SMALL = bl.Schedule(epochs=2, limit_train_batches=3, batch_size=4, dataset_options=SMALL_DATA)


@pytest.fixture(scope="module")
def reported():
    return load_reported(st.DEFAULT_PATH, strict=False)


# --------------------------------------------------------------------------- structural


@pytest.mark.slow
def test_structural_numbers_pass_for_every_paper_preset() -> None:
    """Every preset of the table built on meta (about 25 s): all within tolerance or their
    documented gap, and every registered method is covered."""
    comparisons = st.check_structural()
    assert {c.method for c in comparisons} | set(st.UNREPORTED) == set(list_methods())
    failed = [c.message() for c in comparisons if not c.passed]
    assert not failed, "\n".join(failed)
    assert not any(c.stale_gap for c in comparisons)


def test_cvpt_structural_numbers_pass() -> None:
    comparisons = st.check_structural(["cvpt"])
    # paper (SL row), paper_ssl (the SSL rows of Tables 1 and 2), then the paper_mv_channels
    # reading against the paper preset's row: the same counts everywhere
    assert [(c.preset, c.source, c.quantity, c.ours_key) for c in comparisons] == [
        (preset, f"cvpt.txt {row}", quantity, key)
        for preset, row in (
            ("paper", "Table 1 row 25"),
            ("paper_ssl", "Table 1 row 24"),
            ("paper_ssl", "Table 2 row 14"),
            ("paper_mv_channels", "Table 1 row 25"),
        )
        for quantity, key in (
            ("tunable_params", "tunable_params_excl_prompt_embed"),
            ("gflops", "gmacs_all_views"),
        )
    ]
    assert {(c.quantity, c.ours) for c in comparisons} == {
        (c.quantity, c.ours) for c in comparisons[:2]
    }
    assert all(c.passed and c.within_tolerance for c in comparisons)
    tunable = comparisons[0]
    assert tunable.reported == 500_000 and tunable.ours == 547_985  # "0.5M": 0.45-0.55M
    assert tunable.tolerance_pct == pytest.approx(10.0)


def test_planted_structural_regression_names_method_and_number(monkeypatch) -> None:
    """CVPT's paper preset at twice the SCCP bottleneck width (C/alpha 16, not 8)."""
    entry = get_method("cvpt")
    paper = entry.presets["paper"]
    monkeypatch.setitem(entry.presets, "paper", lambda: dataclasses.replace(paper(), reduction=48))
    comparisons = st.check_structural(["cvpt"])
    failed = [c for c in comparisons if not c.passed]
    assert [c.quantity for c in failed] == ["tunable_params"]
    message = failed[0].message()
    assert message.startswith("cvpt paper tunable_params (cvpt.txt Table 1 row 25")
    assert "paper 0.5M" in message and "no documented gap" in message
    assert "FAIL cvpt paper tunable_params" in st.format_comparisons(comparisons)


def test_every_entry_reads_a_reported_number_of_its_method(reported) -> None:
    for number in st.STRUCTURAL:
        value, problem = st._reported_value(reported, number)
        assert value is not None, problem
        assert (number.gap is None) == (number.documented_diff_pct is None), number
        get_method(number.method).make_config(number.preset)  # the preset exists


def test_every_registered_method_is_covered() -> None:
    assert st.uncovered_methods(list_methods()) == []
    assert st.uncovered_methods(["newmethod"]) == ["newmethod"]


@pytest.mark.parametrize(
    ("quantity", "printed", "expected"),
    [
        ("tunable_params", 0.5, 10.0),  # 0.45-0.55M
        ("tunable_params", 37.9, 2.0),
        ("gflops", 89, 10.0),
        ("tunable_params", 0.7, 100 * 0.05 / 0.7),  # one decimal: half a unit is 7.1 %
    ],
)
def test_tolerance_is_widened_to_the_printed_precision(quantity, printed, expected) -> None:
    assert st.tolerance_pct(quantity, printed) == pytest.approx(expected)


def _number(method: str, preset: str, quantity: str, ours_key: str):
    return next(
        n
        for n in st.STRUCTURAL
        if (n.method, n.preset, n.quantity, n.ours_key) == (method, preset, quantity, ours_key)
    )


def test_beyond_tolerance_without_a_gap_fails(reported) -> None:
    number = _number("tcar", "paper", "tunable_params", "tunable_params")
    ok = st.compare(number, {"tunable_params": 38_500_000}, reported)  # +1.6 %
    assert ok.passed and ok.within_tolerance and ok.gap is None
    bad = st.compare(number, {"tunable_params": 40_000_000}, reported)  # +5.5 %
    assert not bad.passed and not bad.within_tolerance
    assert "beyond tolerance and no documented gap" in bad.message()


def test_a_documented_gap_cannot_grow(reported) -> None:
    number = _number("meaci", "paper", "tunable_params", "tunable_params")  # -7.0 %
    assert st.compare(number, {"tunable_params": 47_142_623}, reported).passed
    grown = st.compare(number, {"tunable_params": 40_000_000}, reported)  # -21 %
    assert not grown.passed and "the documented gap is -7.0 %" in grown.message()
    closed = st.compare(number, {"tunable_params": 50_700_000}, reported)
    assert closed.passed and closed.stale_gap  # passes, and says the gap can go


def test_missing_cost_key_or_row_is_a_problem(reported) -> None:
    number = _number("cvpt", "paper", "gflops", "gmacs_all_views")
    missing = st.compare(number, {}, reported)
    assert not missing.passed and "no number 'gmacs_all_views'" in missing.message()
    moved = dataclasses.replace(number, row=999)
    assert (
        "has no row cvpt.txt Table 1 row 999"
        in st.compare(moved, {"gmacs_all_views": 1.0}, reported).message()
    )


def test_cost_records_and_their_staleness(tmp_path: Path, reported) -> None:
    cost = {
        "method": "cvpt",
        "preset": "paper",
        "total_params": 92_684_177,
        "tunable_params": 6_447_761,
        "tunable_params_excl_prompt_embed": 547_985,
        "gmacs_per_view": 128.3222,
        "views": 6,
        "gmacs_all_views": 769.9331,
        "attention_blind_gmacs_per_view": 128.3222,
    }
    comparisons = st.compare_cost(cost, reported)
    record = st.cost_record(cost, comparisons, "test", "2025-01-01T00:00:00+00:00")
    assert record["kind"] == "cost" and record["num_classes"] == 101
    assert [c["source"] for c in record["comparison"]] == ["cvpt.txt Table 1 row 25"] * 2
    assert set(record["comparison"][0]) >= {
        "quantity",
        "reported",
        "ours",
        "ours_key",
        "diff_pct",
        "tolerance_pct",
        "within_tolerance",
        "gap",
        "source",
    }
    path = st.cost_record_path("cvpt", "paper", tmp_path)
    path.write_text(json.dumps(record))
    costs = {("cvpt", "paper"): cost}
    assert st.stale_cost_records(tmp_path, costs, comparisons) == []
    changed = {**cost, "gmacs_all_views": 800.0}
    stale = st.stale_cost_records(tmp_path, {("cvpt", "paper"): changed}, comparisons)
    assert len(stale) == 1 and "gmacs_all_views" in stale[0] and "--save" in stale[0]


def test_flops_save_writes_a_cost_record(tmp_path: Path, capsys) -> None:
    assert main(["flops", "--method", "cvpt", "--save", "--runs", str(tmp_path), "--json"]) == 0
    record = json.loads((tmp_path / "cost-cvpt-paper.json").read_text())
    assert record["kind"] == "cost" and record["preset"] == "paper"
    assert record["tunable_params_excl_prompt_embed"] == 547_985
    assert [c["within_tolerance"] for c in record["comparison"]] == [True, True]
    out = capsys.readouterr()
    assert json.loads(out.out)["method"] == "cvpt"  # stdout stays JSON
    assert "2 comparison(s)" in out.err
    assert main(["flops", "--method", "cvpt", "--save", "--num-classes", "51"]) == 2


# --------------------------------------------------------------------------- baselines


def test_compare_values_within_and_beyond_tolerance() -> None:
    old = {"train_loss": 2.0, "top1": 0.5, "total_params": 1000}
    tolerances = bl.TOLERANCES
    assert (
        bl.compare_values(
            "m", old, {"train_loss": 2.05, "top1": 0.55, "total_params": 1000}, tolerances
        )
        == []
    )
    deviations = bl.compare_values(
        "iframe", old, {"train_loss": 2.5, "top1": 0.2, "total_params": 1001}, tolerances
    )
    assert [d.metric for d in deviations] == ["train_loss", "top1", "total_params"]
    message = deviations[0].message()
    assert message.startswith("iframe: train_loss changed from 2 to 2.5")
    assert "tolerance relative 3 %" in message and "+25.0 %" in message
    assert deviations[1].message() == (
        "iframe: top1 changed from 0.5 to 0.2 (tolerance absolute 0.1, -60.0 %)"
    )
    assert "tolerance exact" in deviations[2].message()
    missing = bl.compare_values("iframe", old, {"top1": 0.5, "total_params": 1000}, tolerances)
    assert [d.message() for d in missing] == ["iframe: train_loss was 2.0, not measured now"]


def test_tolerances_cover_every_metric() -> None:
    assert set(bl.TOLERANCES) == set(bl.METRICS)
    assert bl.Tolerance("relative", 0.01).allows(2.0, 2.02)
    assert not bl.Tolerance("relative", 0.01).allows(2.0, 2.03)
    assert bl.Tolerance("absolute", 0.1).allows(0.5, 0.4)
    assert not bl.Tolerance("exact").allows(1, 2)
    with pytest.raises(ValueError, match="unknown kind"):
        bl.Tolerance("roughly", 0.1)


def _fake_measure(values: dict):
    def measure(method: str, schedule=bl.DEFAULT_SCHEDULE, root=None) -> dict:
        return {**values, "wall_s": 0.0}

    return measure


FAKE = {
    "train_loss": 2.0,
    "test_loss": 2.1,
    "top1": 0.5,
    "mean_class": 0.5,
    "weight_change": 0.1,
    "tunable_params": 10,
    "total_params": 20,
}


def test_baseline_cli_update_then_compare(tmp_path: Path, monkeypatch, capsys) -> None:
    """The command's logic with the benchmark replaced by fixed numbers."""
    monkeypatch.setattr(bl, "run_benchmark", _fake_measure(FAKE))
    args = ["baseline", "--baselines", str(tmp_path), "--method", "iframe"]
    assert main([*args, "--update"]) == 0
    assert "iframe: new baseline" in capsys.readouterr().out
    saved = bl.load_baseline(tmp_path / "iframe.json")
    assert saved.values == FAKE and saved.schedule == bl.DEFAULT_SCHEDULE
    assert saved.tolerances == bl.TOLERANCES
    assert main(args) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "PASS"

    monkeypatch.setattr(bl, "run_benchmark", _fake_measure({**FAKE, "top1": 0.3}))
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "iframe: top1 changed from 0.5 to 0.3 (tolerance absolute 0.1" in out
    assert main([*args, "--update"]) == 0
    assert "iframe: top1 0.5 -> 0.3" in capsys.readouterr().out
    # a registered method without a baseline file is a failure that says how to make one
    assert main(["baseline", "--baselines", str(tmp_path), "--method", "stm"]) == 1
    assert "cvbench baseline --update --method stm" in capsys.readouterr().out
    assert main(["baseline", "--method", "nosuchmethod"]) == 2

    def crash(method, schedule=None, root=None):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(bl, "run_benchmark", crash)
    assert main(args) == 1
    assert (
        "FAIL iframe: the benchmark failed: RuntimeError: shape mismatch" in capsys.readouterr().out
    )


def test_committed_baselines_are_readable_and_complete() -> None:
    for name in list_methods():
        baseline = bl.load_baseline(bl.baseline_path(name))
        assert baseline.method == name and baseline.preset == "tiny"
        assert set(baseline.values) == set(bl.METRICS)
        assert baseline.schedule.threads == 1


def _zeroed_input(monkeypatch) -> None:
    """The planted regression: the iframe baseline sees black frames."""
    from methods.iframe import IFrameBaseline

    def forward(self, batch):
        return self.net(torch.zeros_like(batch["iframe"]))

    monkeypatch.setattr(IFrameBaseline, "forward", forward)


def test_planted_regression_fails_cvbench_baseline(tmp_path: Path, monkeypatch, capsys) -> None:
    """A real (small) benchmark run of iframe, then the same with its input zeroed: exit 1,
    naming the method and the metric."""
    root = tmp_path / "data"
    bl.update_baselines(["iframe"], tmp_path, schedule=SMALL, root=root, progress=False)
    _zeroed_input(monkeypatch)
    args = ["baseline", "--baselines", str(tmp_path), "--method", "iframe", "--root", str(root)]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "FAIL iframe" in out and "iframe: train_loss changed from" in out


@pytest.mark.slow
def test_benchmark_is_reproducible_and_catches_a_broken_schedule(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    root = tmp_path / "data"
    bl.update_baselines(["iframe"], tmp_path, schedule=SMALL, root=root, progress=False)
    args = ["baseline", "--baselines", str(tmp_path), "--method", "iframe", "--root", str(root)]
    assert main(args) == 0  # the same run again: the same numbers
    capsys.readouterr()
    monkeypatch.setattr(BaseMethod, "_lr_factor", lambda self, step: 0.0)  # lr x 0
    assert main(args) == 1
    assert "iframe: train_loss changed from" in capsys.readouterr().out


# --------------------------------------------------------------------------- cvbench check


def test_check_structural_part_only(capsys) -> None:
    code = main(["check", "--method", "cvpt", "--skip-benchmark", "--skip-tables"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "== structural" in out and "PASS structural" in out and "skip benchmark" in out
    assert out.splitlines()[-1] == "PASS"


def test_check_fails_on_a_planted_regression(tmp_path: Path, monkeypatch, capsys) -> None:
    entry = get_method("cvpt")
    paper = entry.presets["paper"]
    monkeypatch.setitem(entry.presets, "paper", lambda: dataclasses.replace(paper(), reduction=48))
    monkeypatch.setattr(bl, "run_benchmark", _fake_measure({**FAKE, "train_loss": 3.0}))
    bl.baseline_path("cvpt", tmp_path).write_text(
        json.dumps(bl.baseline_record("cvpt", bl.DEFAULT_SCHEDULE, {**FAKE, "wall_s": 0}))
    )
    args = ["check", "--method", "cvpt", "--skip-tables", "--baselines", str(tmp_path)]
    assert main([*args, "--runs", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL cvpt paper tunable_params" in out
    assert "cvpt: train_loss changed from 2 to 3" in out
    assert "FAIL structural" in out and "FAIL benchmark" in out
    assert out.splitlines()[-1] == "FAIL"


def test_a_learning_rate_of_zero_shows_in_the_weight_change() -> None:
    """The models that barely leave chance in the benchmark's 40 steps keep their losses
    within tolerance at lr 0 (README), but their weights do not move: weight_change 0."""
    old = {"train_loss": 2.2889, "weight_change": 0.203743}
    new = {"train_loss": 2.2905, "weight_change": 0.0}
    deviations = bl.compare_values("stm", old, new, bl.TOLERANCES)
    assert [d.metric for d in deviations] == ["weight_change"]
    assert "stm" in deviations[0].message() and "0.203743" in deviations[0].message()
