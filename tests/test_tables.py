"""`cvbench table`: records checked field by field, tables rebuilt byte for byte, --check.

Records are written into tmp_path by the tests; the papers' numbers are the committed
results/reported.yaml (TCAR-Net Table 1 row 16: 544.85 GFLOPs, 37.9 M tunable, 74.3 HMDB51,
96.0 UCF101).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import pytest

from cvbench.cli import main
from cvbench.provenance import write_json_atomic
from cvbench.records import load_records, pick_latest
from cvbench.report.papers import OUR_METHODS
from cvbench.tables import (
    chance_p_value,
    check_tables,
    latex_escape,
    load_inputs,
    p_value_cell,
    render_all,
)
from methods.registry import get_method

ROOT = Path(__file__).resolve().parents[1]
REPORTED = ROOT / "results" / "reported.yaml"
RUNS = ROOT / "results" / "runs"


# --------------------------------------------------------------------------- record makers


def run_record(
    method: str = "coviar",
    *,
    preset: str = "tiny",
    dataset: str = "synthetic",
    split: int = 1,
    top1: float = 0.5,
    created: str = "2026-01-01T00:00:00+00:00",
    shots: int | None = None,
    seed: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    record = {
        "kind": "run",
        "run_id": f"{method}-{preset}-{dataset}-s{split}",
        "method": method,
        "preset": preset,
        "dataset": dataset,
        "split": split,
        "seed": seed,
        "created": created,
        "code_version": "0.1.0+test",
        "pretrained": [{"option": "pretrained", "weights": "none"}],
        "metrics": {
            "top1": top1,
            "top5": 0.9,
            "mean_class": top1,
            "test_videos": 50,
            "views_per_video": 1.0,
        },
        "total_params": 2_000_000,
        "tunable_params": 1_000_000,
        "views": 1,
        "timings": {"train_s": 10.0, "test_s": 1.0},
        "epochs": 3,
    }
    if shots is not None:
        record["shots"] = shots
    record.update(extra)
    return record


OFFICIAL = {
    "ucf101": ((9537, 9586, 9624), (3783, 3734, 3696)),
    "hmdb51": ((3570,) * 3, (1530,) * 3),
    "kinetics400": ((240436,), (19796,)),  # one official split: train / validation
    "ssv2": ((168913,), (24777,)),
}


def protocol_record(
    method: str = "tcar",
    *,
    preset: str = "paper",
    dataset: str = "ucf101",
    split: int = 1,
    seed: int = 0,
    top1: float = 0.9,
    shots: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A format-2 record of the paper's recipe on the complete official split: protocol."""
    train, test = (counts[split - 1] for counts in OFFICIAL[dataset])
    record = run_record(
        method, preset=preset, dataset=dataset, split=split, top1=top1, shots=shots, seed=seed
    )
    identity = f"{method}-{preset}-{dataset}-{split}-{seed}-{shots}"
    record.update(
        run_id=f"{method}-{preset}-{dataset}-s{split}-seed{seed}",
        record_format=2,
        identity={"method": method, "seed": seed},
        identity_hash=identity,
        changed_settings={},
        weights=[{"option": "pretrained", "file": "weights/clip.bin", "sha256": "ab" * 32}],
        epochs_requested=3,
        epochs_completed=3,
        batches={"train_seen": 100, "train_available": 100, "test_seen": 50, "test_available": 50},
        test_videos={"scored": test, "in_split": test, "official": test},
        train_videos={"used": train, "in_split": train, "official": train},
        skipped_videos=[],
        resumed=False,
        attempts=[  # as cvbench run writes them (cvbench/run.py)
            {
                "started": "2026-01-01T00:00:00+00:00",
                "wall_s": 10.0,
                "train_s": 9.0,
                "epoch_start": 0,
                "epoch_end": 3,
                "train_batches": 100,
            }
        ],
    )
    record["metrics"]["test_videos"] = test
    record.pop("pretrained")
    record.update(extra)
    return record


def comparison(
    quantity: str,
    reported: float,
    ours: float,
    key: str,
    within: bool,
    gap: str | None,
    source: str,
) -> dict[str, Any]:
    return {
        "quantity": quantity,
        "reported": reported,
        "ours": ours,
        "ours_key": key,
        "diff_pct": round(100 * (ours / reported - 1), 4),
        "tolerance_pct": 5.0,
        "within_tolerance": within,
        "gap": gap,
        "source": source,
    }


def tcar_cost() -> dict[str, Any]:
    """A hand-made cost record: the paper's GFLOPs counted attention-blind (541.4 vs 544.85,
    -0.63 %, within 5 %), tunable 37.83 M vs 37.9 M, total with a documented gap."""
    return {
        "kind": "cost",
        "method": "tcar",
        "preset": "paper",
        "code_version": "0.1.0+test",
        "created": "2026-01-01T00:00:00+00:00",
        "total_params": 187_000_000,
        "tunable_params": 37_830_000,
        "gmacs_per_view": 843.7,
        "views": 1,
        "gmacs_all_views": 843.7,
        "attention_blind_gmacs_per_view": 541.4,
        "comparison": [
            comparison(
                "gflops",
                544.85,
                541.4,
                "attention_blind_gmacs_per_view",
                True,
                None,
                "tcar_net.txt Table 1 row 16",
            ),
            comparison(
                "tunable_params",
                37_900_000,
                37_830_000,
                "tunable_params",
                True,
                None,
                "tcar_net.txt Table 1 row 16",
            ),
            comparison(
                "total_params",
                359_910_000,
                187_000_000,
                "total_params",
                False,
                "the paper counts both CLIP towers twice",
                "tcar_net.txt Table 1 row 16",
            ),
        ],
    }


def timing_record(method: str, device: str = "cpu", preprocess: float = 10.0) -> dict[str, Any]:
    return {
        "kind": "timing",
        "method": method,
        "preset": "tiny",
        "device": device,
        "created": "2026-01-01T00:00:00+00:00",
        "code_version": "0.1.0+test",
        "clip": {"file": "bikes.m4v"},
        "sampling": {"kind": "segments"},
        "views": 1,
        "repeats": 3,
        "warmup": 1,
        "threads": 1,
        "preprocess_ms": preprocess,
        "inference_ms": 20.0,
        "full_ms": preprocess + 20.5,
        "notes": "test",
    }


def write(folder: Path, name: str, record: dict[str, Any]) -> Path:
    path = folder / name
    write_json_atomic(path, record)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    folder = tmp_path / "runs"
    write(folder, "coviar-a.json", run_record("coviar", top1=0.24))
    write(folder, "stm-a.json", run_record("stm", top1=0.48))
    return folder


# --------------------------------------------------------------------------- records


