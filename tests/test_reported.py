"""results/reported.yaml: loads clean, holds every row of each source table, and its numbers
agree with the papers' tables and with the margins their prose states."""

from __future__ import annotations

import copy
import warnings

import pytest
import yaml

from cvbench.reported import (
    DEFAULT_PATH,
    OUR_METHODS,
    ReportedError,
    ReportedRow,
    ReportedWarning,
    load_reported,
)

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# entries per (paper, table), counted in the papers: rows of the comparison tables, rows of
# the timing tables, and few-shot cells (15 method rows x K in {2,4,8,16} x 2 datasets)
EXPECTED_COUNTS = {
    ("tcar_net.txt", "Table 1"): 17,
    ("tcar_net.txt", "Table 7"): 2,
    ("cvpt.txt", "Table 1"): 26,
    ("cvpt.txt", "Table 2"): 15,
    ("cvpt.txt", "Table 6"): 2,
    ("meaci_net.txt", "Table 1"): 24,
    ("meaci_net.txt", "Table 5"): 3,
    ("scalable_stm.txt", "Table 1"): 13,
    ("scalable_stm.txt", "Table 2"): 13,
    ("temporal_prompt_clip.txt", "Table 6"): 8,
    ("temporal_prompt_clip.txt", "Table 7"): 120,
    ("temporal_prompt_clip.txt", "Table 8"): 28,
    ("temporal_prompt_clip.txt", "Table 9"): 19,
}


@pytest.fixture(scope="module")
def reported():
    return load_reported(strict=True)


def _row(reported, paper: str, table: str, index: int, method: str) -> ReportedRow:
    """Row ``index`` (1-based, printed order) of a table; ``method`` guards the index."""
    (row,) = [r for r in reported.rows_in(paper, table) if r.source.row == index]
    assert row.method == method
    return row


# --------------------------------------------------------------------------- the file


def test_committed_file_loads_without_problems():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tables = load_reported(DEFAULT_PATH, strict=False)
    assert tables.problems == []
    assert load_reported(DEFAULT_PATH, strict=True).problems == []


def test_counts_per_source_table(reported):
    assert reported.counts() == EXPECTED_COUNTS
    declared = {(t.paper, t.table): t.n_rows for t in reported.tables}
    assert declared == EXPECTED_COUNTS


def test_rows_are_in_printed_order(reported):
    for info in reported.tables:
        section = {"timing": "timings", "few_shot": "few_shot"}.get(info.kind, "rows")
        indices = [e.source.row for e in reported.rows_in(info.paper, info.table, section)]
        assert indices == sorted(indices), (info.paper, info.table)
        if section != "few_shot":
            assert indices == list(range(1, info.n_rows + 1)), (info.paper, info.table)


def test_rows_for(reported):
    cvpt = reported.rows_for("cvpt")
    # 3 rows in CVPT Table 1, 2 in its Table 2, and TCAR-Net's citation of the ViT-B SL row
    assert [(r.source.paper, r.source.table) for r in cvpt].count(("cvpt.txt", "Table 1")) == 3
    assert len(cvpt) == 6
    assert {r.variant for r in reported.rows_for("meaci")} == {None, "1-clip", "3-clip"}
    assert [t.method for t in reported.rows_for("tcar", section="timings")] == ["TCAR-Net (Ours)"]
    assert len(reported.rows_for("tpclip", section="few_shot")) == 3 * 4 * 2
    assert reported.rows_for("iframe") == []  # no paper reports an I-frame-only model
    with pytest.raises(ValueError, match="unknown method"):
        reported.rows_for("tcarnet")


def test_our_method_names_are_registered():
    import methods  # noqa: F401  (fills the registry)
    from methods.registry import list_methods

    assert set(OUR_METHODS) == set(list_methods())


def test_to_frame(reported):
    frame = reported.to_frame()
    assert len(frame) == len(reported.rows)
    cvpt_sl = frame[(frame.paper == "cvpt.txt") & (frame.variant == "ViT-B SL")]
    assert cvpt_sl[["gflops", "top1_hmdb51", "top1_ucf101"]].values.tolist() == [
        [772.2, 69.7, 95.5]
    ]
    assert len(reported.to_frame("few_shot")) == 120


# --------------------------------------------------------------------------- spot values


