"""The ``splits`` table: top-1 per split and their mean."""

from __future__ import annotations

import pandas as pd

from cvbench.report.classify import CUSTOM, dataset_splits
from cvbench.report.format import SPLITS, Block, Footnotes, Table
from cvbench.report.inputs import Inputs, dataset_name
from cvbench.report.tables.common import accuracy_over_splits, accuracy_text, source_files


def splits_table(inputs: Inputs) -> Table:
    footnotes = Footnotes()
    cells, sources = [], []
    for key in inputs.run_groups():
        by_split = inputs.groups[key]
        row = [key.method, key.preset, dataset_name(key.dataset)]
        if key.cls == CUSTOM:
            first = next(r for runs in by_split.values() for r in runs)
            reasons = "; ".join(inputs.classes[first.file].reasons)
            row.append(f"custom {footnotes.mark(reasons)}")
        else:
            row.append(key.cls)
        # a split the dataset does not have (Kinetics-400 and SSv2 have split 1 only): "-"
        splits = dataset_splits(key.dataset) or SPLITS
        row += [
            accuracy_text(accuracy_over_splits({s: by_split[s]}, splits))
            if s in by_split
            else ("" if s in splits else "-")
            for s in SPLITS
        ]
        acc = accuracy_over_splits(by_split)
        row.append(accuracy_text(acc) if acc and acc.is_mean else "")
        cells.append(row)
        sources.append(source_files(r for runs in by_split.values() for r in runs))
    columns = ["Method", "Preset", "Dataset", "Class", *(f"Split {s}" for s in SPLITS), "Mean"]
    frame = pd.DataFrame(cells, columns=columns, dtype=object)
    notes = [
        "Top-1 (%) per split from the protocol and custom run records (full training sets; "
        "K-shot runs are in few_shot; partial and invalid records are in not_used); Mean only "
        "when all the dataset's splits were run: 1-3 for UCF101 and HMDB51; Kinetics-400 and "
        "SSv2 have one official split (split 1, '-' under 2 and 3), so their Mean is that "
        "split. Records of one identity: the newest is shown; several "
        "seeds of a split: their mean ± the std over the seeds, with the seed count.",
        "Class (cvbench/classify.py): protocol = the paper's preset and settings on the complete "
        "official split with the weights as files, every epoch completed; custom = a complete "
        "run off that recipe, the numbered note says how.",
    ]
    return Table(
        "splits", "Top-1 per split", [Block(None, frame, sources, footnotes.notes())], notes
    )