def test_malformed_records_are_reported_and_the_rest_render(tmp_path: Path, runs: Path, capsys):
    (runs / "broken.json").write_text("{not json")
    missing = run_record("meaci")
    del missing["metrics"]
    write(runs, "missing.json", missing)
    write(runs, "wrong-type.json", run_record("tcar", top1="high"))
    write(runs, "out-of-range.json", run_record("cvpt", top1=1.5))
    write(runs, "unknown-kind.json", {**run_record("iframe"), "kind": "sweep"})
    bad_cost = tcar_cost()
    bad_cost["comparison"][1]["within_tolerance"] = "yes"
    write(runs, "cost-bad.json", bad_cost)

    records = load_records(runs)
    found = {(p.file, p.field) for p in records.problems}
    assert ("broken.json", None) in found
    assert ("missing.json", "metrics") in found
    assert ("wrong-type.json", "metrics.top1") in found
    assert ("out-of-range.json", "metrics.top1") in found
    assert ("unknown-kind.json", "kind") in found
    assert ("cost-bad.json", "comparison[1].within_tolerance") in found
    assert sorted(r.file for r in records.runs) == ["coviar-a.json", "stm-a.json"]
    assert records.costs == []

    out = tmp_path / "tables"
    assert main(["table", "--runs", str(runs), "--out", str(out), "--no-figures"]) == 0
    printed = capsys.readouterr().out
    assert "missing.json: metrics: missing" in printed
    assert "wrong-type.json: metrics.top1:" in printed
    assert "broken.json: (file): not readable JSON" in printed
    rows = read_csv(out / "splits.csv")
    assert [(r["Method"], r["Split 1"]) for r in rows] == [("stm", "48.0"), ("coviar", "24.0")]


def test_old_run_records_without_kind_are_runs(tmp_path: Path):
    record = run_record()
    del record["kind"]
    write(tmp_path, "old.json", record)
    records = load_records(tmp_path)
    assert records.problems == [] and records.runs[0].kind == "run"


def test_pick_latest_created_then_file_name(tmp_path: Path):
    write(tmp_path, "a.json", run_record(top1=0.1, created="2026-01-02T00:00:00+00:00"))
    write(tmp_path, "b.json", run_record(top1=0.2, created="2026-01-01T00:00:00+00:00"))
    write(tmp_path, "c.json", run_record(top1=0.3, created="2026-01-02T00:00:00"))  # no zone: UTC
    write(tmp_path, "d.json", run_record(top1=0.4, split=2))
    picked = pick_latest(load_records(tmp_path).runs)
    assert {k: r.file for k, r in picked.items()} == {
        ("coviar", "tiny", "synthetic", 1, None): "c.json",  # tie with a.json: greater name
        ("coviar", "tiny", "synthetic", 2, None): "d.json",
    }


# --------------------------------------------------------------------------- tables


def test_render_twice_gives_identical_bytes(tmp_path: Path, runs: Path):
    write(runs, "cost-tcar-paper.json", tcar_cost())
    write(runs, "timing-coviar.json", timing_record("coviar"))
    first = render_all(runs, REPORTED, tmp_path / "one")
    second = render_all(runs, REPORTED, tmp_path / "two")
    assert [p.name for p in first] == [p.name for p in second]
    assert {p.suffix for p in first} == {".md", ".csv", ".tex"}
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_reproduced_vs_reported_difference(tmp_path: Path, runs: Path):
    write(runs, "cost-tcar-paper.json", tcar_cost())
    out = tmp_path / "tables"
    render_all(runs, REPORTED, out)

    rows = [r for r in read_csv(out / "main.csv") if r["Block"] == "TCAR-Net Table 1"]
    kinds = [r["Kind"] for r in rows]
    at = kinds.index("reproduced")
    anchor, ours, diff = rows[at - 1], rows[at], rows[at + 1]
    assert anchor["Method"] == "Ours ViT/B" and anchor["GFLOPs"] == "544.85"
    assert ours["GFLOPs"] == "541.40"  # the convention the comparison names
    assert ours["Tunable params (M)"] == "37.83"
    assert diff["Kind"] == "diff"
    assert diff["GFLOPs"] == "-3.45 (-0.6%)"  # 541.40 - 544.85, -0.63 %
    assert diff["Tunable params (M)"] == "-0.07 (-0.2%)"
    assert ours["UCF101"] == ours["HMDB51"] == "n/a"  # no run at the paper preset
    assert diff["UCF101"] == "n/a"
    assert "cost-tcar-paper.json" in ours["Sources"]
    md = (out / "main.md").read_text()
    assert "cost-tcar-paper.json compares against it" in md
    assert "no protocol run of `tcar` at preset `paper` on ucf101: n/a" in md

    rows = read_csv(out / "cost.csv")
    tcar = {r["Quantity"]: r for r in rows if (r["Method"], r["Preset"]) == ("tcar", "paper")}
    assert list(tcar) == ["tunable params (M)", "total params (M)", "GFLOPs"]  # quantity order
    gflops = tcar["GFLOPs"]
    assert gflops["Preset"] == "paper"
    assert gflops["Reported"] == "544.85 (TCAR-Net Table 1 row 16)"
    assert gflops["Ours"] == "541.40"
    assert gflops["Counted as"] == "attention-blind GMACs per view"
    assert (gflops["Diff (%)"], gflops["Tol. (%)"], gflops["Verdict"]) == ("-0.6", "5.0", "ok")
    assert gflops["Sources"] == ("cost-tcar-paper.json; reported.yaml: tcar_net.txt Table 1 row 16")
    assert tcar["tunable params (M)"]["Reported"] == "37.90 (TCAR-Net Table 1 row 16)"
    # a documented gap: a numbered footnote, the reason under the table, not in the cell
    assert tcar["total params (M)"]["Verdict"] == "documented gap [1]"
    md = (out / "cost.md").read_text()
    assert "- [1] the paper counts both CLIP towers twice" in md
    assert "| documented gap [1] |" in md and "CLIP towers twice |" not in md
    # methods without a cost record: one row each, in registry order after tcar's, and one
    # per reading of the paper (paper_X presets) after the method's paper row
    others = [
        (r["Method"], r["Preset"], r["Verdict"])
        for r in rows
        if (r["Method"], r["Preset"]) != ("tcar", "paper")
    ]
    expected = [
        (m, p)
        for m in OUR_METHODS
        for p in ("paper", *get_method(m).readings)
        if (m, p) != ("tcar", "paper")
    ]
    assert [(m, p) for m, p, _ in others] == expected
    assert ("cvpt", "paper_mv_channels") in expected
    assert all(v.startswith("no cost record [") for _, _, v in others)

    by_method = {r["Method"]: r for r in read_csv(out / "synthetic.csv")}
    # one row per registered method: the papers' five, then the baselines
    assert list(by_method) == list(OUR_METHODS)
    assert by_method["stm"]["Top-1 (%)"] == "48.0"
    assert by_method["stm"]["Tunable params (M)"] == "1.000"
    assert by_method["tcar"]["Top-1 (%)"] == "n/a"  # no synthetic run


def test_a_failing_comparison_without_a_gap_is_fail(tmp_path: Path):
    cost = tcar_cost()
    cost["comparison"][0].update(within_tolerance=False, gap=None)
    write(tmp_path / "runs", "cost.json", cost)
    render_all(tmp_path / "runs", REPORTED, tmp_path / "tables")
    rows = read_csv(tmp_path / "tables" / "cost.csv")
    tcar = next(r for r in rows if r["Method"] == "tcar" and r["Quantity"] == "GFLOPs")
    assert tcar["Verdict"] == "FAIL"