def test_cvpt_vit_b_sl_row(reported):
    row = _row(reported, "cvpt.txt", "Table 1", 25, "CVPT (Ours)")
    assert (row.our_method, row.variant, row.pretrain) == ("cvpt", "ViT-B SL", "SL")
    assert row.gflops == 772.2
    assert row.tunable_params_m == 0.5
    assert row.extra["tunable_percent"] == 0.6
    assert row.accuracy == {"hmdb51": 69.7, "ucf101": 95.5}
    # TCAR-Net's Table 1 cites exactly this row
    cited = _row(reported, "tcar_net.txt", "Table 1", 15, "CVPT ViT/B [26]")
    assert cited.our_method == "cvpt"
    assert (cited.gflops, cited.tunable_params_m, cited.accuracy) == (
        row.gflops,
        row.tunable_params_m,
        row.accuracy,
    )


def test_meaci_clip_rows(reported):
    one = _row(reported, "meaci_net.txt", "Table 1", 23, "MEACI-Net (1-clip)")
    three = _row(reported, "meaci_net.txt", "Table 1", 24, "MEACI-Net (3-clip)")
    assert (one.gflops, one.views, one.frames) == (89, "1 clip", "8")
    assert (three.gflops, three.views, three.frames) == (268, "3 clips", "8")
    assert one.accuracy == {"hmdb51": 74.0, "ucf101": 96.1, "kinetics400": 70.4}
    assert three.accuracy == {"hmdb51": 74.4, "ucf101": 96.4, "kinetics400": 71.5}
    assert (one.extra["input_size_mb"], three.extra["input_size_mb"]) == (0.2, 0.7)
    assert one.split_protocol == three.split_protocol == "3-split mean"
    # CVPT cites the 3-clip accuracies with 269.4 GFLOPs
    cited = _row(reported, "cvpt.txt", "Table 1", 18, "MEACI-Net [29]")
    assert cited.our_method == "meaci" and cited.variant is None
    assert cited.accuracy == {"hmdb51": 74.4, "ucf101": 96.4}
    assert (cited.gflops, cited.tunable_params_m) == (269.4, 50.7)


def test_tcar_rows(reported):
    vit_b = _row(reported, "tcar_net.txt", "Table 1", 16, "Ours ViT/B")
    vit_l = _row(reported, "tcar_net.txt", "Table 1", 17, "Ours ViT/L")
    assert [r.our_method for r in (vit_b, vit_l)] == ["tcar", "tcar"]
    assert (vit_b.frames, vit_b.gflops, vit_b.tunable_params_m) == ("16+16+16", 544.85, 37.90)
    assert vit_b.total_params_m == 359.91
    assert vit_b.accuracy == {"hmdb51": 74.3, "ucf101": 96.0}
    assert (vit_l.gflops, vit_l.tunable_params_m) == (3990.65, 85.12)
    assert vit_l.accuracy == {"hmdb51": 82.4, "ucf101": 97.7}
    assert vit_b.split_protocol == "unknown"  # the paper does not say


def test_coviar_rows(reported):
    by_source = {(r.source.paper, r.source.table): r for r in reported.rows_for("coviar")}
    assert set(by_source) == {
        ("tcar_net.txt", "Table 1"),
        ("cvpt.txt", "Table 1"),
        ("meaci_net.txt", "Table 1"),
        ("scalable_stm.txt", "Table 1"),
        ("scalable_stm.txt", "Table 2"),
    }
    assert by_source["tcar_net.txt", "Table 1"].gflops == 1222.0
    assert by_source["meaci_net.txt", "Table 1"].gflops == 3615
    assert by_source["tcar_net.txt", "Table 1"].accuracy == {"hmdb51": 59.1, "ucf101": 90.4}
    # meaci_net.txt has a Kinetics-400 column, '-' for CoViAR
    assert by_source["meaci_net.txt", "Table 1"].accuracy == {
        "hmdb51": 59.1,
        "ucf101": 90.4,
        "kinetics400": None,
    }
    assert by_source["cvpt.txt", "Table 1"].accuracy == {"hmdb51": 37.1, "ucf101": 63.7}


def test_stm_rows_keep_only_what_survived(reported):
    ours = _row(reported, "scalable_stm.txt", "Table 1", 13, "Ours")
    assert ours.our_method == "stm"
    assert ours.accuracy == {"ucf101": 95.6, "hmdb51": 74.6}
    # the header of these columns was lost: positional cells only, no gflops/params claimed
    assert (ours.gflops, ours.tunable_params_m, ours.total_params_m, ours.views) == (None,) * 4
    assert ours.extra["unlabeled_col7"] == 0.15 and ours.extra["unlabeled_col10"] == 16.025
    assert ours.extra["views_printed"] == "81"
    base = _row(reported, "scalable_stm.txt", "Table 2", 12, "Ours")
    large = _row(reported, "scalable_stm.txt", "Table 2", 13, "Ours-L")
    assert base.accuracy == {"ssv2": 62.5, "kinetics400": 74.2, "kinetics600": 80.3}
    assert (large.variant, large.accuracy["kinetics400"]) == ("L", 75.9)
    i3d = _row(reported, "scalable_stm.txt", "Table 2", 3, "I3D [10]")
    assert i3d.accuracy == {"ssv2": 50.0, "kinetics400": None, "kinetics600": None}
    assert "100.67" in i3d.raw and i3d.notes


