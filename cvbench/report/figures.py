"""Figures rebuilt from the same inputs as the tables (:mod:`cvbench.report.tables`).

* ``accuracy_vs_gflops`` — top-1 against GFLOPs (log x, ticks as plain numbers), one panel
  per dataset with points: UCF101 and HMDB51 from the papers' main tables (hollow grey
  markers, one shape per paper; a small cross where the paper prints no parameters), and the
  papers' other datasets (Kinetics-400, SSv2, ...) where a protocol run of ours is on them;
  datasets without reported numbers (the synthetic one) from our runs, with the chance level
  (dashed) from the runs' class count. Marker area is proportional to the tunable parameters (size key in the
  legend). Our points are filled and labelled: accuracy from the run records (mean of 3 splits
  or the split run, as in the tables), GFLOPs from the method's cost record at the run's
  preset (the paper's counting convention where a comparison names one, else GMACs per view).
  A label goes beside its point, inside the axes, where it overlaps no other label, labelled
  point or tick label (:func:`place_labels`); a panel whose points share one preset names it
  in its title. A thin line joins our point to the paper's own row it reproduces
  (:func:`cvbench.report.tables.common.anchor_row`); a run at a reading of the paper
  (``paper_X``) is a protocol run too, labelled with its preset and joined to the same row. Each paper's own method (its anchor row,
  first table) is drawn darker and named; where the paper prints no GFLOPs for it (Scalable
  STM, TP-CLIP) it stands at cvbench's GMACs per view, its name starred. Our protocol runs are
  circles; tiny-preset and custom runs pentagons, each with its own legend entry.
* ``timing`` — pre-processing and inference ms per video per row of the ``timing`` table:
  stacked horizontal bars on a linear axis, or side by side on a log axis when the times span
  more than two decades; the papers' rows hatched and pale, measured rows solid; the legend
  above the bars.

Each is saved as PNG (150 dpi) and PDF under ``results/figures/``, with the creation date and
software version left out of the metadata so unchanged inputs give unchanged files where
matplotlib allows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from cvbench.report.classify import CUSTOM, PROTOCOL  # noqa: E402
from cvbench.report.format import MAIN_DATASETS  # noqa: E402
from cvbench.report.inputs import GroupKey, Inputs, dataset_key, dataset_name, row_key  # noqa: E402
from cvbench.report.papers import PAPER_NAMES, PAPERS, paper_of_method  # noqa: E402
from cvbench.report.papers import paper as paper_entry  # noqa: E402
from cvbench.report.reported import is_number  # noqa: E402
from cvbench.report.tables.common import (  # noqa: E402
    SplitAccuracy,
    accuracy_over_splits,
    anchor_row,
    main_table_infos,
    reproduced_cost,
)
from cvbench.report.tables.per_class import protocol_scores  # noqa: E402
from cvbench.report.tables.synthetic import chance_level  # noqa: E402
from cvbench.report.tables.timing import ordered_timings  # noqa: E402

DPI = 150
_OURS_COLOR = "tab:red"
_OWN_COLOR = "0.1"  # the label of a paper's own method (its anchor row)
_OURS_MARKER = "o"  # a protocol run: the paper's recipe on the official split
_CUSTOM_MARKER = "p"  # a tiny-preset or custom run (a pentagon: no paper uses it)
_PRE_COLOR = "tab:blue"
_INF_COLOR = "tab:orange"
_AREA_PER_M = 1.5  # marker area (pt^2) per million tunable parameters
_MIN_AREA = 12.0  # smallest marker drawn
_SIZE_KEYS_M = (10, 50, 200)  # size legend entries, millions of tunable parameters
# where a label may go around its point: (dx, dy) in points and the text's alignment; the
# first that stays inside the axes and overlaps no other label, labelled point or tick label
# is used; a second ring further out before giving up
_LABEL_SPOTS = tuple(
    (k * dx, k * dy, ha, va)
    for k in (1, 2.4)
    for dx, dy, ha, va in (
        (5, 3, "left", "bottom"),
        (5, -3, "left", "top"),
        (-5, 3, "right", "bottom"),
        (-5, -3, "right", "top"),
        (0, 7, "center", "bottom"),
        (0, -7, "center", "top"),
    )
)
_PNG_METADATA = {"Software": None}
_PDF_METADATA = {"CreationDate": None, "Producer": None, "Creator": None}


def _area(params_m: float | None) -> float:
    return _MIN_AREA if params_m is None else max(_MIN_AREA, _AREA_PER_M * params_m)


@dataclass(frozen=True)
class Point:
    """One marker of the accuracy-vs-GFLOPs figure."""

    dataset: str
    gflops: float
    top1: float  # %
    params_m: float | None  # tunable parameters, millions
    paper: str | None  # the paper it is printed in; None for ours
    label: str  # our method's label ("" for reported points)
    anchor: tuple[float, float] | None = None  # (gflops, top1) of the reported row it reproduces
    method: str | None = None  # our method; for a reported point, the paper's own method
    preset: str | None = None  # our run's preset (None for reported points)
    custom: bool = False  # ours: a tiny-preset or custom run, not the paper's recipe
    counted: bool = False  # reported: GFLOPs are cvbench's count (the paper prints none)


# the datasets whose reported points are always drawn; the papers' others where ours are
FIGURE_DATASETS = ("hmdb51", "ucf101")


def accuracy_points(inputs: Inputs) -> list[Point]:
    """Reported points (UCF101/HMDB51 of the main tables, and the other datasets of the
    papers where we have a protocol run) and ours, in table order."""
    points: list[Point] = []
    anchors: dict[tuple[str, str], tuple[float, float]] = {}  # (method, dataset) -> point
    ours = {k.dataset for k in plotted_groups(inputs)}
    datasets = [d for d in MAIN_DATASETS if d in FIGURE_DATASETS or d in ours]
    for info in main_table_infos(inputs.reported):
        rows = sorted(inputs.reported.rows_in(info.paper, info.table), key=row_key)
        anchor, _ = anchor_row(inputs, info, rows)
        for row in rows:
            for d in datasets:
                acc = row.accuracy.get(d)
                own = row is anchor and row.our_method and (row.our_method, d) not in anchors
                gflops, counted = row.gflops, False
                if own and not is_number(gflops):  # the paper prints none: cvbench's count
                    gflops = reproduced_cost(inputs, row.our_method, "gflops", info.paper).value
                    counted = True
                if not is_number(gflops) or not is_number(acc) or gflops <= 0:
                    continue
                if own:  # the paper's own method, first table: labelled with its name
                    anchors[(row.our_method, d)] = (gflops, acc)
                label = paper_entry(info.paper).name + ("*" if counted else "") if own else ""
                method = row.our_method if own else None
                params = row.tunable_params_m
                points.append(
                    Point(d, gflops, acc, params, info.paper, label, None, method, counted=counted)
                )

    for key in plotted_groups(inputs):
        method, preset, dataset = key.method, key.preset, key.dataset
        acc = accuracy_over_splits(inputs.groups[key])
        if acc is None:
            continue
        # the paper preset and the readings of the paper: the paper's counting convention
        reading = preset in inputs.readings.get(method, {})
        if preset == "paper" or reading:
            own = paper_of_method(method)
            paper = None if own is None else own.file
            cost = reproduced_cost(inputs, method, "gflops", paper, preset=preset)
            gflops = cost.value
            params = reproduced_cost(inputs, method, "tunable_params", paper, preset=preset).value
        else:
            record = inputs.cost(method, preset)
            gflops = None if record is None else record["gmacs_per_view"]
            params = acc.records[0].run.tunable_params / 1e6
        if not is_number(gflops) or gflops <= 0 or not is_number(acc.top1):
            continue  # no cost record, or a number no axis can show
        if params is not None and not is_number(params):
            params = None
        label = method if preset == "paper" else f"{method} ({preset})"
        anchor = anchors.get((method, dataset)) if preset == "paper" or reading else None
        custom = key.cls != PROTOCOL or not (preset == "paper" or reading)
        points.append(
            Point(
                dataset, gflops, 100 * acc.top1, params, None, label, anchor, method, preset, custom
            )
        )
    return points


def plotted_groups(inputs: Inputs) -> list[GroupKey]:
    """The run groups the figure shows: protocol runs, and custom runs on datasets without
    reported points (the synthetic set), one group per method and preset; a custom run on a dataset of the papers' tables
    (UCF101, HMDB51, Kinetics-400, SSv2, ...) is never plotted beside the papers' numbers
    as if it reproduced them."""
    shown: list[GroupKey] = []
    seen: set[tuple[str, str, str, int | None]] = set()
    for key in inputs.run_groups():
        # a custom run: one point per method and preset, the first group in table order (the
        # one the synthetic table shows), so a method is never drawn twice at one preset
        name = (key.method, key.preset, key.dataset, key.shots)
        custom = key.cls == CUSTOM and key.dataset not in MAIN_DATASETS and name not in seen
        if key.cls == PROTOCOL or custom:
            seen.add(name)
            shown.append(key)
    return shown


def chance_by_dataset(inputs: Inputs) -> dict[str, float]:
    """Chance top-1 (%) per dataset our full-training-set runs name one class count for."""
    by_dataset: dict[str, list[SplitAccuracy]] = {}
    for key in plotted_groups(inputs):
        acc = accuracy_over_splits(inputs.groups[key])
        if acc is not None:
            by_dataset.setdefault(key.dataset, []).append(acc)
    levels = {d: chance_level(accs) for d, accs in by_dataset.items()}
    return {d: level[1] for d, level in levels.items() if level is not None}


def _save(fig: plt.Figure, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    png, pdf = out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"
    fig.savefig(png, dpi=DPI, bbox_inches="tight", metadata=_PNG_METADATA)
    fig.savefig(pdf, bbox_inches="tight", metadata=_PDF_METADATA)
    plt.close(fig)
    return [png, pdf]


def _plain_log_axis(axis: Any, low: float, high: float) -> None:
    """Log ticks at 1, 2 and 5 x 10^k (and 3 x 10^k when the data span under 1.5 decades)
    printed as plain numbers (0.05, 200), no minor labels."""
    narrow = math.log10(high / low) < 1.5
    axis.set_major_locator(
        LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0) if narrow else (1.0, 2.0, 5.0))
    )
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _overlap(a: Bbox, b: Bbox) -> float:
    """The area two boxes share (0 when apart)."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(w, 0.0) * max(h, 0.0)