def test_split_mean_only_with_three_splits(tmp_path: Path):
    runs = tmp_path / "runs"
    for split, top1 in ((1, 0.90), (2, 0.92), (3, 0.97)):
        write(
            runs,
            f"tcar-ucf-{split}.json",
            protocol_record("tcar", dataset="ucf101", split=split, top1=top1),
        )
    for split, top1 in ((1, 0.70), (2, 0.72)):
        write(
            runs,
            f"tcar-hmdb-{split}.json",
            protocol_record("tcar", dataset="hmdb51", split=split, top1=top1),
        )
    out = tmp_path / "tables"
    render_all(runs, REPORTED, out)

    rows = {r["Dataset"]: r for r in read_csv(out / "splits.csv")}
    assert [rows["UCF101"][f"Split {s}"] for s in (1, 2, 3)] == ["90.0", "92.0", "97.0"]
    assert rows["UCF101"]["Mean"] == "93.0"
    assert [rows["HMDB51"][f"Split {s}"] for s in (1, 2, 3)] == ["70.0", "72.0", ""]
    assert rows["HMDB51"]["Mean"] == ""
    assert list(rows) == ["UCF101", "HMDB51"]

    main_rows = [r for r in read_csv(out / "main.csv") if r["Block"] == "TCAR-Net Table 1"]
    ours = next(r for r in main_rows if r["Kind"] == "reproduced")
    diff = next(r for r in main_rows if r["Kind"] == "diff")
    assert ours["UCF101"] == "93.0"  # mean of the 3 splits
    assert ours["HMDB51"] == "70.0 (split 1 only)"  # only 2 of 3: the lowest split, said so
    assert diff["UCF101"] == "-3.0 (-3.1%)"  # 93.0 - 96.0
    assert ours["Pretrain"] == "clip.bin"


def test_timing_rows_reported_first_then_ours_in_registry_order(tmp_path: Path):
    runs = tmp_path / "runs"
    write(runs, "t-pixel.json", timing_record("pixel", preprocess=80.0))
    write(runs, "t-coviar.json", timing_record("coviar"))
    write(runs, "t-tcar.json", timing_record("tcar", device="NVIDIA H100"))
    render_all(runs, REPORTED, tmp_path / "tables")
    rows = read_csv(tmp_path / "tables" / "timing.csv")
    sources = [r["Source"] for r in rows]
    n_reported = sum(s.startswith("reported") for s in sources)
    assert n_reported == 7 and all(s == "measured" for s in sources[n_reported:])
    assert rows[0]["Method"] == "ActionCLIP[17]" and rows[0]["Pre-processing (ms)"] == "41.51"
    assert [r["Method"] for r in rows[n_reported:]] == ["tcar", "coviar", "pixel"]
    assert rows[-1]["Full pipeline (ms)"] == "100.50"
    assert rows[-1]["Setup"] == "segments; 1 view; 3 repeats; 1 thread"
    md = (tmp_path / "tables" / "timing.md").read_text()
    assert md.count("bikes.m4v") == 1  # the clip: once, in a note
    assert "Every measured row times one clip: `bikes.m4v`" in md


def test_timing_clips_are_numbered_when_there_are_several(tmp_path: Path):
    runs = tmp_path / "runs"
    write(runs, "t-coviar.json", timing_record("coviar"))
    write(runs, "t-stm.json", {**timing_record("stm"), "clip": {"file": "other.m4v"}})
    render_all(runs, REPORTED, tmp_path / "tables")
    rows = read_csv(tmp_path / "tables" / "timing.csv")
    # numbered in row order: stm (a paper's method) before coviar (a baseline)
    setups = {r["Method"]: r["Setup"] for r in rows if r["Source"] == "measured"}
    assert setups == {
        "stm": "segments; 1 view; 3 repeats; 1 thread; clip [1]",
        "coviar": "segments; 1 view; 3 repeats; 1 thread; clip [2]",
    }
    md = (tmp_path / "tables" / "timing.md").read_text()
    assert "- [1] Clip `other.m4v`." in md and "- [2] Clip `bikes.m4v`." in md


def test_few_shot_runs_beside_the_reported_grid(tmp_path: Path):
    runs = tmp_path / "runs"
    write(runs, "k2.json", protocol_record("tpclip", dataset="hmdb51", shots=2, top1=0.5))
    write(runs, "k4.json", protocol_record("tpclip", dataset="hmdb51", shots=4, top1=0.6))
    render_all(runs, REPORTED, tmp_path / "tables")
    rows = read_csv(tmp_path / "tables" / "few_shot.csv")
    assert len(rows) == 16  # 15 printed rows + ours
    assert rows[0]["Method"] == "STM" and rows[0]["HMDB51 K=2"] == "35.8"
    assert rows[11]["Method"] == "Baseline (no TP, no beta, no CN.Branch)"
    assert rows[12]["Method"] == "Ours (TP)"  # method and variant in one cell
    ours = rows[-1]
    assert ours["Method"] == "tpclip (cvbench, paper preset)"
    assert ours["Pretrain"] == "clip.bin"
    assert (ours["HMDB51 K=2"], ours["HMDB51 K=4"], ours["HMDB51 K=8"]) == ("50.0", "60.0", "n/a")
    assert ours["Sources"] == "k2.json; k4.json"
    assert (
        "`tpclip` paper preset (protocol): split 1 only."
        in (tmp_path / "tables" / "few_shot.md").read_text()
    )
    # K-shot runs stay out of the full-training tables
    assert read_csv(tmp_path / "tables" / "splits.csv") == []


def test_comparison_parameters_in_counts_or_millions_show_the_same(tmp_path: Path):
    shown = []
    for unit in (1, 1e-6):  # counts (method_cost's unit), or millions
        cost = tcar_cost()
        for entry in cost["comparison"][1:]:
            entry["reported"] *= unit
            entry["ours"] *= unit
        runs = tmp_path / f"runs-{unit}"
        write(runs, "cost.json", cost)
        render_all(runs, REPORTED, tmp_path / f"tables-{unit}")
        rows = {
            r["Quantity"]: r
            for r in read_csv(tmp_path / f"tables-{unit}" / "cost.csv")
            if r["Method"] == "tcar"
        }
        shown.append((rows["tunable params (M)"]["Reported"], rows["total params (M)"]["Ours"]))
    assert shown == [("37.90 (TCAR-Net Table 1 row 16)", "187.00")] * 2