def test_tpclip_rows(reported):
    ours = _row(reported, "temporal_prompt_clip.txt", "Table 8", 23, "Ours ViT-B")
    assert ours.our_method == "tpclip"
    assert ours.accuracy == {"ucf101": 96.5, "hmdb51": 73.8}
    assert ours.views == "4 clips x 3 crops"
    ssv1 = _row(reported, "temporal_prompt_clip.txt", "Table 9", 16, "Ours-B/16")
    assert (ssv1.accuracy, ssv1.accuracy_top5) == ({"ssv1": 54.9}, {"ssv1": 83.8})
    t16 = _row(reported, "temporal_prompt_clip.txt", "Table 6", 8, "Ours")
    assert (t16.frames, t16.tunable_params_m, t16.accuracy) == (
        "16",
        54.2,
        {"hmdb51": 73.21, "ucf101": 95.81},
    )
    assert t16.extra["memory_mb_hmdb"] == 10759
    bike = _row(reported, "temporal_prompt_clip.txt", "Table 6", 3, "BIKE")
    assert (bike.tunable_params_m, bike.extra["tunable_relative"]) == (106.8, "+100%")
    # the XCLP T=16 row lost a cell: no guessed values
    xclp = _row(reported, "temporal_prompt_clip.txt", "Table 6", 6, "XCLP")
    assert xclp.extra["batch_size"] is None and xclp.extra["memory_mb_hmdb"] is None


def test_rows_named_stm_elsewhere_are_not_ours(reported):
    for row in reported.rows:
        if row.method == "STM":  # Jiang et al. 2019 in meaci_net.txt / temporal_prompt_clip.txt
            assert row.our_method is None, row.source
    assert all(f.our_method is None for f in reported.few_shot if f.method == "STM")


@pytest.mark.parametrize(
    ("paper", "method", "times"),
    [
        ("tcar_net.txt", "ActionCLIP[17]", (41.51, 11.52, 53.03)),
        ("tcar_net.txt", "TCAR-Net (Ours)", (6.11, 26.32, 32.43)),
        ("cvpt.txt", "VideoMAE [42]", (2496.9, 26.9, 2523.8)),
        ("cvpt.txt", "CVPT (Ours)", (238.3, 25.0, 263.3)),
        ("meaci_net.txt", "I3D", (1093.9, 166.7, 1260.6)),
        ("meaci_net.txt", "CoViAR", (13.4, 95.6, 109.0)),
        ("meaci_net.txt", "MEACI-Net", (7.7, 77.9, 85.6)),
    ],
)
def test_timings(reported, paper, method, times):
    (timing,) = [t for t in reported.rows_in(paper, section="timings") if t.method == method]
    assert (timing.preprocess_ms, timing.inference_ms, timing.full_ms) == times
    # pre-processing + inference = full pipeline, to the printed precision
    assert timing.preprocess_ms + timing.inference_ms == pytest.approx(timing.full_ms, abs=0.011)


def test_few_shot_grid(reported):
    cells = {(f.source.row, f.dataset, f.k): f.top1 for f in reported.few_shot}
    assert len(cells) == 15 * 2 * 4
    full = [f for f in reported.rows_for("tpclip", section="few_shot")]
    full = {(f.dataset, f.k): f.top1 for f in full if f.variant == "TP+beta+CN.Branch"}
    assert full == {
        ("hmdb51", 2): 61.6,
        ("hmdb51", 4): 64.8,
        ("hmdb51", 8): 69.6,
        ("hmdb51", 16): 70.4,
        ("ucf101", 2): 82.7,
        ("ucf101", 4): 86.0,
        ("ucf101", 8): 89.5,
        ("ucf101", 16): 92.1,
    }
    assert cells[1, "hmdb51", 16] is None  # STM, printed '-'


# --------------------------------------------------------------------------- prose margins

