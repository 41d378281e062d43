"""Per-video test scores beside a run record: ``<record stem>.scores.csv.gz``.

One row per scored test video: ``video`` (its relative name in the split list),
``label`` (int), ``label_name``, ``views`` (views averaged), then one column per class
name holding the video's softmax score averaged over its views (6 significant digits).
Written by rank 0 after the test; the record names it (``scores_file``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from methods.base import VideoScores

SUFFIX = ".scores.csv.gz"
COLUMNS = ("video", "label", "label_name", "views")  # before one column per class


def scores_frame(scores: VideoScores, names: Sequence[str], classes: Sequence[str]) -> pd.DataFrame:
    """The scores as a table; ``names[i]`` is the relative name of test video ``i``."""
    import pandas as pd

    index = scores.video_index.tolist()
    labels = scores.labels.tolist()
    frame = pd.DataFrame(
        {
            "video": [names[i] for i in index],
            "label": labels,
            "label_name": [classes[label] for label in labels],
            "views": scores.views.tolist(),
        }
    )
    values = scores.scores.detach().float().cpu().numpy()  # (V, num_classes)
    classes_frame = pd.DataFrame(values, columns=list(classes))
    return pd.concat([frame, classes_frame], axis=1)


def write_scores(path: Path, frame: pd.DataFrame) -> None:
    """Write atomically (a temporary file in the folder, then a rename); gzip without a
    timestamp, so equal scores give equal bytes."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        frame.to_csv(
            tmp, index=False, float_format="%.6g", compression={"method": "gzip", "mtime": 0}
        )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_scores(path: str | Path) -> pd.DataFrame:
    """A scores file as a DataFrame (columns as written: :data:`COLUMNS`, then the classes)."""
    import pandas as pd

    return pd.read_csv(path, compression="gzip", keep_default_na=False)