def test_cost_rows_share_footnotes_and_cover_uncompared_methods(tmp_path: Path):
    runs = tmp_path / "runs"
    coviar = {
        **tcar_cost(),
        "method": "coviar",
        "views": 10,
        "gmacs_all_views": 3774.9,
        "comparison": [
            comparison("gflops", 1222, 3774.9, "gmacs_all_views", False, "81 triples", source)
            for source in ("tcar_net.txt Table 1 row 12", "cvpt.txt Table 1 row 12")
        ],
    }
    write(runs, "cost-coviar-paper.json", coviar)
    stm = {**tcar_cost(), "method": "stm", "comparison": [], "unreported": "header lost"}
    write(runs, "cost-stm-paper.json", stm)
    write(runs, "cost-iframe-paper.json", {**tcar_cost(), "method": "iframe", "comparison": []})
    tiny = {**tcar_cost(), "preset": "tiny", "comparison": []}
    write(runs, "cost-tcar-tiny.json", tiny)
    render_all(runs, REPORTED, tmp_path / "tables")

    rows = read_csv(tmp_path / "tables" / "cost.csv")
    coviar_rows = [r for r in rows if r["Method"] == "coviar"]
    assert [r["Reported"] for r in coviar_rows] == [
        "1222.00 (TCAR-Net Table 1 row 12)",
        "1222.00 (CVPT Table 1 row 12)",
    ]
    assert {r["Counted as"] for r in coviar_rows} == {"GMACs x 10 views"}
    assert {r["Verdict"] for r in coviar_rows} == {"documented gap [3]"}  # one reason, one note
    by_method = {r["Method"]: r for r in rows if r["Preset"] == "paper"}  # not the readings
    # no comparison: one row of our paper-preset counts; the reason where the record gives one
    stm_row = by_method["stm"]
    assert stm_row["Ours"] == "37.83 / 187.00 / 843.70"
    assert stm_row["Reported"] == "-" and stm_row["Verdict"] == "no reported number [2]"
    assert by_method["iframe"]["Verdict"] == "no reported number"
    # a tiny cost record compares nothing and is not listed: tcar lacks its paper-preset
    # record; its reading is listed, without a record too
    assert [r["Preset"] for r in rows if r["Method"] == "tcar"] == ["paper", "paper_words"]
    missing = ["tcar", "cvpt", "meaci", "tpclip"]
    assert [by_method[m]["Verdict"] for m in missing] == ["no cost record [1]"] * 4
    md = (tmp_path / "tables" / "cost.md").read_text()
    assert "- [2] header lost" in md and "- [3] 81 triples" in md
    assert md.count("81 triples") == 1 and md.count("No cost record at this preset") == 1


def test_synthetic_rows_weights_marks_and_the_records_chosen(tmp_path: Path):
    runs = tmp_path / "runs"
    data = {"data": {"num_classes": 10}}
    write(runs, "iframe.json", run_record("iframe", top1=0.20, **data))
    write(runs, "stm.json", run_record("stm", top1=0.48, **data))
    write(runs, "coviar.json", run_record("coviar", top1=0.20, **data))  # = iframe: marked
    write(runs, "meaci.json", run_record("meaci", top1=0.08, **data))  # below chance too
    # the latest record wins; a K-shot record is never shown here
    write(runs, "cvpt-old.json", run_record("cvpt", top1=0.9, **data))
    write(
        runs,
        "cvpt-new.json",
        run_record("cvpt", top1=0.3, created="2026-02-01T00:00:00+00:00", **data),
    )
    write(
        runs,
        "cvpt-shots.json",
        run_record("cvpt", top1=0.99, shots=4, created="2026-03-01T00:00:00+00:00", **data),
    )
    pretraining = {
        "weights": "synthetic",
        "paths": {"pretrained": "/cache/weights/abc/open_clip.pt"},
        "corpus": {"dataset": "synthetic", "seed": 1, "videos_per_class": 16},
        "pretrain": {"epochs": 40},
        "final_metrics": {"train_loss": 0.12},
    }
    write(
        runs,
        "tcar.json",
        run_record(
            "tcar",
            top1=0.6,
            pretrained=[{"option": "pretrained", "weights": "/cache/weights/abc/open_clip.pt"}],
            synthetic_pretraining=pretraining,
            **data,
        ),
    )
    write(
        runs,
        "tpclip.json",
        run_record(
            "tpclip", top1=0.7, pretrained=[{"option": "pretrained", "weights": "/w/real.pt"}]
        ),
    )
    render_all(runs, REPORTED, tmp_path / "tables")

    rows = {r["Method"]: r for r in read_csv(tmp_path / "tables" / "synthetic.csv")}
    assert list(rows) == list(OUR_METHODS)  # the papers' methods, then the baselines
    assert rows["tcar"]["Weights"] == "synthetic CLIP"
    assert rows["tpclip"]["Weights"] == "real.pt"
    assert rows["stm"]["Weights"] == "none (random)"
    assert rows["cvpt"]["Top-1 (%)"] == "30.0" and rows["cvpt"]["Sources"] == "cvpt-new.json"
    assert rows["coviar"]["Top-1 (%)"] == "20.0 (≤ iframe)"
    assert rows["meaci"]["Top-1 (%)"] == "8.0 (≤ iframe, ≤ chance)"
    assert rows["iframe"]["Top-1 (%)"] == "20.0"  # the baseline is not marked against itself
    assert rows["stm"]["Top-1 (%)"] == "48.0"
    assert (rows["stm"]["Epochs"], rows["stm"]["Test videos"]) == ("3", "50")
    assert rows["stm"]["Train time (s)"] == "10.0"
    assert rows["stm"]["P(chance)"] == "<0.001"  # 24 of 50 right, chance 10 %
    assert rows["meaci"]["P(chance)"] == "0.750"  # 4 of 50
    md = (tmp_path / "tables" / "synthetic.md").read_text()
    assert "10 classes: chance is 10.0 % top-1" in md
    assert (
        "`tcar` synthetic CLIP: corpus: synthetic generator, seed 1, 16 videos per class; "
        "40 epochs; final train_loss 0.12." in md
    )
    assert (
        r"8.0 ($\leq$ iframe, $\leq$ chance)" in (tmp_path / "tables" / "synthetic.tex").read_text()
    )


def _markdown_widths(path: Path) -> list[int]:
    """The column count of every Markdown table in ``path`` (from its header separators)."""
    return [
        line.count("|") - 1 for line in path.read_text().splitlines() if line.startswith("|---")
    ]


def test_no_markdown_table_is_wider_than_ten_columns(tmp_path: Path):
    runs = tmp_path / "runs"
    write(runs, "cost-tcar-paper.json", tcar_cost())
    write(runs, "t-coviar.json", timing_record("coviar"))
    write(runs, "k2.json", run_record("tpclip", dataset="hmdb51", shots=2))
    write(runs, "run.json", run_record("stm"))
    for folder in (runs, RUNS):
        out = tmp_path / f"tables-{folder.parent.name}"
        for path in render_all(folder, REPORTED, out):
            if path.suffix == ".md":
                widths = _markdown_widths(path)
                assert widths and max(widths) <= 10, (path.name, widths)


def test_latex_escapes_specials():
    assert latex_escape("50% of a_b & c") == r"50\% of a\_b \& c"
    assert latex_escape("run `cvbench table`") == r"run \texttt{cvbench table}"
    assert latex_escape("> 16, <0.001") == r"$>$ 16, $<$0.001"