def place_labels(
    fig: plt.Figure,
    ax: plt.Axes,
    points: list[Point],
    labels: list[str],
    colors: list[str] | None = None,
    others: Sequence[Point] = (),
) -> None:
    """Each label beside its point at the first of ``_LABEL_SPOTS`` that stays inside the
    axes and overlaps neither a label placed before, another labelled point, a point of
    ``others`` nor a tick label; when none does, the spot inside the axes that overlaps least
    (so a label never covers the tick labels). ``colors``: one per label (ours: red). Needs
    the final layout: call after ``tight_layout`` and a draw."""
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    pixels_per_point = fig.dpi / 72.0

    def marker(p: Point) -> Bbox:
        x, y = ax.transData.transform((p.gflops, p.top1))
        r = math.sqrt(_area(p.params_m)) / 2 * pixels_per_point
        return Bbox.from_extents(x - r, y - r, x + r, y + r)

    markers = [marker(p) for p in points]
    fixed = [marker(p) for p in others]
    ticks = [
        t.get_window_extent(renderer)
        for t in (*ax.get_xticklabels(), *ax.get_yticklabels())
        if t.get_visible() and t.get_text()
    ]
    colors = colors or [_OURS_COLOR] * len(points)
    placed: list[Bbox] = []
    for i, (p, text, color) in enumerate(zip(points, labels, colors, strict=True)):
        obstacles = placed + markers[:i] + markers[i + 1 :] + fixed + ticks
        best: tuple[float, int] | None = None  # (overlap, spot) of the least crowded spot inside
        chosen = None
        for n, spot in enumerate(_LABEL_SPOTS):
            label = _label(ax, text, (p.gflops, p.top1), spot, color)
            box = label.get_window_extent(renderer)
            label.remove()
            if not (frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)):
                continue
            crowd = sum(_overlap(box, o) for o in obstacles)
            if crowd == 0:
                chosen = n
                break
            if best is None or crowd < best[0]:
                best = (crowd, n)
        if chosen is None:  # crowded: the least overlapping spot inside, else the first
            chosen = best[1] if best is not None else 0
        label = _label(ax, text, (p.gflops, p.top1), _LABEL_SPOTS[chosen], color)
        placed.append(label.get_window_extent(renderer))


