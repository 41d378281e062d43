"""Markdown, CSV and LaTeX writers of a :class:`~cvbench.report.format.Table`."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pandas as pd

from cvbench.report.format import Table, header_line

# --------------------------------------------------------------------------- writers

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "×": r"$\times$",
    "±": r"$\pm$",
    "β": r"$\beta$",
    "λ": r"$\lambda$",
    "–": "--",
    "−": "-",
    "≤": r"$\leq$",
    "<": r"$<$",  # text-mode < and > print as ¡ and ¿ in LaTeX's default (OT1) fonts
    ">": r"$>$",
}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped; Markdown `code` spans -> \\texttt."""
    parts = " ".join(str(text).split()).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: keep it as text
        parts = [" ".join(str(text).split()).replace("`", "'")]
    out = []
    for i, part in enumerate(parts):
        escaped = _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group(0)], part)
        out.append(f"\\texttt{{{escaped}}}" if i % 2 else escaped)
    return "".join(out)


def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", r"\|")


def to_markdown(table: Table) -> str:
    lines = [f"# {table.title}", "", header_line(table.inputs), ""]
    for block in table.blocks:
        if block.title:
            lines += [f"## {block.title}", ""]
        header = [_md_cell(c) for c in block.frame.columns]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        for values in block.frame.itertuples(index=False):
            lines.append("| " + " | ".join(_md_cell(v) for v in values) + " |")
        lines.append("")
        if block.notes:
            lines += [f"- {_md_cell(n)}" for n in block.notes]
            lines.append("")
    if table.notes:
        lines += ["Notes:", ""] + [f"- {_md_cell(n)}" for n in table.notes] + [""]
    return "\n".join(lines)


def csv_columns(table: Table) -> list[str]:
    """The data columns of the CSV: those of ``table.columns`` some block has, then every
    other block column in the order the blocks name them."""
    seen = list(dict.fromkeys(c for b in table.blocks for c in b.frame.columns))
    first = [c for c in table.columns or () if c in seen]
    return first + [c for c in seen if c not in first]


def to_csv(table: Table) -> str:
    """All blocks' rows (with a Block column when there are several) and a Sources column;
    blocks of different columns share one header (:func:`csv_columns`), a column a block
    lacks left empty in its rows."""
    columns = csv_columns(table)
    frames = []
    for block in table.blocks:
        frame = block.frame.reindex(columns=columns, fill_value="")
        if table.block_column or (table.block_column is None and len(table.blocks) > 1):
            frame.insert(0, "Block", block.title or "")
        frame["Sources"] = block.sources
        frames.append(frame)
    out = io.StringIO()
    pd.concat(frames, ignore_index=True).to_csv(
        out, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL
    )
    return out.getvalue()


# a tabular wider than this many characters (widest cells plus ~2 of padding per column) is
# scaled down to \textwidth (about 95 characters of 10 pt text)
LATEX_FIT_CHARS = 95


def _text_width(frame: pd.DataFrame) -> int:
    """Characters of the widest cell (header included) of each column, added up."""
    return sum(
        max([len(str(column)), *(len(" ".join(str(v).split())) for v in frame[column])])
        for column in frame.columns
    )


def to_latex(table: Table) -> str:
    lines = [
        f"% {table.title}",
        f"% {header_line(table.inputs)}",
        "% needs \\usepackage{booktabs} (and graphicx for wide tables)",
    ]
    for block in table.blocks:
        n = len(block.frame.columns)
        wide = n > 9 or _text_width(block.frame) + 2 * n > LATEX_FIT_CHARS
        lines += ["\\begin{table}[t]", "\\centering"]
        lines.append(f"\\caption{{{latex_escape(block.title or table.title)}}}")
        if wide:
            lines.append("\\resizebox{\\textwidth}{!}{%")
        lines.append(f"\\begin{{tabular}}{{{'l' * n}}}")
        lines.append("\\toprule")
        lines.append(" & ".join(latex_escape(str(c)) for c in block.frame.columns) + " \\\\")
        lines.append("\\midrule")
        for values in block.frame.itertuples(index=False):
            lines.append(" & ".join(latex_escape(v) for v in values) + " \\\\")
        lines.append("\\bottomrule")
        lines.append("\\end{tabular}" + ("}" if wide else ""))
        for note in [*block.notes, *(table.notes if block is table.blocks[-1] else [])]:
            lines.append(f"\\par\\footnotesize {latex_escape(note)}")
        lines += ["\\end{table}", ""]
    return "\n".join(lines)


def write_table(table: Table, out_dir: str | Path) -> list[Path]:
    """``<name>.md``, ``.csv`` and ``.tex`` under ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, text in (
        (".md", to_markdown(table)),
        (".csv", to_csv(table)),
        (".tex", to_latex(table)),
    ):
        path = out / f"{table.name}{suffix}"
        path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    return written