# --------------------------------------------------------------------------- --check


def test_check_passes_on_fresh_output_and_names_an_edited_file(tmp_path: Path, runs: Path, capsys):
    out = tmp_path / "tables"
    args = ["table", "--runs", str(runs), "--out", str(out)]
    assert main([*args, "--no-figures"]) == 0
    assert check_tables(runs, REPORTED, out) == []
    capsys.readouterr()
    assert main([*args, "--check"]) == 0
    assert "up to date" in capsys.readouterr().out

    edited = out / "splits.md"
    edited.write_text(edited.read_text().replace("48.0", "49.0"))
    problems = check_tables(runs, REPORTED, out)
    assert len(problems) == 1 and str(edited) in problems[0]
    assert "-| stm | tiny | Synthetic | custom [1] | 49.0" in problems[0]
    assert main([*args, "--check"]) == 1
    assert str(edited) in capsys.readouterr().out

    edited.unlink()
    (out / "old.csv").write_text("x\n")
    (out / "reproduced.md").write_text("x\n")  # the table cost + synthetic replaced
    problems = check_tables(runs, REPORTED, out)
    assert any("splits.md: missing" in p for p in problems)
    assert any("old.csv: stale" in p for p in problems)
    assert any("reproduced.md: stale" in p for p in problems)


# --------------------------------------------------------------------------- figures


def test_figures_are_written(tmp_path: Path, runs: Path):
    write(runs, "cost-tcar-paper.json", tcar_cost())
    write(runs, "tcar-ucf.json", protocol_record("tcar", dataset="ucf101", top1=0.95))
    write(runs, "t-coviar.json", timing_record("coviar"))
    figures = tmp_path / "figures"
    written = render_all(runs, REPORTED, tmp_path / "tables", figures)
    made = sorted(p.name for p in written if p.parent == figures)
    assert made == ["accuracy_vs_gflops.pdf", "accuracy_vs_gflops.png", "timing.pdf", "timing.png"]
    for name in made:
        assert (figures / name).stat().st_size > 1000, name

    from cvbench.figures import accuracy_points

    ours = [p for p in accuracy_points(load_inputs(runs, REPORTED)) if p.paper is None]
    assert [(p.label, p.dataset, p.gflops, p.anchor) for p in ours] == [
        ("tcar", "ucf101", 541.4, (544.85, 96.0))
    ]


def test_the_synthetic_panel_has_our_tiny_points_chance_and_apart_labels(tmp_path: Path):
    from cvbench.report.figures import accuracy_points, chance_by_dataset, place_labels, plt

    runs = tmp_path / "runs"
    data = {"data": {"num_classes": 10}}
    for method, gmacs in (("tcar", 0.0307), ("tpclip", 0.0267), ("cvpt", 0.0309)):
        cost = {**tcar_cost(), "method": method, "preset": "tiny", "comparison": []}
        write(runs, f"cost-{method}-tiny.json", {**cost, "gmacs_per_view": gmacs})
        write(runs, f"{method}.json", run_record(method, top1=0.1, **data))
    inputs = load_inputs(runs, REPORTED)
    ours = [p for p in accuracy_points(inputs) if p.paper is None]
    assert [(p.method, p.preset, p.dataset, p.gflops, p.top1) for p in ours] == [
        ("tcar", "tiny", "synthetic", 0.0307, 10.0),
        ("cvpt", "tiny", "synthetic", 0.0309, 10.0),
        ("tpclip", "tiny", "synthetic", 0.0267, 10.0),
    ]
    assert chance_by_dataset(inputs) == {"synthetic": 10.0}

    # three points at one accuracy, two of them nearly on top of each other: no label overlaps
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    ax.scatter([p.gflops for p in ours], [p.top1 for p in ours])
    ax.set_xscale("log")
    fig.tight_layout()
    fig.canvas.draw()
    place_labels(fig, ax, ours, [p.method for p in ours])
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    plt.close(fig)
    assert len(boxes) == 3
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


# --------------------------------------------------------------------------- the committed records


def test_the_committed_records_render(tmp_path: Path):
    records = load_records(RUNS)
    assert records.problems == [], [str(p) for p in records.problems]
    assert records.runs, "results/runs/ holds the tiny-preset run records"
    written = render_all(RUNS, REPORTED, tmp_path / "tables")
    assert len(written) == 27 and all(p.stat().st_size > 0 for p in written)
    sources = " ".join(r["Sources"] for r in read_csv(tmp_path / "tables" / "splits.csv"))
    for record in pick_latest(records.runs).values():
        if record.get("shots") is None:
            assert record.file in sources
    # the records it does not show are in not_used, each with the newer one named
    listed = {r["File"] for r in read_csv(tmp_path / "tables" / "not_used.csv")}
    assert listed | set(sources.replace(";", " ").split()) >= {r.file for r in records.runs}


def test_chance_p_value_is_the_binomial_tail():
    record = (0.12, 50)  # (top-1, test videos) of one record
    # P(X >= 6), X ~ Binomial(50, 0.1): 1 - sum_{i<6} C(50, i) 0.1^i 0.9^(50-i)
    expected = 1 - sum(math.comb(50, i) * 0.1**i * 0.9 ** (50 - i) for i in range(6))
    assert chance_p_value([record], 10) == pytest.approx(expected)
    assert chance_p_value([record], 10) == pytest.approx(0.3839, abs=1e-4)
    assert chance_p_value([record, record], 10) < chance_p_value([record], 10)  # 12 of 100
    assert chance_p_value([(None, 50)], 10) is None
    assert p_value_cell(1e-5) == "<0.001" and p_value_cell(None) == "n/a"


def test_run_records_are_typed_once_when_loaded(tmp_path):
    runs = tmp_path / "runs"
    data = {"num_classes": 10, "videos_per_class": 5}
    write(runs, "a.json", run_record("stm", top1=0.48, shots=4, seed=2, data=data))
    write(runs, "c.json", tcar_cost())
    records = load_records(runs)
    run = records.runs[0].run
    assert (run.method, run.preset, run.dataset, run.split, run.seed, run.shots) == (
        "stm",
        "tiny",
        "synthetic",
        1,
        2,
        4,
    )
    assert (run.top1, run.num_classes, run.has_data) == (0.48, 10, True)
    with pytest.raises(ValueError, match="a cost record, not a run"):
        _ = records.costs[0].run


def test_the_figure_names_the_five_papers_methods_and_marks_tiny_runs():
    from cvbench.report.figures import accuracy_points
    from cvbench.report.papers import PAPERS_TABLE

    points = accuracy_points(load_inputs(RUNS, REPORTED))
    for dataset in ("ucf101", "hmdb51"):
        named = {p.method: p.label for p in points if p.dataset == dataset and p.paper and p.label}
        assert set(named) == {paper.method for paper in PAPERS_TABLE}
        assert named["stm"] == "Scalable STM*" and named["tcar"] == "TCAR-Net"  # *: our GMACs
    ours = [p for p in points if p.paper is None]
    assert ours and all(p.custom == (p.preset != "paper") for p in ours)