def _label(ax: Any, text: str, xy: tuple[float, float], spot: tuple, color: str) -> Any:
    """One point's label at ``spot`` (dx, dy in points, ha, va) from ``xy``."""
    dx, dy, ha, va = spot
    far = spot not in _LABEL_SPOTS[: len(_LABEL_SPOTS) // 2]  # the outer ring: a leader line
    return ax.annotate(
        text,
        xy,
        xytext=(dx, dy),
        textcoords="offset points",
        ha=ha,
        va=va,
        fontsize=7,
        color=color,
        zorder=5,
        arrowprops={"arrowstyle": "-", "linewidth": 0.4, "color": color} if far else None,
    )


def accuracy_figure(inputs: Inputs, out_dir: Path) -> list[Path]:
    points = accuracy_points(inputs)
    chance = chance_by_dataset(inputs)
    datasets = sorted({p.dataset for p in points}, key=dataset_key)
    n = max(1, len(datasets))
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.4), squeeze=False)
    # per panel: the points to label, their labels and colours, the other points
    to_label: list[tuple[plt.Axes, list[Point], list[str], list[str], list[Point]]] = []
    chance_drawn = False
    for ax, dataset in zip(axes[0], datasets, strict=False):
        here = [p for p in points if p.dataset == dataset]
        for p in here:
            if p.paper is not None:
                grey = _OWN_COLOR if p.label else paper_entry(p.paper).grey
                # a cross (unfilled marker: coloured by its face) where no params are printed
                style = (
                    {"marker": "x", "c": grey}
                    if p.params_m is None
                    else {
                        "marker": paper_entry(p.paper).marker,
                        "facecolors": "none",
                        "edgecolors": grey,
                    }
                )
                ax.scatter(
                    p.gflops,
                    p.top1,
                    s=_area(p.params_m),
                    linewidths=1.2 if p.label else 0.8,
                    alpha=0.8,
                    zorder=2,
                    **style,
                )
        ours = [p for p in here if p.paper is None]
        for p in ours:
            if p.anchor is not None:
                ax.plot(
                    [p.anchor[0], p.gflops],
                    [p.anchor[1], p.top1],
                    color=_OURS_COLOR,
                    linewidth=0.6,
                    zorder=3,
                )
            ax.scatter(
                p.gflops,
                p.top1,
                s=_area(p.params_m),
                marker=_CUSTOM_MARKER if p.custom else _OURS_MARKER,
                color=_OURS_COLOR,
                edgecolors="black",
                linewidths=0.5,
                zorder=4,
            )
        # one preset for every point of ours: said in the title, not in each label
        presets = {p.preset for p in ours}
        shared = next(iter(presets)) if len(presets) == 1 and None not in presets else None
        labels = [(p.method or p.label) if shared else p.label for p in ours]
        # the papers' own methods (each paper's anchor row) are named too, in dark grey
        own = [p for p in here if p.paper is not None and p.label]
        rest = [p for p in here if p.paper is not None and not p.label]
        colors = [_OWN_COLOR] * len(own) + [_OURS_COLOR] * len(ours)
        to_label.append((ax, own + ours, [p.label for p in own] + labels, colors, rest))
        reported_here = any(p.paper is not None for p in here)
        if not reported_here and dataset in chance:  # a dataset of ours: its chance level
            ax.axhline(chance[dataset], color="0.4", linestyle="--", linewidth=0.8, zorder=1)
            chance_drawn = True
        ax.set_xscale("log")
        _plain_log_axis(ax.xaxis, min(p.gflops for p in here), max(p.gflops for p in here))
        ax.margins(x=0.08, y=0.08)  # room for the largest markers at the edges
        if not reported_here:
            ax.set_ylim(bottom=0)
        title = dataset_name(dataset)
        if not reported_here:
            title += f" (cvbench runs, {shared} presets)" if shared else " (cvbench runs)"
        ax.set_title(title)
        ax.set_xlabel(
            "GFLOPs as each paper counts them (GMACs, log scale)"
            if reported_here
            else "GMACs per test view, cvbench count (log scale)"
        )
        ax.set_ylabel("top-1 accuracy (%)")
        ax.grid(True, which="both", linewidth=0.3, alpha=0.5)
    if not datasets:
        axes[0][0].text(0.5, 0.5, "no points", ha="center", va="center")
        axes[0][0].set_axis_off()

    # a paper's marker shape is only seen where it prints parameters (else a cross)
    papers = sorted(
        {p.paper for p in points if p.paper and p.params_m is not None},
        key=PAPERS.index,
    )
    handles = [
        Line2D(
            [],
            [],
            linestyle="",
            marker=paper_entry(paper).marker,
            markerfacecolor="none",
            markeredgecolor=paper_entry(paper).grey,
            label=f"{PAPER_NAMES[paper]} (reported)",
        )
        for paper in papers
    ]
    if any(p.paper and p.params_m is None for p in points):
        handles.append(
            Line2D(
                [], [], linestyle="", marker="x", color="0.4", label="reported, params not printed"
            )
        )
    kinds = {p.custom for p in points if p.paper is None}
    handles += [
        Line2D(
            [],
            [],
            linestyle="",
            marker=_CUSTOM_MARKER if custom else _OURS_MARKER,
            markerfacecolor=_OURS_COLOR,
            markeredgecolor="black",
            markeredgewidth=0.5,
            label="cvbench, tiny or custom run" if custom else "cvbench, protocol run",
        )
        for custom in sorted(kinds)
    ]
    if any(p.counted for p in points):
        handles.append(
            Line2D([], [], linestyle="", label="* reported top-1 at cvbench's GMACs per view")
        )
    if chance_drawn:
        handles.append(
            Line2D([], [], color="0.4", linestyle="--", linewidth=0.8, label="chance level")
        )
    handles += [
        Line2D(
            [],
            [],
            linestyle="",
            marker="o",
            markerfacecolor="none",
            markeredgecolor="0.3",
            markersize=math.sqrt(_area(m)),
            label=f"{m} M tunable params",
        )
        for m in _SIZE_KEYS_M
    ]
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=len(handles) if n >= 3 else math.ceil(len(handles) / 2),
        fontsize=7,
        frameon=False,
        columnspacing=1.2,
    )
    fig.suptitle("Accuracy vs cost: the papers' numbers and cvbench's")
    fig.tight_layout()
    fig.canvas.draw()  # the final layout: labels are placed in display coordinates
    for ax, labelled, labels, colors, rest in to_label:
        place_labels(fig, ax, labelled, labels, colors, rest)
    return _save(fig, out_dir, "accuracy_vs_gflops")


