"""The papers' reported numbers (``results/reported.yaml``), loaded and type-checked.

The YAML holds every row of the five papers' comparison tables (``rows``), their per-video
timing tables (``timings``), the temporal-prompt CLIP few-shot grid (``few_shot``), and one
``tables`` entry per source table (caption, kind, expected entry count, column notes). The
conventions (units, ``null`` for ``-``, ``split_protocol`` values) are at the top of the YAML.

``load_reported(path, strict=False)`` checks every field of every entry. A malformed entry is
a :class:`ReportedProblem` naming the file, the section, the entry index and the field; the
entry is left out and the others load. ``strict=True`` raises :class:`ReportedError` on the
first problem instead. Problems found with ``strict=False`` are also issued as
:class:`ReportedWarning`. A file that is not YAML, or not a mapping at the top, always raises:
nothing in it can be loaded.

Besides per-field types and value sets, the loader checks that each entry's source table is
declared in ``tables`` with a matching kind, that no (paper, table, row) occurs twice, and that
each declared table holds exactly ``n_rows`` good entries.

Nothing here imports torch; pandas is imported only by :meth:`ReportedTables.to_frame`.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from cvbench.report.papers import OUR_METHODS, PAPERS
from cvbench.report.validate import (  # noqa: F401  (number rule re-exported)
    MAX_INT,
    FieldError,
    is_number,
    number_problem,
)
from datamodules.errors import CvbenchError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "results" / "reported.yaml"
SCHEMA_VERSION = 1

DATASETS = ("ucf101", "hmdb51", "kinetics400", "kinetics600", "ssv2", "ssv1")
SPLIT_PROTOCOLS = ("3-split mean", "split 1", "single official split", "unknown")
TABLE_KINDS = ("main", "cost", "timing", "few_shot")
FEW_SHOT_K = (2, 4, 8, 16)
Section = Literal["rows", "timings", "few_shot"]
# which table kinds each section's entries may come from
_SECTION_KINDS: dict[str, tuple[str, ...]] = {
    "rows": ("main", "cost"),
    "timings": ("timing",),
    "few_shot": ("few_shot",),
}
_TABLE_RE = re.compile(r"^Table \d+$")
# libyaml's safe loader where PyYAML was built with it (5x faster on this 3,000-line file)
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Source:
    """Where a number is printed."""

    paper: str  # file name in shared/papers/, one of PAPERS
    table: str  # "Table N" as the paper numbers it
    row: int | str  # 1-based row index in printed order (or a label)


@dataclass(frozen=True)
class TableInfo:
    """One source table: what it is and how many entries the YAML holds for it."""

    paper: str  # one of PAPERS
    table: str  # "Table N"
    kind: str  # main | cost | timing | few_shot (which section its entries are in)
    n_rows: int  # entries expected in that section for this table
    caption: str | None  # caption as printed (null where the extraction lost it)
    notes: str | None  # column meanings, merged cells, protocol statements


@dataclass(frozen=True)
class ReportedRow:
    """One row of a comparison table."""

    method: str  # method cell as printed (citation brackets included)
    our_method: str | None  # registry name when the row is that model, else None
    variant: str | None  # e.g. "ViT-B SL", "3-clip", "T=16"
    modality: str | None  # as printed ("I-Frame+MV+Res", "RGB+text", "CD", ...)
    backbone: str | None  # as printed
    pretrain: str | None  # as printed ("Kinetics/CLIP", "SSL", "K400", ...)
    frames: str | None  # frames column as printed ("16+16+16", "8+16", "8")
    views: str | None  # clips x crops where stated ("3 clips", "4 clips x 3 crops")
    gflops: float | None  # GFLOPs as printed
    gflops_note: str | None  # what the GFLOPs cover, where the paper says
    tunable_params_m: float | None  # trainable parameters, millions
    total_params_m: float | None  # all parameters, millions, where stated
    accuracy: dict[str, float | None]  # dataset -> top-1 %, None for a '-' cell
    split_protocol: str  # one of SPLIT_PROTOCOLS
    source: Source  # where it is printed
    notes: str | None  # ambiguities, prose-derived fields, cross-paper discrepancies
    group: str | None = None  # the table's row group ("Raw video based", ...)
    accuracy_top5: dict[str, float | None] = field(default_factory=dict)  # dataset -> top-5 %
    extra: dict[str, Any] = field(default_factory=dict)  # columns outside this schema
    raw: str | None = None  # the row as printed, where the extraction is damaged


@dataclass(frozen=True)
class Timing:
    """One method's per-video times from a paper's timing table."""

    method: str  # as printed
    our_method: str | None  # registry name or None
    preprocess_ms: float | None  # pre-processing (decoding / compressed-stream parsing)
    inference_ms: float | None  # model inference
    full_ms: float | None  # full pipeline
    hardware: str | None  # as stated by the paper, None where it does not say
    source: Source  # where it is printed
    notes: str | None


@dataclass(frozen=True)
class FewShot:
    """One cell of a K-shot table."""

    method: str  # as printed
    our_method: str | None  # registry name or None
    variant: str | None  # ablation variant ("TP", "TP+beta", ...)
    pretrain: str | None  # as printed
    k: int  # training videos per class
    dataset: str  # one of DATASETS
    top1: float | None  # top-1 %, None for a '-' cell
    source: Source  # where it is printed (row = the method's row)
    notes: str | None


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class ReportedProblem:
    """A malformed entry: which file, section, entry index and field, and what is wrong."""

    path: str  # the YAML file
    section: str  # "rows", "timings", "few_shot", "tables" or "(top level)"
    index: int | None  # entry index in the section (0-based), None for the section itself
    field: str | None  # dotted field name ("source.table", "accuracy.ucf101"), None for entry
    message: str

    def __str__(self) -> str:
        where = self.section if self.index is None else f"{self.section}[{self.index}]"
        if self.field:
            where += f".{self.field}"
        return f"{self.path}: {where}: {self.message}"


class ReportedError(CvbenchError, ValueError):
    """Raised by ``load_reported(strict=True)`` on the first problem (and for unreadable files)."""

    def __init__(self, problem: ReportedProblem | str):
        self.problem = problem if isinstance(problem, ReportedProblem) else None
        super().__init__(str(problem))


class ReportedWarning(UserWarning):
    """Issued once per problem by ``load_reported(strict=False)``."""


# --------------------------------------------------------------------------- field checks

Check = Callable[[Any], Any]  # returns the checked value, raises FieldError


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(nullable: bool = True) -> Check:
    def check(value: Any) -> str | None:
        if value is None and nullable:
            return None
        if not isinstance(value, str) or not value.strip():
            want = "a non-empty string or null" if nullable else "a non-empty string"
            raise FieldError(f"expected {want}, got {_show(value)}")
        return value

    return check


def _choice(options: tuple, nullable: bool = False) -> Check:
    def check(value: Any) -> Any:
        if value is None and nullable:
            return None
        if value not in options:
            null = " or null" if nullable else ""
            raise FieldError(f"expected one of {list(options)}{null}, got {_show(value)}")
        return value

    return check


def _number(low: float = 0.0, high: float | None = None) -> Check:
    def check(value: Any) -> float | None:
        if value is None:
            return None
        problem = number_problem(value)
        if problem is not None:
            raise FieldError(problem.replace("expected a number", "expected a number or null", 1))
        if value < low or (high is not None and value > high):
            bound = f"[{low}, {high}]" if high is not None else f">= {low}"
            raise FieldError(f"expected a number {bound}, got {value}")
        return value

    return check


def _percent_map(nonempty: bool) -> Check:
    percent = _number(0.0, 100.0)

    def check(value: Any) -> dict[str, float | None]:
        if value is None and not nonempty:
            return {}
        if not isinstance(value, dict):
            raise FieldError(f"expected a mapping dataset -> percent, got {_show(value)}")
        if nonempty and not value:
            raise FieldError("expected at least one dataset")
        out = {}
        for key, pct in value.items():
            if key not in DATASETS:
                raise FieldError(f"unknown dataset {key!r} (known: {list(DATASETS)})", str(key))
            try:
                out[key] = percent(pct)
            except FieldError as bad:
                raise FieldError(bad.message, str(key)) from None
        return out

    return check


def _extra(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FieldError(f"expected a mapping, got {_show(value)}")
    for key, item in value.items():
        if not isinstance(key, str):
            raise FieldError(f"keys must be strings, got {_show(key)}")
        if item is not None and not isinstance(item, str | int | float | bool):
            raise FieldError(f"values must be scalars, got {_show(item)}", key)
    return dict(value)


def _source(value: Any) -> Source:
    if not isinstance(value, dict):
        raise FieldError(f"expected a mapping {{paper, table, row}}, got {_show(value)}")
    unknown = sorted(set(value) - {"paper", "table", "row"})
    if unknown:
        raise FieldError(f"unknown key {unknown[0]!r}", str(unknown[0]))
    for key in ("paper", "table", "row"):
        if key not in value:
            raise FieldError("missing", key)
    paper, table, row = value["paper"], value["table"], value["row"]
    if paper not in PAPERS:
        raise FieldError(f"expected one of {list(PAPERS)}, got {_show(paper)}", "paper")
    if not isinstance(table, str) or not _TABLE_RE.match(table):
        raise FieldError(f"expected 'Table N', got {_show(table)}", "table")
    if isinstance(row, bool) or not (
        (isinstance(row, int) and row >= 1) or (isinstance(row, str) and row.strip())
    ):
        raise FieldError(f"expected a 1-based index or a label, got {_show(row)}", "row")
    return Source(paper, table, row)


def _positive_int(value: Any) -> int:
    if not isinstance(value, int) or not is_number(value) or value < 1:
        raise FieldError(f"expected a positive integer, got {_show(value)}")
    return value


def _few_shot_k(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in FEW_SHOT_K:
        raise FieldError(f"expected one of {list(FEW_SHOT_K)}, got {_show(value)}")
    return value


# field -> (check, required); optional fields take their dataclass default when absent
_ROW_SPEC: dict[str, tuple[Check, bool]] = {
    "method": (_text(nullable=False), True),
    "our_method": (_choice(OUR_METHODS, nullable=True), True),
    "variant": (_text(), True),
    "group": (_text(), False),
    "modality": (_text(), True),
    "backbone": (_text(), True),
    "pretrain": (_text(), True),
    "frames": (_text(), True),
    "views": (_text(), True),
    "gflops": (_number(), True),
    "gflops_note": (_text(), True),
    "tunable_params_m": (_number(), True),
    "total_params_m": (_number(), True),
    "accuracy": (_percent_map(nonempty=True), True),
    "accuracy_top5": (_percent_map(nonempty=False), False),
    "split_protocol": (_choice(SPLIT_PROTOCOLS), True),
    "source": (_source, True),
    "extra": (_extra, False),
    "raw": (_text(), False),
    "notes": (_text(), True),
}
_TIMING_SPEC: dict[str, tuple[Check, bool]] = {
    "method": (_text(nullable=False), True),
    "our_method": (_choice(OUR_METHODS, nullable=True), True),
    "preprocess_ms": (_number(), True),
    "inference_ms": (_number(), True),
    "full_ms": (_number(), True),
    "hardware": (_text(), True),
    "source": (_source, True),
    "notes": (_text(), True),
}
_FEW_SHOT_SPEC: dict[str, tuple[Check, bool]] = {
    "method": (_text(nullable=False), True),
    "our_method": (_choice(OUR_METHODS, nullable=True), True),
    "variant": (_text(), True),
    "pretrain": (_text(), True),
    "k": (_few_shot_k, True),
    "dataset": (_choice(DATASETS), True),
    "top1": (_number(0.0, 100.0), True),
    "source": (_source, True),
    "notes": (_text(), True),
}
_TABLE_SPEC: dict[str, tuple[Check, bool]] = {
    "paper": (_choice(PAPERS), True),
    "table": (_text(nullable=False), True),
    "kind": (_choice(TABLE_KINDS), True),
    "n_rows": (_positive_int, True),
    "caption": (_text(), True),
    "notes": (_text(), True),
}
_SECTIONS: dict[str, tuple[type, dict[str, tuple[Check, bool]]]] = {
    "tables": (TableInfo, _TABLE_SPEC),
    "rows": (ReportedRow, _ROW_SPEC),
    "timings": (Timing, _TIMING_SPEC),
    "few_shot": (FewShot, _FEW_SHOT_SPEC),
}
_TOP_LEVEL = ("schema_version", *_SECTIONS)


# --------------------------------------------------------------------------- the tables


@dataclass
class ReportedTables:
    """The loaded file: good entries of each section, and the problems found."""

    path: Path
    tables: list[TableInfo]
    rows: list[ReportedRow]
    timings: list[Timing]
    few_shot: list[FewShot]
    problems: list[ReportedProblem]

    def rows_for(self, our_method: str, section: Section = "rows") -> list:
        """Entries of ``section`` (default: comparison-table rows) that are ``our_method``."""
        if our_method not in OUR_METHODS:
            raise ValueError(f"unknown method {our_method!r}; known: {list(OUR_METHODS)}")
        return [e for e in self._section(section) if e.our_method == our_method]

    def rows_in(self, paper: str, table: str | None = None, section: Section = "rows") -> list:
        """Entries of ``section`` printed in ``paper`` (and ``table``), in printed order."""
        return [
            e
            for e in self._section(section)
            if e.source.paper == paper and (table is None or e.source.table == table)
        ]

    def counts(self) -> dict[tuple[str, str], int]:
        """(paper, table) -> number of good entries, over all sections."""
        entries = [*self.rows, *self.timings, *self.few_shot]
        return dict(Counter((e.source.paper, e.source.table) for e in entries))

    def to_frame(self, section: Section = "rows") -> pd.DataFrame:
        """One flat DataFrame row per entry; ``accuracy`` becomes ``top1_<dataset>`` columns,
        ``accuracy_top5`` ``top5_<dataset>``, ``extra`` ``extra_<key>``, ``source`` three
        columns ``paper``, ``table``, ``row``."""
        import pandas as pd

        records = []
        for entry in self._section(section):
            record: dict[str, Any] = {}
            for f in dataclasses.fields(entry):
                value = getattr(entry, f.name)
                if f.name == "source":
                    record.update(paper=value.paper, table=value.table, row=value.row)
                elif f.name == "accuracy":
                    record.update({f"top1_{k}": v for k, v in value.items()})
                elif f.name == "accuracy_top5":
                    record.update({f"top5_{k}": v for k, v in value.items()})
                elif f.name == "extra":
                    record.update({f"extra_{k}": v for k, v in value.items()})
                else:
                    record[f.name] = value
            records.append(record)
        return pd.DataFrame.from_records(records)

    def _section(self, section: Section) -> list:
        if section not in _SECTION_KINDS:
            raise ValueError(f"section must be one of {list(_SECTION_KINDS)}, not {section!r}")
        return getattr(self, section)


# --------------------------------------------------------------------------- loading


class _Collector:
    """Collects problems; raises on the first one when strict."""

    def __init__(self, path: Path, strict: bool):
        self.path = str(path)
        self.strict = strict
        self.problems: list[ReportedProblem] = []

    def add(self, section: str, index: int | None, field: str | None, message: str) -> None:
        problem = ReportedProblem(self.path, section, index, field, message)
        if self.strict:
            raise ReportedError(problem)
        self.problems.append(problem)


def _build(cls: type, spec: dict, entry: Any, section: str, index: int, out: _Collector):
    """The dataclass for one entry, or None after reporting its problems."""
    if not isinstance(entry, dict):
        out.add(section, index, None, f"expected a mapping, got {_show(entry)}")
        return None
    ok = True
    for key in entry:
        if key not in spec:
            out.add(section, index, str(key), f"unknown field (known: {list(spec)})")
            ok = False
    values = {}
    for name, (check, required) in spec.items():
        if name not in entry:
            if required:
                out.add(section, index, name, "missing")
                ok = False
            continue
        try:
            values[name] = check(entry[name])
        except FieldError as bad:
            dotted = f"{name}.{bad.field}" if bad.field else name
            out.add(section, index, dotted, bad.message)
            ok = False
    return cls(**values) if ok else None


def _entry_key(section: str, entry: Any) -> tuple:
    key = (entry.source.paper, entry.source.table, entry.source.row)
    return (*key, entry.k, entry.dataset) if section == "few_shot" else key


def load_reported(path: str | Path = DEFAULT_PATH, *, strict: bool = False) -> ReportedTables:
    """Load and check ``results/reported.yaml`` (or ``path``).

    ``strict=False``: malformed entries are left out and listed in ``.problems`` (and warned
    about); every other entry loads. ``strict=True``: :class:`ReportedError` on the first
    problem. See the module docstring for what is checked.
    """
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SafeLoader)
    except (OSError, yaml.YAMLError) as err:
        raise ReportedError(f"{path}: cannot read: {err}") from err
    if not isinstance(data, dict):
        raise ReportedError(f"{path}: expected a mapping at the top level, got {_show(data)}")

    out = _Collector(path, strict)
    top = "(top level)"
    for key in data:
        if key not in _TOP_LEVEL:
            out.add(top, None, str(key), f"unknown key (known: {list(_TOP_LEVEL)})")
    if data.get("schema_version") != SCHEMA_VERSION:
        version = _show(data.get("schema_version"))
        out.add(top, None, "schema_version", f"expected {SCHEMA_VERSION}, got {version}")

    loaded: dict[str, list] = {}
    for section, (cls, spec) in _SECTIONS.items():
        entries = data.get(section)
        if not isinstance(entries, list):
            out.add(section, None, None, f"expected a list, got {_show(entries)}")
            entries = []
        built = [_build(cls, spec, e, section, i, out) for i, e in enumerate(entries)]
        loaded[section] = [(i, b) for i, b in enumerate(built) if b is not None]

    # the declared tables: unique (paper, table)
    declared: dict[tuple[str, str], tuple[int, TableInfo]] = {}
    for i, info in loaded["tables"]:
        key = (info.paper, info.table)
        if key in declared:
            out.add("tables", i, "table", f"{info.paper} {info.table} declared twice")
            continue
        declared[key] = (i, info)

    good: dict[str, list] = {}
    for section, kinds in _SECTION_KINDS.items():
        seen: set[tuple] = set()
        kept = []
        for i, entry in loaded[section]:
            key = (entry.source.paper, entry.source.table)
            info = declared.get(key)
            if info is None:
                out.add(section, i, "source.table", f"{key[0]} {key[1]} is not in `tables`")
                continue
            if info[1].kind not in kinds:
                out.add(
                    section,
                    i,
                    "source.table",
                    f"{key[0]} {key[1]} is a {info[1].kind!r} table, not one of {list(kinds)}",
                )
                continue
            entry_key = _entry_key(section, entry)
            if entry_key in seen:
                out.add(section, i, "source", f"duplicate entry {entry_key}")
                continue
            seen.add(entry_key)
            kept.append(entry)
        good[section] = kept

    counts = Counter(
        (e.source.paper, e.source.table) for section in _SECTION_KINDS for e in good[section]
    )
    for key, (i, info) in declared.items():
        if counts[key] != info.n_rows:
            out.add("tables", i, "n_rows", f"declares {info.n_rows} entries, {counts[key]} loaded")

    for problem in out.problems:
        warnings.warn(str(problem), ReportedWarning, stacklevel=2)
    return ReportedTables(
        path=path,
        tables=[info for _, info in declared.values()],
        rows=good["rows"],
        timings=good["timings"],
        few_shot=good["few_shot"],
        problems=out.problems,
    )
