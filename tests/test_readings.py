"""The readings convention: each alternative reading of a paper is a ``paper_X`` preset with
a ``tiny_X`` counterpart, a reason, a docstring entry and a committed cost record.

The methods' own tests check what each reading computes; these check that every reading
is complete, so a user can run both readings and the tables can show them side by side.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import pytest

import methods  # noqa: F401  (registers the methods)
from cvbench.cli import main
from methods.registry import get_method, list_methods

RUNS = Path(__file__).resolve().parents[1] / "results" / "runs"
READINGS = [(m, p) for m in list_methods() for p in get_method(m).readings]


def _changed(base: object, other: object) -> dict[str, object]:
    """Fields of ``other`` that differ from ``base`` (top level of the config dataclass)."""
    return {
        f.name: getattr(other, f.name)
        for f in dataclasses.fields(base)
        if getattr(base, f.name) != getattr(other, f.name)
    }


def test_some_methods_declare_readings() -> None:
    assert READINGS, "no method declares a reading"


@pytest.mark.parametrize(("method", "preset"), READINGS, ids=[f"{m}-{p}" for m, p in READINGS])
def test_reading_is_complete(method: str, preset: str) -> None:
    entry = get_method(method)
    reason = entry.readings[preset]
    assert len(reason.split()) >= 8, "the reason says what differs and why"
    tiny = entry.tiny_counterpart(preset)
    assert tiny == "tiny_" + preset.removeprefix("paper_") and tiny in entry.presets
    # the reading is documented where the method's other choices are
    assert preset in inspect.getdoc(inspect.getmodule(entry.module))
    # the paper preset's reading switches are the tiny counterpart's too
    paper, reading = entry.make_config("paper"), entry.make_config(preset)
    switches = {
        k: v
        for k, v in _changed(paper, reading).items()
        if isinstance(v, str | bool) or dataclasses.is_dataclass(v)
    }
    assert _changed(paper, reading), f"{preset} is the paper preset under another name"
    changed_tiny = _changed(entry.make_config("tiny"), entry.make_config(tiny))
    assert switches.items() <= changed_tiny.items(), (switches, changed_tiny)
    # its own cost record, counted like the paper preset's
    record = json.loads((RUNS / f"cost-{method}-{preset}.json").read_text())
    assert (record["method"], record["preset"]) == (method, preset)
    paper_record = json.loads((RUNS / f"cost-{method}-paper.json").read_text())
    quantities = [{c["quantity"] for c in r["comparison"]} for r in (record, paper_record)]
    assert quantities[0] == quantities[1], "compared with the same rows as the paper preset"


@pytest.mark.slow
@pytest.mark.parametrize(("method", "preset"), READINGS, ids=[f"{m}-{p}" for m, p in READINGS])
def test_tiny_counterpart_trains_on_synthetic(
    method: str, preset: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tiny = get_method(method).tiny_counterpart(preset)
    code = main(["run", "--method", method, "--preset", tiny, "--dataset", "synthetic",
                 "--epochs", "1", "--limit-train-batches", "3", "--accelerator", "cpu",
                 "--workers", "0", "--logger", "csv", "--no-progress", "--output", "out"])  # fmt: skip
    assert code == 0
    (path,) = Path("out").glob("*.json")
    record = json.loads(path.read_text())
    assert record["preset"] == tiny and record["epochs_completed"] == 1
