"""The ``synthetic`` table: one row per registered method on the synthetic dataset."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from cvbench.report.format import Block, Table, fixed, millions, percent
from cvbench.report.inputs import Inputs
from cvbench.report.papers import APPEARANCE_BASELINE
from cvbench.report.tables.common import (
    SplitAccuracy,
    accuracy_over_splits,
    accuracy_text,
    source_files,
    weights_cell,
)
from methods.registry import reading_tiny

SYNTHETIC = "synthetic"  # the generated dataset every method is trained on at the tiny preset
SYNTHETIC_COLUMNS = (
    "Method",
    "Preset",
    "Weights",
    "Epochs",
    "Top-1 (%)",
    "Mean-class (%)",
    "Test videos",
    "P(chance)",
    "Train time (s)",
    "Tunable params (M)",
)


def _first_group(
    inputs: Inputs, method: str, dataset: str, keep: Callable[[str], bool]
) -> tuple[str, SplitAccuracy] | None:
    """The preset and accuracy over splits of the first of ``method``'s groups on
    ``dataset`` in table order (protocol before custom, the recipe's settings first) whose
    preset ``keep`` accepts; None without any."""
    keys = [k for k in inputs.run_groups(method=method, dataset=dataset) if keep(k.preset)]
    acc = accuracy_over_splits(inputs.groups[keys[0]]) if keys else None
    return None if acc is None else (keys[0].preset, acc)


def synthetic_accuracy(
    inputs: Inputs, method: str, dataset: str = SYNTHETIC
) -> tuple[str, SplitAccuracy] | None:
    """The preset (``paper`` where run, else ``tiny``, else by name) and the accuracy over
    splits of ``method``'s full-training-set protocol or custom runs on ``dataset``; the
    readings' tiny counterparts have rows of their own (:func:`reading_accuracy`)."""
    readings = {reading_tiny(r) for r in inputs.readings.get(method, {})}
    return _first_group(inputs, method, dataset, lambda preset: preset not in readings)


def reading_accuracy(
    inputs: Inputs, method: str, preset: str, dataset: str = SYNTHETIC
) -> SplitAccuracy | None:
    """The accuracy over splits of ``method``'s runs at ``preset`` (a reading's tiny
    counterpart) on ``dataset``; None without any."""
    found = _first_group(inputs, method, dataset, lambda p: p == preset)
    return None if found is None else found[1]


def _joined(values: Iterable[Any]) -> str:
    shown = sorted({v for v in values if v is not None})
    return "/".join(str(v) for v in shown) if shown else "n/a"


def _synthetic_pretraining_note(method: str, info: dict[str, Any]) -> str:
    """One line on a record's ``synthetic_pretraining``: corpus, epochs, final metrics."""
    parts = []
    corpus = info.get("corpus")
    if isinstance(corpus, dict):
        bits = [f"{corpus['dataset']} generator" if corpus.get("dataset") else "generator"]
        if corpus.get("seed") is not None:
            bits.append(f"seed {corpus['seed']}")
        if corpus.get("videos_per_class") is not None:
            bits.append(f"{corpus['videos_per_class']} videos per class")
        if corpus.get("subset"):
            bits.append(str(corpus["subset"]))
        parts.append("corpus: " + ", ".join(bits))
    pretrain = info.get("pretrain")
    if isinstance(pretrain, dict) and pretrain.get("epochs") is not None:
        parts.append(f"{pretrain['epochs']} epochs")
    metrics = info.get("final_metrics")
    if isinstance(metrics, dict) and metrics:
        shown = ", ".join(f"{k} {v}" for k, v in sorted(metrics.items()))
        parts.append(f"final {shown}")
    detail = "; ".join(parts) if parts else "no details in the record"
    return f"`{method}` synthetic CLIP: {detail}."


def chance_level(accuracies: Iterable[SplitAccuracy]) -> tuple[int, float] | None:
    """(classes, chance top-1 in %) from the runs' ``data.num_classes``; None unless the
    records name one class count."""
    classes = {r.run.num_classes for acc in accuracies for r in acc.records if r.run.has_data}
    if len(classes) != 1:
        return None
    n = next(iter(classes))
    if n is None:
        return None
    return n, 100.0 / n


def chance_p_value(
    results: Iterable[tuple[float | None, int | None]], classes: int
) -> float | None:
    """One-sided binomial p-value of the correct test videos under guessing, from one
    (top-1 fraction, test videos) per record: ``P(X >= k)`` for ``X ~ Binomial(n, 1 /
    classes)``, with k and n summed over the records (splits). None when a record lacks its
    top-1 or test-video count."""
    k = n = 0
    for top1, videos in results:
        if top1 is None or videos is None or videos < 1:
            return None
        k += round(top1 * videos)
        n += videos
    p = 1.0 / classes
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def p_value_cell(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def synthetic_table(inputs: Inputs) -> Table:
    picks = {m: synthetic_accuracy(inputs, m) for m in inputs.registered}
    shown = [pick[1] for pick in picks.values() if pick]
    chance = chance_level(shown)
    baseline = picks.get(APPEARANCE_BASELINE)
    # marks compare the printed numbers, so that what the reader compares agrees with them
    limits: list[tuple[str, float, str | None]] = []  # (mark, top-1 %, the row it skips)
    if baseline is not None:
        top1 = float(percent(baseline[1].top1))
        limits.append((f"≤ {APPEARANCE_BASELINE}", top1, APPEARANCE_BASELINE))
    if chance is not None:
        limits.append(("≤ chance", float(fixed(chance[1], 1)), None))

    cells, sources, notes = [], [], []

    def add_row(method: str, preset: str, acc: SplitAccuracy) -> None:
        printed_top1 = float(percent(acc.top1))
        top1 = accuracy_text(acc)
        marks = [m for m, limit, skip in limits if printed_top1 <= limit and method != skip]
        if marks:
            top1 += f" ({', '.join(marks)})"
        train = [r.run.train_s for r in acc.records]
        train_s = None if None in train else sum(train) / len(train)
        cells.append(
            [
                method,
                preset,
                weights_cell(acc.records),
                _joined(r.run.epochs for r in acc.records),
                top1,
                percent(acc.mean_class),
                _joined(r.run.test_videos for r in acc.records),
                p_value_cell(
                    None
                    if chance is None
                    else chance_p_value(
                        [(r.run.top1, r.run.test_videos) for r in acc.records], chance[0]
                    )
                ),
                fixed(train_s, 1),
                millions(acc.records[0].run.tunable_params, 3),
            ]
        )
        sources.append(source_files(acc.records))

    for method, pick in picks.items():
        if pick is None:
            cells.append([method, "n/a", *["n/a"] * (len(SYNTHETIC_COLUMNS) - 2)])
            sources.append("")
            notes.append(f"`{method}`: no run record on `{SYNTHETIC}` (full training set).")
        else:
            preset, acc = pick
            add_row(method, preset, acc)
            info = next(
                (
                    r.run.synthetic_pretraining
                    for r in acc.records
                    if r.run.synthetic_pretraining is not None
                ),
                None,
            )
            if info is not None:
                notes.append(_synthetic_pretraining_note(method, info))
        # the tiny counterparts of the method's readings of its paper, beside it
        for reading, why in inputs.readings.get(method, {}).items():
            tiny = reading_tiny(reading)
            found = reading_accuracy(inputs, method, tiny)
            if found is None:
                notes.append(f"`{method}` `{tiny}` (reading `{reading}`): no run record.")
                continue
            add_row(method, tiny, found)
            notes.append(
                f"`{method}` `{tiny}`: the tiny counterpart of reading `{reading}`: {why}."
            )
    frame = pd.DataFrame(cells, columns=list(SYNTHETIC_COLUMNS), dtype=object)

    if chance is None:
        chance_note = "Chance level: n/a (the run records name no single class count)."
    else:
        chance_note = (
            f"{chance[0]} classes: chance is {fixed(chance[1], 1)} % top-1; (≤ chance) marks a "
            "top-1 at or below it. P(chance): the probability of at least as many correct "
            "test videos by guessing (one-sided binomial, videos summed over the splits); a "
            "row above 0.05 is not told apart from chance by its test set."
        )
    labels = sorted({acc.label for acc in shown})
    table_notes = [
        f"{chance_note} The appearance-only baseline is `{APPEARANCE_BASELINE}` (I-frames only, "
        f"no motion vectors or residuals); (≤ {APPEARANCE_BASELINE}) marks a top-1 at or below "
        "its row.",
        "One row per registered method (the papers' five, then the baselines): its run records "
        f"on `{SYNTHETIC}` with the full training set (no `shots`), the latest per split; preset "
        "`paper` where run, else `tiny`; then one row per reading of the method's paper, its "
        "`tiny_X` counterpart (methods.registry readings). Accuracy: "
        + (", ".join(labels) if labels else "n/a")
        + " (the mean over splits 1-3 only when all three were run); train time: the training "
        "wall time (mean over the splits); tunable params: the run record's count.",
        "Weights: none (random) = every pretrained option off; synthetic CLIP = a tiny CLIP "
        "pretrained by cvbench on captioned motion-vector images of a synthetic corpus disjoint "
        "from the benchmark (cvbench/pretrain.py; the record's `synthetic_pretraining`); "
        "otherwise the weight files the run record names.",
        "Class: every row is a `custom` run (cvbench/classify.py): the synthetic dataset has no "
        "published protocol. Partial or invalid records are not shown here; not_used lists "
        "them. Several seeds of a split: their mean, ± the std over the seeds.",
        *notes,
    ]
    return Table(
        "synthetic",
        "Synthetic dataset: every method at its tiny scale",
        [Block(None, frame, sources)],
        table_notes,
    )
