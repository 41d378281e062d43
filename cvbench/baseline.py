"""Reproduced-number baselines: a short seeded benchmark of every method's ``tiny`` preset.

Each registered method is trained briefly on the synthetic dataset (:data:`DEFAULT_SCHEDULE`:
fixed epochs and batches, seed 0, one thread, CPU, outputs in a temporary directory so
``results/runs/`` is untouched) through :func:`cvbench.run.train_and_test`, and measured:

* ``train_loss``: the mean training loss of the last epoch (the method's own objective);
* ``test_loss``: the mean cross-entropy of the trained model's logits over the test views;
* ``top1`` / ``mean_class``: the run record's multi-view test accuracies (fractions);
* ``weight_change``: ``||theta_end - theta_start|| / ||theta_start||`` over the trainable
  parameters: how far training moved them. It catches what the losses of models that
  barely leave chance in a few steps cannot (a learning rate of 0, a frozen part that should
  train, a skipped optimiser step);
* ``tunable_params`` / ``total_params``: the tiny preset's parameter counts.

The committed baselines are ``results/baselines/<method>.json`` (values, tolerances, the
schedule that produced them, code version, date). ``cvbench baseline`` re-runs each file's
schedule and compares; ``cvbench baseline --update`` is the only way they are rewritten.

Tolerances (:data:`TOLERANCES`, written into every file) were chosen from measurement: the
spread between repeated runs, 1 vs 2 threads and oneDNN on/off (different float summation
orders, as on another CPU), against planted regressions (README, "Regression checks").
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BASELINES_DIR = Path(__file__).resolve().parents[1] / "results" / "baselines"
# metrics in the order they are stored and reported
METRICS = (
    "train_loss",
    "test_loss",
    "top1",
    "mean_class",
    "weight_change",
    "tunable_params",
    "total_params",
)


@dataclass(frozen=True)
class Tolerance:
    """How far a new value may move from the baseline."""

    kind: str  # "relative" (fraction of |old|), "absolute" (same unit) or "exact"
    value: float = 0.0  # the allowed |new - old| (relative: as a fraction of |old|)

    def __post_init__(self) -> None:
        if self.kind not in ("relative", "absolute", "exact") or self.value < 0:
            raise ValueError(f"tolerance {self.kind!r} {self.value!r}: unknown kind or < 0")

    def allows(self, old: float, new: float) -> bool:
        if self.kind == "exact":
            return new == old
        limit = self.value * abs(old) if self.kind == "relative" else self.value
        return abs(new - old) <= limit + 1e-12

    def describe(self) -> str:
        if self.kind == "exact":
            return "exact"
        if self.kind == "relative":
            return f"relative {100 * self.value:g} %"
        return f"absolute {self.value:g}"


# chosen from measurement (module docstring; README "Regression checks")
TOLERANCES: dict[str, Tolerance] = {
    "train_loss": Tolerance("relative", 0.03),
    "test_loss": Tolerance("relative", 0.05),
    "top1": Tolerance("absolute", 0.10),
    "mean_class": Tolerance("absolute", 0.10),
    "weight_change": Tolerance("relative", 0.05),
    "tunable_params": Tolerance("exact"),
    "total_params": Tolerance("exact"),
}


# One optimiser for every method: with the methods' own (SGD at 1e-4, AdamW at 5e-6 after
# 5 warm-up epochs) a tiny model barely moves in 40 steps, so a broken training path would
# leave the numbers where they are. At this setting training moves the losses of tcar,
# tpclip and iframe 5-100 % away from a learning rate of 0 (README, "Regression checks").
BENCHMARK_OPTIM: dict[str, Any] = {
    "optimizer": "adamw",
    "lr": 1e-3,
    "schedule": "constant",
    "warmup_epochs": 0.0,
}


@dataclass(frozen=True)
class Schedule:
    """The benchmark's fixed training and measurement settings (stored in every baseline)."""

    epochs: int = 4  # training epochs
    limit_train_batches: int = 10  # batches per epoch (of batch_size videos)
    batch_size: int = 8  # videos per batch
    seed: int = 0  # seed of the run (weights, data order and augmentation)
    threads: int = 1  # torch intra-op threads (1: one summation order, whatever the machine)
    optim: dict[str, Any] = field(default_factory=lambda: dict(BENCHMARK_OPTIM))
    # ^ OptimConfig overrides on each method's own optimiser
    dataset_options: dict[str, Any] = field(default_factory=dict)  # synthetic dataset options

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schedule:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown schedule field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)


