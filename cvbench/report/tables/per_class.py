"""The ``per_class`` table: per-class top-1 of each protocol run with a scores file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cvbench.report.classify import PROTOCOL
from cvbench.report.format import Block, Table, fixed
from cvbench.report.inputs import Inputs, dataset_name
from cvbench.report.records import Record

SCORES_SUFFIX = ".scores.csv.gz"  # per-video scores beside a run record
SCORE_COLUMNS = ("video", "label", "label_name", "views")  # then one column per class


@dataclass(frozen=True)
class Scores:
    """A run's per-video test scores: class names, true and predicted labels."""

    record: Record
    path: Path
    classes: list[str]  # class names in label order (the score columns)
    labels: list[int]  # true label per video
    predicted: list[int]  # argmax of the scores per video


def scores_path(record: Record) -> Path:
    """The record's scores file: ``scores_file`` (read beside the record), else
    ``<record stem>.scores.csv.gz``."""
    from cvbench.report.classify import get

    named = get(record, "scores_file")
    name = Path(named).name if isinstance(named, str) and named else None
    return record.path.parent / (name or f"{record.path.stem}{SCORES_SUFFIX}")


def read_scores(record: Record) -> Scores | str | None:
    """The record's scores; None without a file; a message when the file is unreadable."""
    path = scores_path(record)
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, EOFError) as err:
        return f"{path.name}: not readable: {err}"
    classes = [c for c in frame.columns if c not in SCORE_COLUMNS]
    if "label" not in frame.columns or not classes:
        return f"{path.name}: expected columns {', '.join(SCORE_COLUMNS)} and one per class"
    values = frame[classes].apply(pd.to_numeric, errors="coerce")
    labels = pd.to_numeric(frame["label"], errors="coerce")
    if (
        values.isna().any().any()
        or labels.isna().any()
        or not labels.between(0, len(classes) - 1).all()
    ):
        return f"{path.name}: a score or label that is not a number, or a label out of range"
    predicted = values.to_numpy().argmax(axis=1)
    return Scores(record, path, classes, [int(x) for x in labels], [int(x) for x in predicted])


def protocol_scores(inputs: Inputs) -> tuple[list[Scores], list[str]]:
    """The scores of every protocol run shown (full training sets), in table order, and a
    problem per unreadable scores file; runs without one are skipped."""
    found, problems = [], []
    for key in inputs.run_groups(classes=(PROTOCOL,)):
        for runs in inputs.groups[key].values():
            for record in runs:
                scores = read_scores(record)
                if isinstance(scores, Scores):
                    found.append(scores)
                elif isinstance(scores, str):
                    problems.append(scores)
    return found, problems


def per_class_table(inputs: Inputs) -> Table:
    """Per protocol run with a scores file: each class's test videos, top-1, and the class
    its videos are most often taken for."""
    columns = ["Class", "Test videos", "Top-1 (%)", "Most confused with", "Confused (%)"]
    found, problems = protocol_scores(inputs)
    blocks = []
    for scores in found:
        r = scores.record
        cells = []
        for c, name in enumerate(scores.classes):
            mine = [p for t, p in zip(scores.labels, scores.predicted, strict=True) if t == c]
            wrong = [p for p in mine if p != c]
            top = max(set(wrong), key=lambda p: (wrong.count(p), -p)) if wrong else None
            cells.append(
                [
                    name,
                    str(len(mine)),
                    fixed(100 * (len(mine) - len(wrong)) / len(mine), 1) if mine else "n/a",
                    scores.classes[top] if top is not None else "-",
                    fixed(100 * wrong.count(top) / len(mine), 1) if top is not None else "-",
                ]
            )
        title = (
            f"{r['method']} {r['preset']}, {dataset_name(r['dataset'])} split {r['split']}, "
            f"seed {r['seed']}"
        )
        frame = pd.DataFrame(cells, columns=columns, dtype=object)
        blocks.append(Block(title, frame, [f"{r.file}; {scores.path.name}"] * len(cells)))
    if not blocks:
        blocks.append(Block(None, pd.DataFrame([], columns=columns, dtype=object), []))
    notes = [
        "Per class of each protocol run with a scores file (`<record stem>.scores.csv.gz`, the "
        "per-video scores over the test views): its test videos, the share predicted right "
        "(argmax of the scores), and the class its videos are most often taken for, with that "
        "share. Runs without a scores file are left out.",
        *problems,
    ]
    if not found:
        notes.insert(0, "No protocol run with a scores file yet.")
    return Table(
        "per_class", "Per-class top-1 of the protocol runs", blocks, notes, block_column=True
    )