# --------------------------------------------------------------------------- K400 / SSv2 columns


def cvpt_cost(preset: str = "paper", gmacs_all_views: float = 769.93, **extra: Any) -> dict:
    """A hand-made CVPT cost record; the paper preset's comparison names gmacs_all_views."""
    source = "cvpt.txt Table 1 row 25"
    comparisons = [
        comparison("gflops", 772.2, 769.93, "gmacs_all_views", True, None, source),
        comparison(
            "tunable_params",
            500_000,
            547_985,
            "tunable_params_excl_prompt_embed",
            True,
            None,
            source,
        ),
    ]
    return {
        **tcar_cost(),
        "method": "cvpt",
        "preset": preset,
        "total_params": 92_684_177,
        "tunable_params": 6_447_761,
        "tunable_params_excl_prompt_embed": 547_985,
        "gmacs_per_view": gmacs_all_views / 6,
        "views": 6,
        "gmacs_all_views": gmacs_all_views,
        "attention_blind_gmacs_per_view": gmacs_all_views / 6,
        "comparison": comparisons if preset == "paper" else [],
        **extra,
    }


def test_kinetics_and_ssv2_columns_and_their_one_split(tmp_path: Path):
    """Every paper table with an accuracy column is a block with the columns it prints; a
    Kinetics-400 / SSv2 run on split 1 is the complete protocol."""
    runs, out = tmp_path / "runs", tmp_path / "tables"
    write(runs, "meaci-k400.json", protocol_record("meaci", dataset="kinetics400", top1=0.70))
    write(runs, "cvpt-ssv2.json", protocol_record("cvpt", dataset="ssv2", top1=0.55))
    split2 = {**protocol_record("stm", dataset="kinetics400", top1=0.7), "split": 2}
    write(runs, "stm-k400-s2.json", split2)
    write(runs, "cost-meaci-paper.json", {**tcar_cost(), "method": "meaci", "comparison": []})
    render_all(runs, REPORTED, out)

    main_rows = read_csv(out / "main.csv")
    blocks = list(dict.fromkeys(r["Block"] for r in main_rows))
    for block in ("CVPT Table 2", "Scalable STM Table 2", "TP-CLIP Table 9"):
        assert block in blocks  # SSv2, K400/K600/SSv2 and SSv1 tables were dropped before
    header = list(main_rows[0])
    accuracy = ["HMDB51", "UCF101", "Kinetics-400", "Kinetics-600", "SSv2", "SSv1"]
    assert header == ["Block", *header[1:8], *accuracy, "Sources"]  # canonical order
    md = (out / "main.md").read_text()
    meaci_header = "| Kind | Method | Modality | Pretrain | Frames | GFLOPs | Tunable params (M) |"
    assert f"{meaci_header} HMDB51 | UCF101 | Kinetics-400 |" in md
    assert f"{meaci_header} Kinetics-400 | Kinetics-600 | SSv2 |" in md  # STM Table 2
    assert f"{meaci_header} SSv2 |\n" in md  # CVPT Table 2
    tex = (out / "main.tex").read_text()
    assert "SSv2 \\\\" in tex and "Kinetics-400 & Kinetics-600 & SSv2" in tex

    def reproduced(block: str) -> tuple[dict, dict]:
        rows = [r for r in main_rows if r["Block"] == block]
        at = [r["Kind"] for r in rows].index("reproduced")
        return rows[at], rows[at + 1]

    ours, diff = reproduced("MEACI-Net Table 1")
    assert ours["Kinetics-400"] == "70.0"  # the one official split: no "(split 1 only)"
    assert diff["Kinetics-400"] == "-0.4 (-0.6%)"  # 70.0 - 70.4
    assert ours["HMDB51"] == "n/a" and ours["SSv2"] == ""  # no SSv2 column in this block
    ours, diff = reproduced("CVPT Table 2")
    assert ours["SSv2"] == "55.0" and diff["SSv2"] == "-3.4 (-5.8%)"  # 58.4 reported
    assert "SSv2: the one official split, from cvpt-ssv2.json." in md
    ours, _ = reproduced("Scalable STM Table 2")
    assert ours["Kinetics-400"] == "n/a"  # split 2 of Kinetics-400 does not exist: invalid
    assert "Kinetics-600: cvbench has no `kinetics600` dataset to run: n/a." in md

    splits = {(r["Method"], r["Dataset"]): r for r in read_csv(out / "splits.csv")}
    k400 = splits[("meaci", "Kinetics-400")]
    assert [k400[f"Split {s}"] for s in (1, 2, 3)] == ["70.0", "-", "-"]
    assert k400["Mean"] == "70.0" and k400["Class"] == "protocol"
    assert splits[("cvpt", "SSv2")]["Mean"] == "55.0"
    not_used = {r["File"]: r for r in read_csv(out / "not_used.csv")}
    reason = not_used["stm-k400-s2.json"]["Reason"]
    assert "split 2: `kinetics400` has one split, 1" in reason

    # the figure: the papers' Kinetics-400 and SSv2 points appear beside ours
    from cvbench.report.figures import accuracy_points

    points = accuracy_points(load_inputs(runs, REPORTED))
    assert {p.dataset for p in points} == {"hmdb51", "ucf101", "kinetics400", "ssv2"}
    ours_k400 = [p for p in points if p.paper is None and p.dataset == "kinetics400"]
    assert [(p.method, p.gflops, p.custom, p.anchor) for p in ours_k400] == [
        ("meaci", 843.7, False, (89.0, 70.4))  # joined to MEACI-Net's 1-clip row
    ]


def test_csv_of_blocks_with_different_columns():
    import pandas as pd

    from cvbench.report.format import Block, Table
    from cvbench.report.writers import to_csv

    one = Block("a", pd.DataFrame([["x", "1"]], columns=["Name", "SSv2"]), ["s1"])
    two = Block("b", pd.DataFrame([["y", "2"]], columns=["Name", "HMDB51"]), ["s2"])
    table = Table("t", "T", [one, two], columns=["Name", "HMDB51", "UCF101", "SSv2"])
    assert to_csv(table).splitlines() == [
        "Block,Name,HMDB51,SSv2,Sources",  # the table's order, only columns a block has
        "a,x,,1,s1",
        "b,y,2,,s2",
    ]
    plain = Table("t", "T", [one, two])  # no order given: as the blocks name them
    assert to_csv(plain).splitlines()[0] == "Block,Name,SSv2,HMDB51,Sources"


# --------------------------------------------------------------------------- readings