# Margins the papers state in their prose, recomputed from the transcribed table cells:
# an independent check of the transcription. (paper, table, row a, row b, dataset, a - b)
PROSE_MARGINS = [
    # TCAR-Net Sec. 4.3: +4.6 / +0.5 over CVPT, +2.7 over MM-ViT (UCF), +2.0 / +2.0 over SIFT-Net,
    # ViT-L +0.7 over BIKE and +1.1 over Text4Vis on HMDB51
    ("tcar_net.txt", "Table 1", 16, 15, "hmdb51", 4.6),
    ("tcar_net.txt", "Table 1", 16, 15, "ucf101", 0.5),
    ("tcar_net.txt", "Table 1", 16, 11, "ucf101", 2.7),
    ("tcar_net.txt", "Table 1", 16, 10, "hmdb51", 2.0),
    ("tcar_net.txt", "Table 1", 16, 10, "ucf101", 2.0),
    ("tcar_net.txt", "Table 1", 17, 6, "hmdb51", 0.7),
    ("tcar_net.txt", "Table 1", 17, 7, "hmdb51", 1.1),
    # CVPT Sec. 4.3: +2.1 over MM-ViT and +0.9 over Full Fine-tuning on UCF-101, +2.9 / +0.8
    # on SSv2; over VPT* / AdaptFormer*: +10.8 / +12.0 HMDB, +5.4 / +7.1 UCF, +4.8 / +5.6 SSv2
    ("cvpt.txt", "Table 1", 25, 19, "ucf101", 2.1),
    ("cvpt.txt", "Table 1", 24, 20, "ucf101", 0.9),
    ("cvpt.txt", "Table 2", 15, 9, "ssv2", 2.9),
    ("cvpt.txt", "Table 2", 14, 10, "ssv2", 0.8),
    ("cvpt.txt", "Table 1", 24, 22, "hmdb51", 10.8),
    ("cvpt.txt", "Table 1", 24, 23, "hmdb51", 12.0),
    ("cvpt.txt", "Table 1", 24, 22, "ucf101", 5.4),
    ("cvpt.txt", "Table 1", 24, 23, "ucf101", 7.1),
    ("cvpt.txt", "Table 2", 14, 12, "ssv2", 4.8),
    ("cvpt.txt", "Table 2", 14, 13, "ssv2", 5.6),
    # MEACI-Net Sec. 4.3: 1-clip +1.7 / +2.1 over SIFP-Net, +2.1 over MFCD-Net on Kinetics-400
    ("meaci_net.txt", "Table 1", 23, 22, "hmdb51", 1.7),
    ("meaci_net.txt", "Table 1", 23, 22, "ucf101", 2.1),
    ("meaci_net.txt", "Table 1", 23, 21, "kinetics400", 2.1),
    # temporal-prompt CLIP Sec. 4.4: over STC / ECO +1.2 / +5.4 (HMDB) and +0.7 / +2.9 (UCF);
    # over Vita [48] +6.5, [47] +0.9, VideoPrompt +7.4 (HMDB); SSv1 +7.7 over TSM, +0.8 over
    # TAdaConvNeXtV2-T
    ("temporal_prompt_clip.txt", "Table 8", 23, 8, "hmdb51", 1.2),
    ("temporal_prompt_clip.txt", "Table 8", 23, 9, "hmdb51", 5.4),
    ("temporal_prompt_clip.txt", "Table 8", 23, 8, "ucf101", 0.7),
    ("temporal_prompt_clip.txt", "Table 8", 23, 9, "ucf101", 2.9),
    ("temporal_prompt_clip.txt", "Table 8", 23, 22, "hmdb51", 6.5),
    ("temporal_prompt_clip.txt", "Table 8", 23, 19, "hmdb51", 0.9),
    ("temporal_prompt_clip.txt", "Table 8", 23, 18, "hmdb51", 7.4),
    ("temporal_prompt_clip.txt", "Table 9", 16, 2, "ssv1", 7.7),
    ("temporal_prompt_clip.txt", "Table 9", 16, 13, "ssv1", 0.8),
]


@pytest.mark.parametrize(("paper", "table", "a", "b", "dataset", "margin"), PROSE_MARGINS)
def test_margins_stated_in_prose(reported, paper, table, a, b, dataset, margin):
    rows = {r.source.row: r for r in reported.rows_in(paper, table)}
    assert rows[a].accuracy[dataset] - rows[b].accuracy[dataset] == pytest.approx(margin, abs=1e-6)


