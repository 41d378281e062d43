"""The five papers cvbench reproduces, one row each: what the tables and figures need to
know about a paper, in one place.

The order of :data:`PAPERS_TABLE` is the order of the tables' blocks and of the figures'
legends. Adding a method that comes with a paper adds one :class:`Paper` row here (and its
rows in ``results/reported.yaml``); a baseline no paper proposes goes in :data:`BASELINES`.
``tests/test_reported.py`` checks that :data:`OUR_METHODS` is exactly the registry.

Nothing here imports torch, pandas or matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paper:
    """One paper: its text file, the name tables give it, its method, its plot style."""

    file: str  # the paper's text in shared/papers/ (reported.yaml's ``source.paper``)
    name: str  # short name, as the tables title its blocks ("TCAR-Net Table 1")
    method: str  # registry name of the method it proposes: its rows get a reproduced row
    marker: str  # matplotlib marker of its reported points in the figures
    grey: str  # grey level of its reported points in the figures


PAPERS_TABLE: tuple[Paper, ...] = (
    Paper("tcar_net.txt", "TCAR-Net", "tcar", marker="o", grey="0.15"),
    Paper("cvpt.txt", "CVPT", "cvpt", marker="s", grey="0.35"),
    Paper("meaci_net.txt", "MEACI-Net", "meaci", marker="^", grey="0.5"),
    Paper("scalable_stm.txt", "Scalable STM", "stm", marker="D", grey="0.6"),
    Paper("temporal_prompt_clip.txt", "TP-CLIP", "tpclip", marker="v", grey="0.7"),
)
# cvbench's baselines (registry names), no paper's own method: CoViAR (the papers' common
# reference, reproduced) and the I-frame-only model (what appearance alone reaches)
BASELINES = ("coviar", "iframe")
APPEARANCE_BASELINE = "iframe"  # the synthetic table marks top-1s at or below this one's

PAPERS = tuple(p.file for p in PAPERS_TABLE)  # the papers' files, in table order
PAPER_NAMES = {p.file: p.name for p in PAPERS_TABLE}  # file -> short name
PAPER_METHOD = {p.file: p.method for p in PAPERS_TABLE}  # file -> the method it proposes
# every method the report knows: the papers' methods in table order, then the baselines
OUR_METHODS = (*(p.method for p in PAPERS_TABLE), *BASELINES)


def paper(file: str) -> Paper:
    """The paper of a text file name; KeyError for a file no row names."""
    for entry in PAPERS_TABLE:
        if entry.file == file:
            return entry
    raise KeyError(file)


def paper_of_method(method: str) -> Paper | None:
    """The paper proposing ``method``, or None for a baseline or an unknown name."""
    return next((p for p in PAPERS_TABLE if p.method == method), None)