def test_a_reading_has_its_own_rows_cost_and_runs(tmp_path: Path):
    """cvpt's paper_mv_channels: a reading row with its own cost record (counted as the paper
    row is) and its own protocol runs, never mixed into the paper preset's reproduced row; a
    run at paper with the reading's option set is custom."""
    runs, out = tmp_path / "runs", tmp_path / "tables"
    write(runs, "cost-cvpt-paper.json", cvpt_cost())
    write(runs, "cost-cvpt-paper_mv_channels.json", cvpt_cost("paper_mv_channels", 700.0))
    write(runs, "cvpt-paper.json", protocol_record("cvpt", top1=0.90))
    reading = protocol_record("cvpt", preset="paper_mv_channels", top1=0.80)
    write(runs, "cvpt-channels.json", reading)
    for split, top1 in ((2, 0.82), (3, 0.84)):
        record = protocol_record("cvpt", preset="paper_mv_channels", split=split, top1=top1)
        write(runs, f"cvpt-channels-{split}.json", record)
    set_by_hand = protocol_record(
        "cvpt",
        top1=0.5,
        seed=1,
        changed_settings={"config.softmax_over": {"recipe": "tokens", "run": "channels"}},
    )
    write(runs, "cvpt-paper-set.json", set_by_hand)
    render_all(runs, REPORTED, out)

    rows = [r for r in read_csv(out / "main.csv") if r["Block"] == "CVPT Table 1"]
    kinds = [r["Kind"] for r in rows]
    at = kinds.index("reproduced")
    assert kinds[at : at + 5] == ["reproduced", "diff", "reading", "diff", "custom"]
    paper, _, ours, diff, custom = rows[at : at + 5]
    assert paper["UCF101"] == "90.0 (split 1 only)"  # the paper preset's run only
    assert ours["Method"] == "cvpt (cvbench, paper_mv_channels preset) [reading 1]"
    assert ours["UCF101"] == "82.0"  # its own three splits
    assert ours["GFLOPs"] == "700.00"  # gmacs_all_views, as the paper row counts
    assert ours["Tunable params (M)"] == "0.55"
    assert diff["Method"] == "ours (paper_mv_channels) - reported"
    assert diff["UCF101"] == "-13.5 (-14.1%)"  # 82.0 - 95.5
    assert diff["GFLOPs"] == "-72.20 (-9.3%)"
    assert "cost-cvpt-paper_mv_channels.json" in ours["Sources"]
    assert "cvpt-channels-2.json" in ours["Sources"] and "cvpt-paper.json" not in ours["Sources"]
    assert custom["Method"] == "cvpt (cvbench, paper preset) [custom 1]"
    assert custom["UCF101"] == "50.0 (split 1 only)"
    md = (out / "main.md").read_text()
    reason = get_method("cvpt").readings["paper_mv_channels"]
    assert "[reading 1] cvbench `cvpt` at preset `paper_mv_channels`" in md
    assert reason in md
    assert "GFLOPs `gmacs_all_views` of cost-cvpt-paper_mv_channels.json" in md
    assert "changed settings: config.softmax_over=" in md
    splits = {(r["Preset"], r["Class"][:6]): r for r in read_csv(out / "splits.csv")}
    assert splits[("paper_mv_channels", "protoc")]["Mean"] == "82.0"

    # the cost table lists the reading's record: no comparison of its own, its counts shown
    cost = [r for r in read_csv(out / "cost.csv") if r["Method"] == "cvpt"]
    assert [r["Preset"] for r in cost] == ["paper", "paper", "paper_mv_channels"]
    assert cost[-1]["Verdict"] == "no reported number"
    assert cost[-1]["Ours"] == "6.45 / 92.68 / 116.67"

    # the figure: a reading's protocol run is a protocol point joined to the paper's row
    from cvbench.report.figures import accuracy_points

    points = accuracy_points(load_inputs(runs, REPORTED))
    ours_points = {p.label: p for p in points if p.paper is None and p.dataset == "ucf101"}
    channels = ours_points["cvpt (paper_mv_channels)"]
    assert (channels.gflops, channels.top1, channels.custom) == (700.0, 82.0, False)
    assert channels.anchor == ours_points["cvpt"].anchor == (772.2, 95.5)


def test_a_paper_variant_is_reproduced_under_its_own_row(tmp_path: Path):
    """tcar's paper_l reproduces Table 1's ViT-L row (row 17): its protocol runs and its
    cost record fill a reproduced row under that row, never the ViT-B row's."""
    runs, out = tmp_path / "runs", tmp_path / "tables"
    write(runs, "cost-tcar-paper.json", tcar_cost())
    large = {
        **tcar_cost(),
        "preset": "paper_l",
        "tunable_params": 85_170_000,
        "gmacs_per_view": 3890.0,
        "comparison": [
            comparison("gflops", 3990.65, 3890.0, "gmacs_per_view", True, None,
                       "tcar_net.txt Table 1 row 17"),
            comparison("tunable_params", 85_120_000, 85_170_000, "tunable_params", True, None,
                       "tcar_net.txt Table 1 row 17"),
        ],
    }  # fmt: skip
    write(runs, "cost-tcar-paper_l.json", large)
    write(runs, "tcar-paper.json", protocol_record("tcar", top1=0.95))
    for split in (1, 2, 3):
        record = protocol_record("tcar", preset="paper_l", split=split, top1=0.97)
        write(runs, f"tcar-l-{split}.json", record)
    render_all(runs, REPORTED, out)

    rows = [r for r in read_csv(out / "main.csv") if r["Block"] == "TCAR-Net Table 1"]
    names = [r["Method"] for r in rows]
    base, vit_l = names.index("Ours ViT/B"), names.index("Ours ViT/L")
    assert rows[base + 1]["Method"] == "tcar (cvbench, paper preset)"
    assert rows[base + 1]["UCF101"] == "95.0 (split 1 only)"
    ours, diff = rows[vit_l + 1], rows[vit_l + 2]
    assert ours["Kind"] == "reproduced" and ours["Method"] == "tcar (cvbench, paper_l preset)"
    assert ours["UCF101"] == "97.0" and ours["GFLOPs"] == "3890.00"
    assert ours["Tunable params (M)"] == "85.17"
    assert diff["UCF101"] == "-0.7 (-0.7%)"  # 97.0 - 97.7
    assert "tcar-l-2.json" in ours["Sources"] and "tcar-paper.json" not in ours["Sources"]
    assert (
        "Reproduced (paper_l): cvbench `tcar` at preset `paper_l`, under row 17"
        in (out / "main.md").read_text()
    )


def _with_missing(record: dict[str, Any], test_missing: int, train_missing: int) -> dict:
    """``record`` on a copy of its dataset that lacks some official videos (all the rest
    used and scored), as a run on a Kinetics-400 download records it."""
    test, train = dict(record["test_videos"]), dict(record["train_videos"])
    test["scored"] = test["in_split"] = test["official"] - test_missing
    train["used"] = train["in_split"] = train["official"] - train_missing
    record = {**record, "test_videos": test, "train_videos": train}
    record["metrics"] = {**record["metrics"], "test_videos": test["scored"]}
    return record