DEFAULT_SCHEDULE = Schedule()


# --------------------------------------------------------------------------- measuring


@contextlib.contextmanager
def _quiet_and_threads(threads: int) -> Iterator[None]:
    """One run's torch thread count, Lightning's info logs and warnings silenced."""
    from cvbench.method_bench import torch_threads

    loggers = [logging.getLogger(n) for n in ("lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with torch_threads(threads), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _measure_callback() -> Any:
    """A Lightning callback that keeps each training step's loss and the test views'
    cross-entropy (the logits of every test batch, computed once more in eval mode)."""
    import lightning as L
    import torch.nn.functional as F

    class Measure(L.Callback):
        def __init__(self) -> None:
            self.train_losses: dict[int, list[float]] = {}  # epoch -> step losses
            self.test_loss_sum = 0.0
            self.test_views = 0

        def on_train_start(self, trainer, pl_module) -> None:
            self.start = [p.detach().clone() for p in pl_module.parameters() if p.requires_grad]

        def on_train_end(self, trainer, pl_module) -> None:
            end = [p.detach() for p in pl_module.parameters() if p.requires_grad]
            moved = sum(
                float((b - a).double().pow(2).sum()) for a, b in zip(self.start, end, strict=True)
            )
            size = sum(float(a.double().pow(2).sum()) for a in self.start)
            self.weight_change = (moved / size) ** 0.5 if size else 0.0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if not outputs:  # an empty batch, skipped
                return
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            self.train_losses.setdefault(trainer.current_epoch, []).append(float(loss))

        def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *_) -> None:
            if outputs is None:  # an empty batch, skipped
                return
            loss = F.cross_entropy(outputs, batch["label"], reduction="sum")  # test_step's logits
            self.test_loss_sum += float(loss)
            self.test_views += len(batch["label"])

    return Measure()


def run_benchmark(
    method: str, schedule: Schedule = DEFAULT_SCHEDULE, root: str | Path | None = None
) -> dict[str, Any]:
    """Train and test ``method``'s tiny preset with ``schedule`` on the synthetic dataset
    (generated under ``root``, default ``$CVBENCH_CACHE``); return the measured values
    (:data:`METRICS`) and ``wall_s``."""
    from cvbench.run import RunSpec, train_and_test

    started = time.perf_counter()
    measure = _measure_callback()
    with _quiet_and_threads(schedule.threads), tempfile.TemporaryDirectory() as tmp:
        spec = RunSpec(
            method=method,
            preset="tiny",
            dataset="synthetic",
            root=None if root is None else str(root),
            optim=dict(schedule.optim),
            dataset_options=dict(schedule.dataset_options),
            epochs=schedule.epochs,
            batch_size=schedule.batch_size,
            seed=schedule.seed,
            accelerator="cpu",
            devices=1,
            output=str(Path(tmp) / "records"),
            work_dir=str(Path(tmp) / "work"),
            limit_train_batches=schedule.limit_train_batches,
            progress=False,
        )
        record = train_and_test(spec, callbacks=[measure])
    assert record is not None  # one process: rank 0
    last = measure.train_losses[max(measure.train_losses)]
    metrics = record["metrics"]
    values = {
        "train_loss": round(sum(last) / len(last), 6),
        "test_loss": round(measure.test_loss_sum / max(measure.test_views, 1), 6),
        "top1": round(float(metrics["top1"]), 6),
        "mean_class": round(float(metrics["mean_class"]), 6),
        "weight_change": round(measure.weight_change, 6),
        "tunable_params": int(record["tunable_params"]),
        "total_params": int(record["total_params"]),
    }
    return {**values, "wall_s": round(time.perf_counter() - started, 1)}


# --------------------------------------------------------------------------- baselines


@dataclass(frozen=True)
class Baseline:
    """One committed baseline file."""

    method: str  # registry name
    preset: str  # always "tiny"
    schedule: Schedule  # what was run
    values: dict[str, float | int]  # metric -> value
    tolerances: dict[str, Tolerance]  # metric -> allowed change
    code_version: str  # cvbench.run.code_version() when measured
    created: str  # ISO time, UTC


def baseline_path(method: str, directory: str | Path = BASELINES_DIR) -> Path:
    return Path(directory) / f"{method}.json"


def load_baseline(path: str | Path) -> Baseline:
    """Read one baseline file; a malformed one raises ``ValueError`` naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        return Baseline(
            method=data["method"],
            preset=data["preset"],
            schedule=Schedule.from_dict(data["schedule"]),
            values=dict(data["values"]),
            tolerances={k: Tolerance(**v) for k, v in data["tolerances"].items()},
            code_version=data.get("code_version", ""),
            created=data.get("created", ""),
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{path}: not a baseline file ({type(error).__name__}: {error})"
        ) from error


def baseline_record(method: str, schedule: Schedule, measured: Mapping[str, Any]) -> dict:
    """The JSON written to ``results/baselines/<method>.json``."""
    from cvbench.provenance import hardware, provenance

    return {
        "kind": "baseline",
        "method": method,
        "preset": "tiny",
        "values": {k: measured[k] for k in METRICS},
        "tolerances": {k: dataclasses.asdict(TOLERANCES[k]) for k in METRICS},
        "schedule": dataclasses.asdict(schedule),
        **provenance(),
        "hardware": {**hardware(), "threads": schedule.threads},  # the threads it ran with
        "wall_s": measured.get("wall_s"),
    }


@dataclass(frozen=True)
class Deviation:
    """A metric that moved beyond its tolerance (or could not be compared)."""

    method: str
    metric: str
    old: float | int | None
    new: float | int | None
    tolerance: str  # Tolerance.describe()

    def message(self) -> str:
        if self.new is None:
            return f"{self.method}: {self.metric} was {self.old!r}, not measured now"
        change = ""
        if isinstance(self.old, int | float) and self.old:
            change = f", {100 * (self.new / self.old - 1):+.1f} %"
        return (
            f"{self.method}: {self.metric} changed from {_show(self.old)} to {_show(self.new)}"
            f" (tolerance {self.tolerance}{change})"
        )


def _show(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def compare_values(
    method: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    tolerances: Mapping[str, Tolerance],
) -> list[Deviation]:
    """Every metric of ``old`` against ``new``; the deviations beyond tolerance, in
    :data:`METRICS` order. A metric with no tolerance must match exactly."""
    order = [m for m in METRICS if m in old] + sorted(set(old) - set(METRICS))
    out = []
    for metric in order:
        tolerance = tolerances.get(metric, Tolerance("exact"))
        if metric not in new or new[metric] is None:
            out.append(Deviation(method, metric, old[metric], None, tolerance.describe()))
        elif not tolerance.allows(float(old[metric]), float(new[metric])):
            out.append(Deviation(method, metric, old[metric], new[metric], tolerance.describe()))
    return out


@dataclass
class BaselineReport:
    """The outcome of ``cvbench baseline`` (compare mode)."""

    measured: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> values
    deviations: list[Deviation] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # missing / unreadable baselines

    @property
    def passed(self) -> bool:
        return not self.deviations and not self.problems

    def lines(self) -> list[str]:
        out = [f"FAIL {p}" for p in self.problems]
        for method, values in self.measured.items():
            failed = [d for d in self.deviations if d.method == method]
            shown = ", ".join(f"{k} {_show(values[k])}" for k in METRICS if k in values)
            out.append(f"{'FAIL' if failed else 'PASS'} {method}: {shown} ({values['wall_s']} s)")
            out += [f"     {d.message()}" for d in failed]
        return out


def check_baselines(
    methods: Sequence[str] | None = None,
    directory: str | Path = BASELINES_DIR,
    root: str | Path | None = None,
    progress: bool = True,
) -> BaselineReport:
    """Re-run each baseline's recorded schedule for ``methods`` (default: every registered
    method) and compare. A registered method without a baseline file is a problem."""
    import methods as _methods  # noqa: F401  (registers every method)
    from methods.registry import list_methods

    known = list_methods()
    names = list(methods) if methods is not None else known
    report = BaselineReport()
    for name in names:
        path = baseline_path(name, directory)
        if name not in known:
            report.problems.append(f"{name}: not a registered method ({path})")
            continue
        if not path.exists():
            report.problems.append(
                f"{name}: no baseline {path}; create it with "
                f"`cvbench baseline --update --method {name}`"
            )
            continue
        try:
            baseline = load_baseline(path)
        except ValueError as error:
            report.problems.append(str(error))
            continue
        if progress:
            print(f"benchmark {name} ...", file=sys.stderr, flush=True)
        try:
            measured = run_benchmark(name, baseline.schedule, root)
        except Exception as error:  # noqa: BLE001  (a crash is a regression of this method)
            report.problems.append(f"{name}: the benchmark failed: {type(error).__name__}: {error}")
            continue
        report.measured[name] = measured
        report.deviations += compare_values(name, baseline.values, measured, baseline.tolerances)
    if methods is None:  # files for methods that no longer exist
        for path in sorted(Path(directory).glob("*.json")):
            if path.stem not in known:
                report.problems.append(f"{path}: baseline of unregistered method {path.stem!r}")
    return report


def update_baselines(
    methods: Sequence[str] | None = None,
    directory: str | Path = BASELINES_DIR,
    schedule: Schedule = DEFAULT_SCHEDULE,
    root: str | Path | None = None,
    progress: bool = True,
) -> list[str]:
    """Measure ``methods`` (default: every registered method) with ``schedule`` and rewrite
    their baseline files; return one line per method saying what changed."""
    import methods as _methods  # noqa: F401  (registers every method)
    from cvbench.provenance import write_json_atomic
    from methods.registry import get_method, list_methods

    names = list(methods) if methods is not None else list_methods()
    for name in names:
        get_method(name)  # an unknown name fails before anything runs
    lines = []
    for name in names:
        path = baseline_path(name, directory)
        old = None
        if path.exists():
            with contextlib.suppress(ValueError):
                old = load_baseline(path)
        if progress:
            print(f"benchmark {name} ...", file=sys.stderr, flush=True)
        measured = run_benchmark(name, schedule, root)
        write_json_atomic(path, baseline_record(name, schedule, measured))
        lines.append(_changes(name, old, measured, schedule, path))
    return lines


def _changes(
    name: str, old: Baseline | None, measured: Mapping[str, Any], schedule: Schedule, path: Path
) -> str:
    if old is None:
        shown = ", ".join(f"{k} {_show(measured[k])}" for k in METRICS)
        return f"{name}: new baseline {path}: {shown}"
    parts = []
    if _as_json(old.schedule) != _as_json(schedule):
        parts.append("schedule changed")
    for k in METRICS:
        before, after = old.values.get(k), measured[k]
        if before != after:
            parts.append(f"{k} {_show(before)} -> {_show(after)}")
    return f"{name}: {'; '.join(parts) if parts else 'unchanged'} ({path})"


def _as_json(schedule: Schedule) -> Any:
    """The schedule as its file holds it (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(schedule)))