# temporal-prompt CLIP Sec. 4.3 (K = 2): TP over Baseline +6.2 / +9.8, beta +3.5 / +4.9,
# CN.Branch +2.3 / +2.9 (HMDB / UCF); full model over Video Swin-B +40.7 / +29.4, and on HMDB
# over [47], X-CLIP, ActionCLIP by +6.3, +8.6, +6.8. (row a, row b, dataset, a - b)
FEW_SHOT_MARGINS = [
    (13, 12, "hmdb51", 6.2),
    (13, 12, "ucf101", 9.8),
    (14, 13, "hmdb51", 3.5),
    (14, 13, "ucf101", 4.9),
    (15, 14, "hmdb51", 2.3),
    (15, 14, "ucf101", 2.9),
    (15, 5, "hmdb51", 40.7),
    (15, 5, "ucf101", 29.4),
    (15, 11, "hmdb51", 6.3),
    (15, 8, "hmdb51", 8.6),
    (15, 7, "hmdb51", 6.8),
]


@pytest.mark.parametrize(("a", "b", "dataset", "margin"), FEW_SHOT_MARGINS)
def test_few_shot_margins_stated_in_prose(reported, a, b, dataset, margin):
    cells = {(f.source.row, f.dataset): f.top1 for f in reported.few_shot if f.k == 2}
    assert cells[a, dataset] - cells[b, dataset] == pytest.approx(margin, abs=1e-6)


# --------------------------------------------------------------------------- malformed input


@pytest.fixture(scope="module")
def committed():
    return yaml.load(DEFAULT_PATH.read_text(encoding="utf-8"), Loader=_LOADER)


def _dump(data: dict) -> str:
    return yaml.dump(data, Dumper=_DUMPER, allow_unicode=True, sort_keys=False)


def _set(entry: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        entry = entry[key]
    entry[last] = value


@pytest.mark.parametrize(
    ("section", "index", "field", "value", "message"),
    [
        ("rows", 5, "gflops", "lots", "expected a number"),
        ("rows", 7, "accuracy.ucf101", 120.5, "[0.0, 100.0]"),
        ("rows", 9, "accuracy.imagenet", 80.0, "unknown dataset"),
        ("rows", 11, "our_method", "TCAR", "expected one of"),
        ("rows", 13, "source.table", "Tab. 1", "expected 'Table N'"),
        ("rows", 15, "split_protocol", "average", "expected one of"),
        ("rows", 17, "frames", 16, "expected a non-empty string"),
        ("rows", 19, "flops", 1.0, "unknown field"),
        ("timings", 1, "full_ms", "fast", "expected a number"),
        ("few_shot", 3, "k", 3, "expected one of"),
    ],
)
def test_malformed_entry_is_reported_and_the_rest_load(
    tmp_path, committed, section, index, field, value, message
):
    data = copy.deepcopy(committed)
    _set(data[section][index], field, value)
    path = tmp_path / "reported.yaml"
    path.write_text(_dump(data), encoding="utf-8")

    with pytest.warns(ReportedWarning):
        loaded = load_reported(path, strict=False)
    (problem,) = [p for p in loaded.problems if p.section == section]
    assert (problem.path, problem.index, problem.field) == (str(path), index, field)
    assert message in problem.message
    assert f"{path}: {section}[{index}].{field}: " in str(problem)
    # every other entry loads; the short table is reported too
    assert len(getattr(loaded, section)) == len(committed[section]) - 1
    (short,) = [p for p in loaded.problems if p.section == "tables"]
    assert short.field == "n_rows"

    with pytest.raises(ReportedError) as err:
        load_reported(path, strict=True)
    assert (err.value.problem.index, err.value.problem.field) == (index, field)
    assert str(path) in str(err.value)


def test_missing_field_non_mapping_and_duplicate(tmp_path, committed):
    data = copy.deepcopy(committed)
    del data["rows"][2]["notes"]
    data["rows"][4] = "not a mapping"
    data["rows"].append(copy.deepcopy(data["rows"][0]))  # same (paper, table, row) as rows[0]
    path = tmp_path / "reported.yaml"
    path.write_text(_dump(data), encoding="utf-8")

    with pytest.warns(ReportedWarning):
        loaded = load_reported(path)
    found = {(p.section, p.index, p.field) for p in loaded.problems if p.section == "rows"}
    assert found == {
        ("rows", 2, "notes"),
        ("rows", 4, None),
        ("rows", len(data["rows"]) - 1, "source"),
    }
    assert len(loaded.rows) == len(committed["rows"]) - 2


def test_unreadable_file_raises(tmp_path):
    path = tmp_path / "reported.yaml"
    path.write_text("rows: [unclosed\n", encoding="utf-8")
    with pytest.raises(ReportedError, match="cannot read"):
        load_reported(path)
    path.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ReportedError, match="mapping at the top level"):
        load_reported(path)
