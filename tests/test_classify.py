"""cvbench/classify.py: a run record's class and reasons, and `cvbench table` on a folder of
every kind of record a user can leave in results/runs (none of them may crash the tables)."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest

from cvbench.classify import (
    CUSTOM,
    INVALID,
    NOT_RECORDED,
    PARTIAL,
    PROTOCOL,
    classify,
    get,
    weights,
)
from cvbench.cli import main
from tests.test_tables import REPORTED, protocol_record, read_csv, run_record, tcar_cost, write

# --------------------------------------------------------------------------- classify


def smoke() -> dict[str, Any]:
    """A paper-preset smoke run: random weights, 2 test batches of 50, 2 of 1,000 training."""
    record = protocol_record("meaci", top1=0.0)
    record["batches"] = {
        "train_seen": 2,
        "train_available": 1000,
        "test_seen": 2,
        "test_available": 50,
    }
    record["test_videos"]["scored"] = 2
    record["epochs_completed"] = 1
    return record


def test_the_paper_recipe_on_the_official_split_is_protocol():
    assert classify(protocol_record()) == (PROTOCOL, ())
    assert classify(protocol_record("tcar", preset="paper_l", dataset="hmdb51", split=3)).cls == (
        PROTOCOL
    )


def test_a_smoke_run_is_partial_with_each_limit_named():
    cls, reasons = classify(smoke())
    assert cls == PARTIAL
    assert "limit_test_batches: 2 of 50 test batches" in reasons
    assert "limit_train_batches: 2 of 1000 training batches" in reasons
    assert "1 of 3 epochs completed" in reasons
    assert "2 of the split's 3783 test videos scored" in reasons


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"weights": [{"option": "pretrained", "file": "none", "sha256": None}]}, "random weights"),
        ({"changed_settings": {"lr": 0.1}}, "changed settings: lr=0.1"),
        ({"preset": "tiny"}, "preset `tiny`"),
    ],
)
def test_off_the_recipe_is_custom(change: dict[str, Any], reason: str):
    cls, reasons = classify({**protocol_record(), **change})
    assert cls == CUSTOM and any(r.startswith(reason) for r in reasons), reasons


def test_a_subset_of_the_split_is_partial():
    record = protocol_record()
    record["test_videos"] = {"scored": 35, "in_split": 35, "official": 3783}
    record["train_videos"]["used"] = record["train_videos"]["in_split"] = 120
    cls, reasons = classify(record)
    assert cls == PARTIAL
    assert "the split lists 35 of the 3783 official test videos" in reasons
    assert "120 of the 9537 official training videos used" in reasons


def test_a_split_mismatch_and_skipped_videos_are_partial():
    record = protocol_record(split_mismatch=True, weights_trained_on_split=1, split=2)
    record["skipped_videos"] = ["a.avi"]
    cls, reasons = classify(record)
    assert cls == PARTIAL
    assert "evaluated on split 2 with weights trained on split 1 (split_mismatch)" in reasons
    assert "1 video(s) skipped (a.avi)" in reasons


def test_format_1_records():
    cls, reasons = classify(run_record("stm", preset="paper", dataset="ucf101"))
    assert cls == PARTIAL and "completeness" in reasons[0] and "not recorded" in reasons[0]
    cls, reasons = classify(run_record("stm"))  # tiny on synthetic: custom, as it always was
    assert cls == CUSTOM and "changed settings not recorded (format-1 record)" in reasons
    assert weights(run_record("stm")) == [("pretrained", "none")]
    assert get(run_record("stm"), "test_seen") is NOT_RECORDED


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"split": 7}, "split 7: `ucf101` has splits 1-3"),
        ({"split": 2, "dataset": "kinetics400"}, "split 2: `kinetics400` has one split, 1"),
        ({"method": "nosuch"}, "unknown method `nosuch` (not in the registry)"),
        ({"dataset": "kinetics9"}, "unknown dataset `kinetics9` (not in the registry)"),
        ({"preset": "huge"}, "unknown preset `huge` of `tcar`"),
        ({"total_params": 10**400}, "`total_params`: expected a number, got an absurd integer"),
        ({"epochs_completed": -1}, "`epochs_completed`: -1 is outside"),
        ({"batches": "all"}, None),
        ({"changed_settings": ["lr"]}, "`changed_settings`: expected an object"),
        ({"record_format": 9}, "`record_format` 9: known formats [1, 2]"),
    ],
)
def test_invalid_records_name_the_field(change: dict[str, Any], reason: str | None):
    cls, reasons = classify({**protocol_record(), **change})
    assert cls == INVALID, reasons
    if reason is not None:
        assert any(r.startswith(reason) for r in reasons), reasons


@pytest.mark.parametrize("value", [math.nan, math.inf, 1.5, -0.1, True])
def test_an_accuracy_that_is_no_fraction_is_invalid(value: Any):
    record = protocol_record()
    record["metrics"]["top1"] = value
    cls, reasons = classify(record)
    assert cls == INVALID and reasons[0].startswith("`metrics.top1`:"), reasons


def test_more_seen_than_available_is_invalid():
    record = protocol_record()
    record["test_videos"]["scored"] = 4000
    cls, reasons = classify(record)
    assert cls == INVALID and "`test_videos.scored` 4000 > `test_videos.in_split` 3783" in reasons


# --------------------------------------------------------------------------- cvbench table


def _folder(runs: Path) -> None:
    """Every kind of record; created times make the later file of a pair the newer."""
    write(runs, "cost-tcar-paper.json", tcar_cost())
    write(runs, "tcar-protocol.json", protocol_record("tcar", top1=0.95))
    smoke_run = smoke()
    write(runs, "meaci-smoke.json", smoke_run)
    random = protocol_record("cvpt", top1=0.5)
    random["weights"][0]["file"] = "none"
    write(runs, "cvpt-random.json", random)
    custom = protocol_record("tcar", top1=0.8, changed_settings={"lr": 1}, identity_hash="c")
    write(runs, "tcar-custom.json", custom)
    write(runs, "stm-split7.json", {**protocol_record("stm", top1=0.9), "split": 7})
    write(runs, "nosuch.json", protocol_record("nosuch"))
    write(runs, "huge.json", protocol_record("coviar", total_params=10**400))
    (runs / "inf-cost.json").write_text(
        '{"kind": "cost", "method": "coviar", "preset": "paper", "created": '
        '"2026-01-01T00:00:00+00:00", "total_params": 1, "tunable_params": 1, '
        '"gmacs_per_view": Infinity, "views": 1, "gmacs_all_views": 1, "comparison": []}'
    )
    for seed, top1 in ((0, 0.90), (1, 0.92), (2, 0.94)):
        seeded = protocol_record("tpclip", seed=seed, top1=top1, dataset="hmdb51")
        write(runs, f"tpclip-hmdb-seed{seed}.json", seeded)
    write(runs, "old-format.json", run_record("stm", preset="paper", dataset="ucf101", top1=0.7))


def test_every_record_lands_where_it_belongs(tmp_path: Path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "tables"
    _folder(runs)
    args = ["table", "--runs", str(runs), "--out", str(out), "--figures", str(tmp_path / "fig")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "inf-cost.json: gmacs_per_view: expected a finite number, got inf" in printed

    main_rows = read_csv(out / "main.csv")
    reproduced = {r["Block"]: r for r in main_rows if r["Kind"] == "reproduced"}
    # only the protocol run is a reproduction; the smoke, random and old runs are not
    assert reproduced["TCAR-Net Table 1"]["UCF101"] == "95.0 (split 1 only)"
    assert reproduced["MEACI-Net Table 1"]["UCF101"] == "n/a"
    assert reproduced["CVPT Table 1"]["UCF101"] == "n/a"
    assert reproduced["CVPT Table 2"]["UCF101"] == ""  # an SSv2 table: no UCF101 column
    assert reproduced["CVPT Table 2"]["SSv2"] == "n/a"
    tpclip = [r for b, r in reproduced.items() if b.startswith("TP-CLIP")]
    assert tpclip and all(
        r["HMDB51"] == "92.0 ± 2.0 (3 seeds) (split 1 only)"
        for b, r in reproduced.items()
        if b in ("TP-CLIP Table 6", "TP-CLIP Table 8")
    )
    assert reproduced["TP-CLIP Table 9"]["HMDB51"] == ""  # SSv1 only
    custom = [r for r in main_rows if r["Kind"] == "custom"]
    assert {r["Method"] for r in custom} == {
        "tcar (cvbench, paper preset) [custom 1]",
        "cvpt (cvbench, paper preset) [custom 1]",
    }
    md = (out / "main.md").read_text()
    assert (
        "[custom 1] not the papers' protocol, so not a reproduction: changed settings: lr=1" in md
    )
    assert "random weights for `pretrained`" in md

    not_used = {r["File"]: r for r in read_csv(out / "not_used.csv")}
    expected = {
        "meaci-smoke.json": (PARTIAL, "limit_test_batches: 2 of 50 test batches"),
        "stm-split7.json": (INVALID, "split 7: `ucf101` has splits 1-3"),
        "nosuch.json": (INVALID, "unknown method `nosuch`"),
        "huge.json": (INVALID, "not loaded: total_params: expected an integer >= 0, got an absurd"),
        "inf-cost.json": (INVALID, "not loaded: gmacs_per_view: expected a finite number"),
        "old-format.json": (PARTIAL, "format-1 record: its completeness"),
    }
    for file, (cls, reason) in expected.items():
        assert not_used[file]["Class"] == cls and reason in not_used[file]["Reason"], file
    for file in ("tcar-protocol.json", "tcar-custom.json", "cvpt-random.json"):
        assert file not in not_used

    splits = {(r["Method"], r["Dataset"], r["Class"][:6]): r for r in read_csv(out / "splits.csv")}
    assert splits[("tcar", "UCF101", "protoc")]["Split 1"] == "95.0"
    assert splits[("tcar", "UCF101", "custom")]["Split 1"] == "80.0"
    assert splits[("tpclip", "HMDB51", "protoc")]["Split 1"] == "92.0 ± 2.0 (3 seeds)"
    assert not any(m == "stm" for m, _, _ in splits)  # split 7 and format 1: not used
    assert (tmp_path / "fig" / "accuracy_vs_gflops.png").stat().st_size > 1000
    assert main([*args[:-2], "--check"]) == 0


def test_newest_wins_only_within_one_identity(tmp_path: Path):
    runs, out = tmp_path / "runs", tmp_path / "tables"
    old = protocol_record("tcar", top1=0.5)
    new = {**copy.deepcopy(old), "created": "2026-02-01T00:00:00+00:00"}
    new["metrics"]["top1"] = 0.6
    other = protocol_record("tcar", top1=0.7, seed=1)  # another seed: averaged, not replaced
    write(runs, "a.json", old)
    write(runs, "b.json", new)
    write(runs, "c.json", other)
    assert main(["table", "--runs", str(runs), "--out", str(out), "--no-figures"]) == 0
    row = read_csv(out / "splits.csv")[0]
    assert row["Split 1"] == "65.0 ± 7.1 (2 seeds)" and row["Sources"] == "b.json; c.json"
    superseded = [r for r in read_csv(out / "not_used.csv") if r["Class"] == "superseded"]
    assert [(r["File"], r["Reason"][:24]) for r in superseded] == [
        ("a.json", "superseded by b.json (sa")
    ]


def test_nan_in_reported_yaml_names_file_and_field(tmp_path: Path, capsys):
    text = REPORTED.read_text()
    assert "gflops: 544.85" in text
    reported = tmp_path / "reported.yaml"
    reported.write_text(text.replace("gflops: 544.85", "gflops: .nan", 1))
    out = tmp_path / "tables"
    args = ["table", "--runs", str(tmp_path / "none"), "--out", str(out), "--no-figures"]
    assert main([*args, "--reported", str(reported)]) == 0
    printed = capsys.readouterr().out
    assert f"{reported}: rows[" in printed and "].gflops: expected a finite number" in printed
    md = (out / "main.md").read_text()
    assert "| nan |" not in md and "| nan" not in md
    left_out = [r for r in read_csv(out / "not_used.csv") if r["File"] == "reported.yaml"]
    assert any(".gflops: expected a finite number" in r["Reason"] for r in left_out)


# --------------------------------------------------------------------------- per class


def test_per_class_table_and_confusion_figure_from_the_scores_file(tmp_path: Path):
    import gzip

    runs, out, figures = tmp_path / "runs", tmp_path / "tables", tmp_path / "figures"
    record = protocol_record("tcar", scores_file="tcar-p.scores.csv.gz")
    write(runs, "tcar-p.json", record)
    write(runs, "tcar-custom.json", protocol_record("tcar", changed_settings={"lr": 1}, seed=1))
    rows = ["video,label,label_name,views,Run,Jump,Swim"]
    rows += ["a.avi,0,Run,1,0.9,0.1,0.0", "b.avi,0,Run,1,0.2,0.7,0.1"]  # one Run taken for Jump
    rows += ["c.avi,1,Jump,1,0.1,0.8,0.1", "d.avi,2,Swim,1,0.0,0.3,0.7"]
    with gzip.open(runs / "tcar-p.scores.csv.gz", "wt") as f:
        f.write("\n".join(rows) + "\n")
    args = ["table", "--runs", str(runs), "--out", str(out), "--figures", str(figures)]
    assert main(args) == 0
    table = {r["Class"]: r for r in read_csv(out / "per_class.csv")}
    assert table["Run"]["Test videos"] == "2" and table["Run"]["Top-1 (%)"] == "50.0"
    assert (table["Run"]["Most confused with"], table["Run"]["Confused (%)"]) == ("Jump", "50.0")
    assert table["Jump"]["Most confused with"] == "-"
    assert table["Swim"]["Sources"] == "tcar-p.json; tcar-p.scores.csv.gz"
    assert (figures / "confusion_tcar_ucf101_s1.png").stat().st_size > 1000
    assert not list(figures.glob("confusion_*seed*"))  # the custom run: no confusion matrix


# --------------------------------------------------------------------------- readings


def _changed(method: str, dataset: str, preset: str | None, **config: Any) -> dict[str, Any]:
    """What ``cvbench run --method M --dataset D [--preset P] [--set k=v]`` records as changed,
    the settings resolved as the command resolves them (configs/<method>/<dataset>.yaml)."""
    from cvbench.configs import RunLayer, resolve
    from cvbench.identity import changed_settings
    from cvbench.run import RunSpec
    from methods.base import OptimConfig
    from methods.config import apply_overrides
    from methods.registry import get_method

    settings = resolve(method, dataset, flags=RunLayer(preset=preset, config=config))
    entry = get_method(method)
    batch = settings.global_batch or 8
    spec = RunSpec(
        method=method,
        preset=settings.preset,
        dataset=dataset,
        overrides=settings.config,
        optim=dict(settings.optim),
        dataset_options=settings.dataset_options,
        epochs=settings.epochs,
        batch_size=batch,
    )
    optim = apply_overrides(entry.module.default_optim(), {"epochs": spec.epochs, **spec.optim})
    assert isinstance(optim, OptimConfig)
    return changed_settings(spec, entry.make_config(spec.preset, spec.overrides), optim, 1)


def test_a_reading_run_is_the_protocol_and_setting_its_option_by_hand_is_not():
    """changed_settings compares a run at a reading (paper_mv_channels) with that preset, not
    with ``paper``: nothing changed, so the complete run is protocol and lands in its own
    group; ``paper`` with --set softmax_over=channels changes the recipe: custom."""
    assert _changed("cvpt", "ucf101", None) == {}  # the recipe itself
    assert _changed("cvpt", "ucf101", "paper_mv_channels") == {}
    by_hand = _changed("cvpt", "ucf101", None, softmax_over="channels")
    assert by_hand == {"config.softmax_over": {"recipe": "tokens", "run": "channels"}}
    # tiny_X is the reading of the tiny recipe (the synthetic set's)
    assert _changed("cvpt", "synthetic", "tiny_mv_channels") == {}
    # another preset is still a change: the reading of the paper is not the tiny one
    assert _changed("cvpt", "ucf101", "tiny_mv_channels")["preset"] == {
        "recipe": "paper",
        "run": "tiny_mv_channels",
    }

    reading = protocol_record("cvpt", preset="paper_mv_channels", changed_settings={})
    assert classify(reading) == (PROTOCOL, ())
    custom = protocol_record("cvpt", changed_settings=by_hand)
    cls, reasons = classify(custom)
    assert cls == CUSTOM and reasons == (
        'changed settings: config.softmax_over={"recipe":"tokens","run":"channels"}',
    )


def test_a_paper_variant_run_is_the_protocol_of_its_row():
    """paper_l (TCAR-Net's ViT-L row) and paper_3clip (MEACI-Net's 3-clip row) are the paper's
    recipe for another of its rows: nothing changed, so a complete run is protocol."""
    assert _changed("tcar", "ucf101", "paper_l") == {}
    assert _changed("meaci", "hmdb51", "paper_3clip") == {}
    # but a variant's preset is not a change only for the paper recipe
    assert _changed("meaci", "synthetic", "paper_3clip")["preset"] == {
        "recipe": "tiny",
        "run": "paper_3clip",
    }


def test_cvpt_on_ssv2_is_the_ssl_row():
    """configs/cvpt/ssv2.yaml names paper_ssl (Table 2's only ViT-B row is SSL): a run at
    it is the recipe; one at paper (SL weights) has no row in Table 2 and is custom."""
    assert _changed("cvpt", "ssv2", None) == {}
    assert _changed("cvpt", "ssv2", "paper")["preset"] == {"recipe": "paper_ssl", "run": "paper"}
    assert _changed("cvpt", "ucf101", "paper_ssl") == {}  # Table 1's SSL row