def test_kinetics_attrition_within_tolerance_is_the_protocol(tmp_path: Path):
    """A few percent of Kinetics-400 is gone from every copy: a run on every video still
    there is the protocol up to 5 % missing per subset (the table says how many were
    there); beyond it, or any video missing from SSv2 (distributed whole), is partial."""
    from cvbench.report.classify import ATTRITION_TOLERANCE, PARTIAL, PROTOCOL, classify

    assert ATTRITION_TOLERANCE == {"kinetics400": 0.05}
    k400 = protocol_record("meaci", dataset="kinetics400", top1=0.70)
    assert classify(_with_missing(k400, 412, 9_100)) == (PROTOCOL, ())  # 2.1 % / 3.8 %
    cls, reasons = classify(_with_missing(k400, 1_000, 9_100))  # 5.05 % of the test videos
    assert cls == PARTIAL and reasons == (
        "the split lists 18796 of the 19796 official test videos",
    )
    cls, reasons = classify(_with_missing(k400, 412, 12_100))  # 5.03 % of the training videos
    assert cls == PARTIAL and reasons == ("228336 of the 240436 official training videos used",)
    short = _with_missing(k400, 412, 9_100)
    short["train_videos"]["used"] -= 1  # a present video left out: not attrition
    assert classify(short)[0] == PARTIAL
    ssv2 = protocol_record("cvpt", dataset="ssv2", top1=0.55)
    assert classify(_with_missing(ssv2, 1, 0))[0] == PARTIAL

    runs, out = tmp_path / "runs", tmp_path / "tables"
    write(runs, "meaci-k400.json", _with_missing(k400, 412, 9_100))
    render_all(runs, REPORTED, out)
    md = (out / "main.md").read_text()
    assert (
        "Kinetics-400: the one official split (split 1: 19,384 of the 19,796 official test "
        "videos, 231,336 of the 240,436 training videos (the others are gone)), from "
        "meaci-k400.json." in md
    )


def test_synthetic_readings_sit_beside_their_method(tmp_path: Path):
    """A reading's tiny counterpart gets a row of its own under its method's row, never
    the method's own row; a reading without a run is named in a note."""
    runs = tmp_path / "runs"
    data = {"data": {"num_classes": 10}}
    write(runs, "stm.json", run_record("stm", top1=0.40, **data))
    write(runs, "stm-gop.json", run_record("stm", preset="tiny_gop_views", top1=0.30, **data))
    # only the reading was run for meaci: the method's own row stays n/a
    write(runs, "meaci-eca.json", run_record("meaci", preset="tiny_eca", top1=0.25, **data))
    render_all(runs, REPORTED, tmp_path / "tables")

    rows = read_csv(tmp_path / "tables" / "synthetic.csv")
    stm = [(r["Preset"], r["Top-1 (%)"]) for r in rows if r["Method"] == "stm"]
    assert stm == [("tiny", "40.0"), ("tiny_gop_views", "30.0")]
    meaci = [(r["Preset"], r["Top-1 (%)"]) for r in rows if r["Method"] == "meaci"]
    assert meaci == [("n/a", "n/a"), ("tiny_eca", "25.0")]
    md = (tmp_path / "tables" / "synthetic.md").read_text()
    reason = get_method("stm").readings["paper_gop_views"]
    assert (
        f"`stm` `tiny_gop_views`: the tiny counterpart of reading `paper_gop_views`: {reason}" in md
    )
    assert "`cvpt` `tiny_mv_channels` (reading `paper_mv_channels`): no run record." in md


def test_the_synthetic_panel_draws_one_point_per_method_and_preset(tmp_path: Path):
    """Two groups of one method and preset (an old format-1 record and a current one with
    changed settings) are one point: the group the synthetic table shows."""
    from cvbench.report.figures import accuracy_points
    from cvbench.report.tables.synthetic import synthetic_accuracy

    runs = tmp_path / "runs"
    write(runs, "cost-stm-tiny.json", {**tcar_cost(), "method": "stm", "preset": "tiny"})
    data = {"data": {"num_classes": 10}}
    write(runs, "stm-a.json", run_record("stm", top1=0.40, **data))
    current = protocol_record("stm", preset="tiny", top1=0.30, **data)  # a format-2 record
    current.update(dataset="synthetic", run_id="stm-tiny-synthetic-s1-seed0")
    for part in ("test_videos", "train_videos"):
        current[part] = {**current[part], "official": None}
    write(runs, "stm-b.json", current)
    inputs = load_inputs(runs, REPORTED)
    settings = [k.settings for k in inputs.run_groups(method="stm", dataset="synthetic")]
    assert settings == ["", "not recorded"]  # two groups
    ours = [p for p in accuracy_points(inputs) if p.paper is None and p.dataset == "synthetic"]
    shown = synthetic_accuracy(inputs, "stm")
    assert len(ours) == 1 and shown is not None
    assert ours[0].top1 == pytest.approx(100 * shown[1].top1)


def test_cvpt_ssl_runs_sit_under_the_ssl_rows_and_vit_l_rows_stay_empty(tmp_path: Path):
    """paper_ssl's cost record compares against Table 1 row 24 and Table 2 row 14 (the SSL
    ViT-B rows): its runs land there; the paper preset (SL) keeps Table 1 row 25 and gets
    no row in Table 2, whose other own row is ViT-L."""
    runs, out = tmp_path / "runs", tmp_path / "tables"
    write(runs, "cost-cvpt-paper.json", cvpt_cost())
    ssl = cvpt_cost("paper_ssl")
    ssl["comparison"] = [
        {**c, "source": source}
        for source in ("cvpt.txt Table 1 row 24", "cvpt.txt Table 2 row 14")
        for c in cvpt_cost()["comparison"]
    ]
    write(runs, "cost-cvpt-paper_ssl.json", ssl)
    write(runs, "cvpt-sl.json", protocol_record("cvpt", top1=0.95))
    write(runs, "cvpt-ssl.json", protocol_record("cvpt", preset="paper_ssl", top1=0.89))
    write(runs, "cvpt-ssv2.json", protocol_record("cvpt", preset="paper_ssl", dataset="ssv2"))
    render_all(runs, REPORTED, out)

    rows = read_csv(out / "main.csv")

    def under(block: str, method: str) -> dict[str, str]:
        names = [r["Method"] for r in rows if r["Block"] == block]
        at = [i for i, r in enumerate(rows) if r["Block"] == block][0]
        return rows[at + names.index(method) + 1]

    ssl_row = under("CVPT Table 1", "CVPT (Ours) (ViT-B SSL)")
    assert ssl_row["Method"] == "cvpt (cvbench, paper_ssl preset)"
    assert ssl_row["UCF101"] == "89.0 (split 1 only)" and "cvpt-ssl.json" in ssl_row["Sources"]
    sl_row = under("CVPT Table 1", "CVPT (Ours) (ViT-B SL)")
    assert sl_row["Method"] == "cvpt (cvbench, paper preset)" and sl_row["UCF101"].startswith(
        "95.0"
    )
    table2 = [r for r in rows if r["Block"] == "CVPT Table 2" and r["Kind"] != "reported"]
    assert [r["Method"] for r in table2] == ["cvpt (cvbench, paper_ssl preset)", "ours - reported"]
    assert table2[0]["SSv2"] == "90.0"
