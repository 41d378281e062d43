"""The ``timing`` table: the papers' per-video timings, then ours."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from cvbench.report.format import PIXEL, Block, Footnotes, Table, fixed, printed
from cvbench.report.inputs import Inputs, preset_key, row_key, table_key
from cvbench.report.papers import PAPER_NAMES
from cvbench.report.records import Record
from cvbench.report.reported import Timing
from cvbench.report.tables.common import reported_source

TIMING_COLUMNS = (
    "Method",
    "Source",
    "Preset",
    "Device",
    "Pre-processing (ms)",
    "Model inference (ms)",
    "Full pipeline (ms)",
    "Setup",
)


def _clip_name(record: Record) -> str | None:
    clip = record.get("clip")
    if isinstance(clip, dict):
        clip = clip.get("file")
    return None if clip is None else str(clip)


def _clip_note(records: Sequence[Record], name: str) -> str:
    """The clip's file and, from the first record that has one, its description."""
    for record in records:
        clip = record.get("clip")
        if _clip_name(record) == name and isinstance(clip, dict):
            details = [str(clip["description"])] if clip.get("description") else []
            if clip.get("frames") is not None:
                details.append(f"{clip['frames']} frames")
            if details:
                return f"`{name}` ({'; '.join(details)})"
    return f"`{name}`"


def _timing_setup(record: Record, clip_marks: dict[str, str]) -> str:
    """Short: the sampling's kind, views, repeats (medians over them), threads, and the clip's
    footnote number when the timing records time more than one clip."""
    parts = []
    sampling = record.get("sampling")
    if isinstance(sampling, dict):
        sampling = sampling.get("kind")
    if sampling is not None:
        parts.append(str(sampling))
    for field_name, unit in (("views", "view"), ("repeats", "repeat"), ("threads", "thread")):
        n = record.get(field_name)
        if n is not None:
            parts.append(f"{n} {unit}{'' if n == 1 else 's'}")
    clip = _clip_name(record)
    if clip is not None and len(clip_marks) > 1:
        parts.append(f"clip {clip_marks[clip]}")
    return "; ".join(parts)


def ordered_timings(inputs: Inputs) -> tuple[list[Timing], list[tuple[tuple, Record]]]:
    """The ``timing`` table's rows in its order: the papers' timing rows (by paper table and
    printed row), and our ``((method, preset, device), record)`` timing records (registry
    order, the pixel pipeline last, then preset and device)."""
    reported = sorted(
        inputs.reported.timings,
        key=lambda t: (table_key(t.source.paper, t.source.table), row_key(t)),
    )

    def key(item: tuple[tuple, Record]) -> tuple:
        method, preset, device = item[0]
        rank = inputs.method_key(method) if method != PIXEL else len(inputs.methods) + 1
        return (rank, method, preset_key(preset), device)

    return reported, sorted(inputs.timings.items(), key=key)


def timing_table(inputs: Inputs) -> Table:
    cells, sources = [], []
    reported, measured = ordered_timings(inputs)
    for t in reported:
        cells.append(
            [
                t.method,
                f"reported: {PAPER_NAMES[t.source.paper]} {t.source.table}",
                "",
                t.hardware or "not stated",
                printed(t.preprocess_ms, 2),
                printed(t.inference_ms, 2),
                printed(t.full_ms, 2),
                "",
            ]
        )
        sources.append(reported_source(t))
    records = [record for _, record in measured]
    footnotes = Footnotes()
    clip_marks: dict[str, str] = {}
    for record in records:  # numbered in row order
        clip = _clip_name(record)
        if clip is not None and clip not in clip_marks:
            clip_marks[clip] = footnotes.mark(f"Clip {_clip_note(records, clip)}.")
    for (method, preset, device), record in measured:
        cells.append(
            [
                method,
                "measured",
                preset,
                device,
                fixed(record["preprocess_ms"], 2),
                fixed(record["inference_ms"], 2),
                fixed(record["full_ms"], 2),
                _timing_setup(record, clip_marks),
            ]
        )
        sources.append(record.file)
    frame = pd.DataFrame(cells, columns=list(TIMING_COLUMNS), dtype=object)
    if len(clip_marks) == 1:  # one clip: said once, not numbered
        clip_notes = [f"Every measured row times one clip: {_clip_note(records, *clip_marks)}."]
    else:
        clip_notes = footnotes.notes()
    notes = [
        "ms per video. Reported rows: the papers' timing tables (paper order, then printed "
        "order), hardware as the paper states it. Measured rows: timing records "
        "(`cvbench bench method --save`), medians over the repeats, in registry order; `pixel` "
        "is the pixel-domain reference pipeline (decode every frame to RGB).",
        "Setup: the method's test sampling, its test views, the timed repeats and the torch "
        "threads; each record's `notes` say what each column times.",
    ]
    if not inputs.timings:
        notes.append("No timing records yet: only the papers' rows are shown.")
    return Table(
        "timing", "Inference time per video", [Block(None, frame, sources, clip_notes)], notes
    )