@dataclass(frozen=True)
class Bar:
    """One row of the timing chart."""

    label: str
    preprocess_ms: float | None
    inference_ms: float | None
    full_ms: float | None
    reported: bool


def timing_bars(inputs: Inputs) -> list[Bar]:
    """The ``timing`` table's rows, in its order (papers' rows, then ours)."""
    bars = []
    reported, measured = ordered_timings(inputs)
    for t in reported:
        label = f"{t.method} [{PAPER_NAMES[t.source.paper]} {t.source.table}]"
        bars.append(Bar(label, t.preprocess_ms, t.inference_ms, t.full_ms, True))
    for (method, preset, device), record in measured:
        label = f"{method} ({preset}, {device}) [measured]"
        times = [record[k] for k in ("preprocess_ms", "inference_ms", "full_ms")]
        times = [t if is_number(t) else None for t in times]
        bars.append(Bar(label, *times, False))
    return bars


def timing_figure(inputs: Inputs, out_dir: Path) -> list[Path]:
    bars = timing_bars(inputs)
    fig, ax = plt.subplots(figsize=(8.0, 1.2 + 0.38 * max(1, len(bars))))
    values = [v for b in bars for v in (b.preprocess_ms, b.inference_ms, b.full_ms) if v and v > 0]
    log = bool(values) and max(values) / min(values) > 100
    height = 0.38 if log else 0.7
    for i, b in enumerate(bars):
        y = len(bars) - 1 - i  # first row on top
        style = {"hatch": "//", "alpha": 0.45} if b.reported else {"alpha": 0.95}
        pre, inf = b.preprocess_ms or 0.0, b.inference_ms or 0.0
        if log:
            floor = 10 ** math.floor(math.log10(min(values)))
            if pre > 0:
                ax.barh(
                    y + height / 2,
                    pre - floor,
                    left=floor,
                    height=height,
                    color=_PRE_COLOR,
                    **style,
                )
            if inf > 0:
                ax.barh(
                    y - height / 2,
                    inf - floor,
                    left=floor,
                    height=height,
                    color=_INF_COLOR,
                    **style,
                )
        else:
            ax.barh(y, pre, height=height, color=_PRE_COLOR, **style)
            ax.barh(y, inf, left=pre, height=height, color=_INF_COLOR, **style)
        end = max(pre, inf) if log else pre + inf
        full = b.full_ms if b.full_ms is not None else (pre + inf if pre or inf else None)
        if full is not None:
            ax.annotate(
                f"full {full:.1f} ms",
                (end, y),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
            )
    ax.set_yticks(range(len(bars)))
    ax.set_yticklabels([b.label for b in reversed(bars)], fontsize=7)
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xlabel("ms per video" + (" (log scale)" if log else ""))
    ax.set_title("Inference time per video: pre-processing and model inference", pad=24)
    ax.grid(True, axis="x", which="both", linewidth=0.3, alpha=0.5)
    ax.margins(x=0.15)
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=_PRE_COLOR, label="pre-processing"),
        plt.Rectangle((0, 0), 1, 1, color=_INF_COLOR, label="model inference"),
        plt.Rectangle(
            (0, 0), 1, 1, facecolor="white", edgecolor="0.3", hatch="//", label="reported (paper)"
        ),
        plt.Rectangle((0, 0), 1, 1, facecolor="0.3", label="measured (cvbench)"),
    ]
    # above the bars, where no bar can run under it
    ax.legend(
        handles=handles,
        fontsize=7,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=len(handles),
        frameon=False,
    )
    if not bars:
        ax.text(0.5, 0.5, "no timing rows", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return _save(fig, out_dir, "timing")


CONFUSION_NAMED = 30  # up to this many classes, the axes name them; beyond, indices


def confusion_figures(inputs: Inputs, out_dir: Path) -> list[Path]:
    """One confusion matrix per protocol run with a scores file (true class per row, the
    predicted per column, each row in % of its videos): ``confusion_<method>_<dataset>_s<split>``
    (``_seed<k>`` after it for seeds other than the first)."""
    import numpy as np

    written: list[Path] = []
    found, _ = protocol_scores(inputs)
    seen: set[str] = set()
    for scores in found:
        r = scores.record
        n = len(scores.classes)
        matrix = np.zeros((n, n))
        for t, p in zip(scores.labels, scores.predicted, strict=True):
            matrix[t, p] += 1
        rows = matrix.sum(axis=1, keepdims=True)
        share = np.divide(100 * matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
        side = min(16.0, max(4.5, 0.28 * n + 2.5))
        fig, ax = plt.subplots(figsize=(side + 1.0, side))
        image = ax.imshow(share, cmap="Blues", vmin=0, vmax=100, interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% of the true class's videos")
        if n <= CONFUSION_NAMED:
            ax.set_xticks(range(n), scores.classes, rotation=90, fontsize=7)
            ax.set_yticks(range(n), scores.classes, fontsize=7)
        ax.set_xlabel("predicted class" + ("" if n <= CONFUSION_NAMED else " (index)"))
        ax.set_ylabel("true class" + ("" if n <= CONFUSION_NAMED else " (index)"))
        ax.set_title(
            f"{r['method']} ({r['preset']}), {dataset_name(r['dataset'])} split {r['split']}: "
            f"confusion over {len(scores.labels)} test videos"
        )
        fig.tight_layout()
        stem = f"confusion_{r['method']}_{r['dataset']}_s{r['split']}"
        stem += f"_seed{r['seed']}" if stem in seen else ""
        seen.add(stem)
        written += _save(fig, out_dir, stem)
    return written


# the figures, in the order they are written
FIGURE_BUILDERS = (accuracy_figure, timing_figure, confusion_figures)


def render_figures(inputs: Inputs, out_dir: str | Path) -> list[Path]:
    """Write every figure (PNG and PDF) under ``out_dir``; return the paths."""
    return [p for build in FIGURE_BUILDERS for p in build(inputs, Path(out_dir))]
