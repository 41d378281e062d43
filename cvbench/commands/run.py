"""``cvbench run --method M --dataset D``: train and test one method (or ``--method all``),
write one run record each.

Settings come in layers, each overriding the one before:

1. the method's defaults: preset ``tiny`` on the synthetic dataset and ``paper`` on the
   others, the optimiser and epochs of the method's paper (``default_optim``), batch 8;
2. ``configs/<method>/<dataset>.yaml`` when it exists (``--config-dir`` moves the tree);
3. ``--config FILE.yaml``, in the same format;
4. the flags: ``--preset``, ``--epochs``, ``--lr``, ``--device-batch`` (or its older name
   ``--batch-size``), ``--global-batch``, ``--test-batch-size``, ``--set key=value``
   (method config fields; YAML values, dotted keys for nested fields),
   ``--dataset-option key=value``.

A config file is a YAML mapping with the keys ``preset``, ``config`` (method config
fields), ``optim`` (``methods.base.OptimConfig`` fields: optimizer, lr, weight_decay,
momentum, betas, schedule, warmup_epochs, milestones, gamma), ``epochs``,
``global_batch``, ``device_batch`` (or ``batch_size``), ``test_batch_size``,
``gpu_precision`` and ``dataset_options``; an unknown key or a wrong type is an error
naming the key and the file. The record lists the files applied (``config_files``).

Batch. The configs state the paper's global batch (``global_batch``: samples per optimiser
step, all devices together) and the learning rate set for it. ``device_batch`` is the most
that fits on one device, a number or one per memory class (``{cpu: 8, gpu_80gb: 48,
gpu_141gb: 96}``; the GPU's memory is measured, or ``--gpu-memory-gb``); the run takes the
largest device batch up to it that divides the global batch and Lightning's gradient
accumulation makes up the rest: global = device batch x devices x nodes x accumulation.
``--device-batch`` is taken as given; a global batch it cannot meet exactly is refused
with the nearest options. ``--global-batch`` changes the global batch; the learning rate
follows the linear rule only with ``--scale-lr``.

Machine defaults, recorded in the run record with the batch split: on a GPU accelerator
precision ``bf16-mixed`` (``gpu_precision`` in a method's config when its numerics need
another, with the reason), ``min(8, cores per device)`` DataLoader workers with pinned
memory, the ``uint8`` transport (I-frames, RGB frames and residuals leave the workers as
uint8 and are normalised on the GPU, the same float32 values as the ``float32``
transport's, a quarter of the bytes; the record's ``transport`` says which, the run id
does not change) and torch threads = cores / local processes; on the CPU 32-bit, no
workers, the float32 transport and torch's own thread count in one process (cores /
processes under DDP), so CPU runs keep their numbers. ``--precision``, ``--workers``,
``--transport`` and ``--threads`` override them.
``--print-config`` prints all of it and exits, without data or training (it needs no GPU
and no dataset). Logs: CSV and TensorBoard (``--logger``), the loss and learning rates
every step, ``train/videos_per_s`` every epoch.

``--method all`` runs every registered method in turn, each with its own config files
(the flags apply to every method); a failure is reported and the next method runs; the
exit status is 1 if any failed.
``--shots K`` trains on K videos per class (drawn with ``--shot-seed``; the run id gets
``-kK``) and tests on the whole test split, the few-shot protocol of the temporal-prompt
CLIP paper (Table 7: K = 2, 4, 8, 16).

Lightning's Trainer does the work (``runs/<run id>/checkpoints/last.ckpt``, CSV logs
under ``runs/<run id>/logs/version_N`` and TensorBoard logs under
``runs/<run id>/tensorboard/version_N``, one per attempt, a progress bar); ``--devices``,
``--num-nodes`` and ``--strategy`` go to Lightning unchanged, so the same command scales
out with DDP. The record lands in ``results/runs/<run id>-<UTC time>.json`` (a new file for every
run: records are never replaced), the per-video test scores beside it
(``<record>.scores.csv.gz``). The run id hashes everything that changes the numbers
(``cvbench.identity``: settings, dataset root and a fingerprint of its lists, limits,
weight files, precision, devices, batch split). ``--resume`` continues
an interrupted run from its last checkpoint (written at every epoch end; a partial epoch
is trained again; a checkpoint of another identity is refused, naming the fields) and ends with the same weights and numbers as an uninterrupted run:
data order, augmentation and dropout are functions of (seed, epoch, step), bit for bit
on the CPU (GPU kernels that are not deterministic differ in the last bits either way).
``cvbench test --checkpoint`` evaluates a checkpoint again.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cvbench import runsettings as rs
from cvbench.commands import (
    add_split_argument,
    batch_limit,
    check_rate,
    check_split_flag,
    json_stdout,
    print_error,
    print_json,
)
from cvbench.commands import parse_set as _parse_set
from cvbench.report.records import RUNS_DIR
from datamodules.datasets import list_datasets
from datamodules.errors import CvbenchError

if TYPE_CHECKING:
    from cvbench.run import RunSpec

# cvbench.run and cvbench.configs import Lightning and the methods (seconds): the functions
# that resolve and train import them, so that `cvbench run --help` starts at once.

ALL = "all"  # --method value that runs every registered method


def add_device_options(p: argparse.ArgumentParser, num_nodes: bool) -> None:
    """Lightning's device flags, the cache directory and the record folder (run and test)."""
    p.add_argument("--accelerator", default="auto", help="Lightning accelerator: cpu, gpu, auto")
    p.add_argument("--devices", default="auto", help="Lightning devices: a count, a list, or auto")
    if num_nodes:
        p.add_argument(
            "--num-nodes", type=int, default=1, help="Lightning num_nodes (multi-node DDP)"
        )
    p.add_argument(
        "--strategy", default="auto", help="Lightning strategy: auto, ddp, ddp_spawn, ..."
    )
    p.add_argument(
        "--precision",
        default=None,
        help="Lightning precision, e.g. 32-true, bf16-mixed (default: bf16-mixed on a GPU unless "
        "the method's config says gpu_precision, 32-true on the CPU)",
    )
    p.add_argument(
        "--cache-dir", default=None, help="compressed-video cache directory (default: none)"
    )
    p.add_argument("--output", default=str(RUNS_DIR), help="where the run record is written")


def add_transport_option(p: argparse.ArgumentParser) -> None:
    """``--transport`` (run and test)."""
    p.add_argument(
        "--transport",
        choices=rs.TRANSPORTS,
        default=None,
        help="how loader batches leave the workers: float32 (finished there) or uint8 (I-frames, "
        "RGB and residuals as uint8, normalised on the device after the transfer: the same "
        "numbers, a quarter of the bytes); default: uint8 on a GPU, float32 on the CPU",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="train and test one method (or all) on one dataset split, write run records",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--method",
        required=True,
        help=f"registered method name (see `cvbench flops --method all`), or {ALL!r} for "
        "every registered method in turn",
    )
    p.add_argument(
        "--preset",
        default=None,
        help="config preset: tiny (CPU-sized), paper (the paper's configuration), "
        "paper_<row> (another row of the paper's tables: tcar paper_l, meaci paper_3clip), "
        "paper_<reading> (another reading of the paper, e.g. meaci paper_eca; README "
        "'Readings') and its CPU-sized tiny_<reading> (default: the config files', else "
        "tiny on synthetic and paper elsewhere; an unknown name lists the method's presets)",
    )
    p.add_argument("--dataset", default="synthetic", choices=list_datasets(), help="dataset name")
    p.add_argument("--root", default=None, help="dataset root (see README 'Real datasets')")
    add_split_argument(p)
    p.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="YAML run settings layered over configs/<method>/<dataset>.yaml (keys: preset, "
        "config, optim, epochs, batch_size, test_batch_size, dataset_options)",
    )
    p.add_argument(
        "--config-dir",
        default=None,
        help="the tree of <method>/<dataset>.yaml default settings (default: the repository's "
        "configs/)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one method config field (repeatable), e.g. --set pretrained=/w/clip.pt",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="base learning rate (default: the config files', else the paper's)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs, also the schedule's length (default: the config files', else "
        "the paper's)",
    )
    p.add_argument(
        "--device-batch",
        "--batch-size",
        dest="batch_size",
        type=int,
        default=None,
        metavar="N",
        help="training samples per forward pass per device, taken as given (--batch-size is "
        "its older name); default: the largest that fits the config's device_batch for this "
        "GPU's memory class and divides the global batch, else 8",
    )
    p.add_argument(
        "--global-batch",
        type=int,
        default=None,
        metavar="N",
        help="samples per optimiser step over all devices and nodes = device batch x devices x "
        "nodes x gradient accumulation (default: the config's global_batch, the paper's; "
        "without one, device batch x devices x nodes); one that cannot be met exactly is "
        "refused with the nearest options",
    )
    p.add_argument(
        "--scale-lr",
        action="store_true",
        help="scale the learning rate linearly with the global batch: lr x global batch / the "
        "config's global_batch (default: the lr stays as configured)",
    )
    p.add_argument(
        "--test-batch-size",
        type=int,
        default=None,
        help="test views per batch per device (default: the config files', else the batch size)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="DataLoader worker processes per device (default: min(8, cores per device) on a "
        "GPU, with pinned memory; 0 on the CPU)",
    )
    add_transport_option(p)
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads per process (default: cores / processes on this node; "
        "torch's own count for a single CPU process)",
    )
    p.add_argument(
        "--gpu-memory-gb",
        type=float,
        default=None,
        metavar="GB",
        help="memory per GPU that picks the config's device_batch class (default: measured; "
        f"{rs.ASSUMED_GPU_MEMORY_GB:.0f} when no GPU is visible, as for --print-config)",
    )
    p.add_argument(
        "--logger",
        default=None,
        metavar="{csv,tensorboard,both}",
        help="training logs: csv (runs/<run id>/logs), tensorboard (runs/<run id>/tensorboard) "
        "or both (default: both when tensorboard is installed, else csv)",
    )
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved settings (batch split, precision, workers, threads, lr, "
        "epochs, logger) and exit without loading data or training",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the initial weights, the training order, augmentation and dropout",
    )
    p.add_argument(
        "--shots",
        type=int,
        default=None,
        metavar="K",
        help="train on K videos per class (few-shot; the paper uses 2, 4, 8, 16), test on the "
        "whole test split (default: the whole training split)",
    )
    p.add_argument(
        "--shot-seed",
        type=int,
        default=None,
        help="seed of the K-shot draw (default: --seed)",
    )
    add_device_options(p, num_nodes=True)
    p.add_argument(
        "--work-dir", default="runs", help="checkpoints and CSV logs, one folder per run"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the run's last checkpoint if there is one (same final numbers "
        "as an uninterrupted run)",
    )
    p.add_argument(
        "--init-from",
        default=None,
        metavar="RUN_ID|RECORD|CHECKPOINT",
        help="start from another run's weights (pretrain, then fine-tune): a run id (its "
        "newest record in --output), a run record or a checkpoint; the classifier head is "
        "re-created when the classes differ; the parent is in the record and the run id",
    )
    p.add_argument(
        "--limit-train-batches",
        type=batch_limit,
        default=1.0,
        help=LIMIT_HELP.format(what="training batches per epoch"),
    )
    p.add_argument(
        "--limit-test-batches",
        type=batch_limit,
        default=1.0,
        help=LIMIT_HELP.format(what="test batches"),
    )
    p.add_argument(
        "--dataset-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset builder option (repeatable), e.g. videos_per_class=20",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--json",
        action="store_true",
        help="print the run record as JSON (a list of records with --method all)",
    )
    p.set_defaults(func=run)


LIMIT_HELP = (
    "{what}, as Lightning reads it: a count written without a decimal point (2: two "
    "batches) or a fraction in (0, 1] (0.25; default 1.0: all)"
)


def parse_devices(value: str) -> str | int:
    return int(value) if str(value).isdigit() else value


@dataclass(frozen=True)
class RunSettings:
    """One method's resolved run: the RunSpec and what it was resolved from (printed by
    ``--print-config`` and at the start of a run)."""

    spec: RunSpec
    machine: rs.Machine
    plan: rs.BatchPlan
    lr: float  # the base learning rate the run trains with
    file_global_batch: int | None  # the config files' global batch (the paper's)
    device_batch: int | dict[str, int]  # the layers' device_batch setting
    notes: tuple[str, ...]  # what a user should know (lr kept or scaled, memory class)


def _check_flags(args: argparse.Namespace) -> None:
    """One-line errors for the new flags' impossible values (exit 2, no traceback)."""
    rs.check_count(args.batch_size, "--device-batch")
    rs.check_count(args.global_batch, "--global-batch")
    rs.check_count(args.test_batch_size, "--test-batch-size")
    rs.check_count(args.workers, "--workers", minimum=0)
    rs.check_count(args.threads, "--threads")
    rs.check_count(args.num_nodes, "--num-nodes")
    rs.check_count(args.epochs, "--epochs")
    rs.check_count(args.shots, "--shots")
    check_rate(args.lr, "--lr")
    if args.gpu_memory_gb is not None and args.gpu_memory_gb <= 0:
        raise rs.SettingsError(f"--gpu-memory-gb {args.gpu_memory_gb:g}: expected a positive size")
    if args.logger is not None:
        rs.check_logger(args.logger)


def resolve_settings(args: argparse.Namespace, method: str) -> RunSettings:
    """The layered settings of ``method`` (config files, then flags) on this machine (or
    the one ``--accelerator``, ``--devices``, ``--num-nodes``, ``--gpu-memory-gb`` describe).
    Raises :class:`~cvbench.runsettings.SettingsError` for settings that cannot be met."""
    from cvbench.configs import CONFIGS_DIR, RunLayer, resolve
    from cvbench.run import RunSpec
    from methods.config import apply_overrides
    from methods.registry import get_method

    _check_flags(args)
    flags = RunLayer(
        preset=args.preset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        test_batch_size=args.test_batch_size,
        global_batch=args.global_batch,
        config=_parse_set(args.set),
        optim={"lr": args.lr} if args.lr is not None else {},
        dataset_options=_parse_set(args.dataset_option, "--dataset-option"),
    )
    config_dir = CONFIGS_DIR if args.config_dir is None else args.config_dir
    settings = resolve(method, args.dataset, args.config, flags, config_dir, shots=args.shots)
    machine = rs.detect_machine(args.accelerator, args.devices, args.num_nodes, args.gpu_memory_gb)
    plan = rs.plan_batch(
        machine, settings.device_batch, settings.global_batch, exact=settings.device_batch_exact
    )
    optim = dict(settings.optim)
    lr = apply_overrides(get_method(method).module.default_optim(), optim, "--optim").lr
    notes = []
    reference = settings.file_global_batch
    if args.scale_lr:
        if reference is None:
            raise rs.SettingsError(
                f"{method}: --scale-lr: the config files state no global_batch to scale from"
            )
        if plan.global_batch != reference:
            scaled = rs.scaled_lr(lr, plan.global_batch, reference)
            notes.append(f"lr {scaled:g} = {lr:g} x {plan.global_batch} / {reference} (--scale-lr)")
            lr = optim["lr"] = scaled
    elif reference is not None and plan.global_batch != reference:
        notes.append(
            f"lr {lr:g} is the config's for global batch {reference}; --scale-lr scales it"
        )
    threads = args.threads if args.threads is not None else rs.default_threads(machine)
    spec = RunSpec(
        method=method,
        preset=settings.preset,
        dataset=args.dataset,
        root=args.root,
        split=args.split,
        overrides=settings.config,
        optim=optim,
        dataset_options=settings.dataset_options,
        epochs=settings.epochs,
        batch_size=plan.device_batch,
        accumulate_grad_batches=plan.accumulation,
        test_batch_size=settings.test_batch_size,
        num_workers=args.workers if args.workers is not None else rs.default_workers(machine),
        pin_memory=machine.gpu,
        transport=args.transport or rs.default_transport(machine),
        threads=threads,
        logger=args.logger or rs.default_logger(),
        memory_class=plan.memory_class,
        seed=args.seed,
        shots=args.shots,
        shot_seed=args.shot_seed,
        config_files=settings.files,
        accelerator=args.accelerator,
        devices=parse_devices(args.devices),
        num_nodes=args.num_nodes,
        strategy=args.strategy,
        precision=args.precision or rs.default_precision(machine, settings.gpu_precision),
        cache_dir=args.cache_dir,
        output=args.output,
        work_dir=args.work_dir,
        resume=args.resume,
        init_from=getattr(args, "init_from", None),
        limit_train_batches=args.limit_train_batches,
        limit_test_batches=args.limit_test_batches,
        progress=not args.no_progress,
    )
    return RunSettings(spec, machine, plan, lr, reference, settings.device_batch, tuple(notes))


def build_spec(args: argparse.Namespace, method: str) -> RunSpec:
    """The layered settings of ``method`` (config files, then flags) as a RunSpec."""
    return resolve_settings(args, method).spec


def _batch_source(settings: RunSettings) -> str:
    plan, spec = settings.plan, settings.spec
    if settings.file_global_batch is None:
        source = "no global_batch in the configs: device batch x devices x nodes"
    elif plan.global_batch == settings.file_global_batch:
        source = "the config's global_batch"
    else:
        source = f"--global-batch; the config's is {settings.file_global_batch}"
    fits = settings.device_batch
    if isinstance(fits, dict):
        entry = plan.memory_class or "?"
        fit = fits.get(entry, "")
        source += f"; device_batch {entry}{': up to ' + str(fit) if fit else ''}"
    if spec.batch_size and plan.memory_class is None and not isinstance(fits, dict):
        source += f"; device_batch {fits}"
    return source


def describe(settings: RunSettings) -> dict[str, Any]:
    """The resolved settings as a flat mapping (``--print-config --json``)."""
    spec, machine, plan = settings.spec, settings.machine, settings.plan
    return {
        "method": spec.method,
        "preset": spec.preset,
        "dataset": spec.dataset,
        "split": spec.split,
        "accelerator": machine.accelerator,
        "devices": plan.devices,
        "num_nodes": plan.num_nodes,
        "gpu_memory_gb": machine.gpu_memory_gb,
        "gpu_memory_source": machine.memory_source or None,
        "memory_class": plan.memory_class,
        "cores": machine.cores,
        "global_batch": plan.global_batch,
        "device_batch": plan.device_batch,
        "accumulation": plan.accumulation,
        "paper_global_batch": settings.file_global_batch,
        "precision": spec.precision,
        "workers": spec.num_workers,
        "pin_memory": spec.pin_memory,
        "transport": spec.transport,
        "threads": spec.threads,
        "lr": settings.lr,
        "epochs": spec.epochs,
        "logger": spec.logger,
        "config_files": list(spec.config_files),
        "notes": list(settings.notes),
    }


def settings_lines(settings: RunSettings) -> list[str]:
    """``--print-config``'s lines for one method."""
    from cvbench.run import datamodule_takes

    spec, machine = settings.spec, settings.machine
    where = f"{machine.accelerator}, {machine.cores} cores"
    if machine.gpu:
        where += f", {machine.gpu_memory_gb:.0f} GB per GPU ({machine.memory_source})"
    threads = spec.threads if spec.threads is not None else "torch's own (one CPU process)"
    workers = f"{spec.num_workers} per device"
    if spec.pin_memory:
        taken = datamodule_takes("pin_memory")
        workers += ", pinned memory" + (
            "" if taken else " (not yet: the datamodule has no pin_memory)"
        )
    rows = [
        ("method", f"{spec.method} (preset {spec.preset})"),
        ("dataset", f"{spec.dataset}, split {spec.split}"),
        ("machine", where),
        ("global batch", f"{settings.plan.describe()[len('global batch ') :]}"),
        ("", f"({_batch_source(settings)})"),
        ("precision", spec.precision),
        ("workers", workers),
        ("transport", spec.transport),
        ("threads", str(threads)),
        ("lr", f"{settings.lr:g}"),
        ("epochs", str(spec.epochs)),
        ("logger", spec.logger),
        ("config files", ", ".join(spec.config_files) or "none"),
        *(("note", note) for note in settings.notes),
    ]
    return [f"{name:<13}{value}".rstrip() for name, value in rows]


def start_line(settings: RunSettings) -> str:
    """What a run says before it starts: the batch split and the machine settings."""
    spec = settings.spec
    threads = spec.threads if spec.threads is not None else "torch's"
    return (
        f"{spec.method}: {settings.plan.describe()}; precision {spec.precision}; "
        f"workers {spec.num_workers}; transport {spec.transport}; threads {threads}; "
        f"logger {spec.logger}" + "".join(f"; {note}" for note in settings.notes)
    )


def train_and_test(spec: RunSpec) -> dict[str, Any] | None:
    """:func:`cvbench.run.train_and_test`, imported when a run starts."""
    from cvbench.run import train_and_test as train

    return train(spec)


def check_dataset(resolved: dict[str, Any]) -> None:
    """List each run's training split once before any method is built: a bad root, split
    or dataset option is its one-line error here, not after the model and the Trainer are
    made, and so is ``--shots K`` above the smallest class
    (:class:`~datamodules.fewshot.FewShotError` naming the class and its count)."""
    from datamodules.datasets import create_dataset
    from datamodules.fewshot import check_shots

    listed: dict[tuple[Any, ...], Any] = {}
    for settings in resolved.values():
        if isinstance(settings, Exception):
            continue
        spec = settings.spec
        key = (spec.dataset, spec.root, spec.split, repr(sorted(spec.dataset_options.items())))
        if key not in listed:
            listed[key] = create_dataset(
                spec.dataset, spec.root, spec.split, "train", **spec.dataset_options
            )
        if spec.shots is not None:
            check_shots(listed[key], spec.shots)


def _train(settings: RunSettings, as_json: bool) -> dict[str, Any] | None:
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    with json_stdout(as_json):
        if rank_zero_only.rank == 0:  # DDP ranks launched by Lightning run this command too
            print(start_line(settings), flush=True)
        return train_and_test(settings.spec)


def _resolve_all(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """Each method's :class:`RunSettings`, or the exception that stopped it; one-line
    errors for settings that cannot be met are raised for all methods before any trains."""
    out: dict[str, Any] = {}
    refused = []
    for method in names:
        try:
            out[method] = resolve_settings(args, method)
        except rs.SettingsError as error:
            refused.append(str(error) if len(names) == 1 else f"{method}: {error}")
        except Exception as error:  # noqa: BLE001  (reported when the method's turn comes)
            if len(names) == 1:
                raise
            out[method] = error
    if refused:
        raise rs.SettingsError("; ".join(dict.fromkeys(refused)))
    return out


def print_record(record: dict[str, Any], output: str) -> None:
    """The one-line summary of a run record, the videos it could not use, and where it
    was written."""
    print(summary_line(record))
    for line in data_problem_lines(record):
        print(line)
    print(f"record: {output}/{record.get('record_file', record['run_id'] + '.json')}")


SHOWN_VIDEOS = 10  # videos named per list in the printed summary (the record has all)


def data_problem_lines(record: dict[str, Any]) -> list[str]:
    """Lines naming the videos a run dropped (unreadable at set-up or in a batch) and the
    damaged ones it used, with their causes, the first :data:`SHOWN_VIDEOS` of each, and
    the batches skipped because none of their samples could be read."""
    data = record.get("data") or {}
    lines = []
    for title, videos in (
        ("videos skipped", record.get("skipped_videos") or []),
        ("damaged videos used", data.get("damaged_videos") or []),
    ):
        if not videos:
            continue
        lines.append(f"{title}: {len(videos)}")
        lines += [f"  {v['file']} ({v['subset']}): {v['cause']}" for v in videos[:SHOWN_VIDEOS]]
        if len(videos) > SHOWN_VIDEOS:
            lines.append(f"  ... and {len(videos) - SHOWN_VIDEOS} more (all in the record)")
    if data.get("empty_batches"):
        lines.append(
            f"empty batches skipped: {data['empty_batches']} (no sample could be read; "
            "counted in the record's data.empty_batches)"
        )
    return lines


def summary_line(record: dict[str, Any]) -> str:
    m = record["metrics"]
    shots = f", {record['shots']}-shot" if record.get("shots") else ""
    train_s = record["timings"].get("train_s")
    how = f"train {train_s:.0f} s" if train_s is not None else "evaluated from a checkpoint"
    return (
        f"{record['method']} ({record['preset']}) on {record['dataset']} split "
        f"{record['split']}{shots}: top-1 {m['top1']:.3f}, top-5 {m['top5']:.3f}, "
        f"mean-class {m['mean_class']:.3f} over {m['test_videos']} videos x "
        f"{m['views_per_video']:.0f} views; {record['tunable_params'] / 1e6:.2f}M tunable / "
        f"{record['total_params'] / 1e6:.2f}M params; {how}"
    )


def run(args: argparse.Namespace) -> int:
    import methods  # noqa: F401  (registers the methods)
    from methods.registry import list_methods

    names = list_methods() if args.method == ALL else [args.method]
    check_split_flag(args.dataset, args.split)  # before any config, machine or file is read
    try:
        resolved = _resolve_all(args, names)
    except rs.SettingsError as error:
        return print_error("cvbench run", error)
    if args.print_config:
        return _print_config(resolved, args.json)
    check_dataset(resolved)
    if args.method != ALL:
        from cvbench.run import RecordWriteError, RunIdentityError

        try:
            record = _train(resolved[args.method], args.json)
        except (RunIdentityError, RecordWriteError) as error:
            return print_error("cvbench run", error)
        if record is None:  # a DDP rank other than 0
            return 0
        if args.json:
            print_json(record)
        else:
            print_record(record, args.output)
        return 0

    records, failed = [], []
    for method in names:
        try:
            if isinstance(resolved[method], Exception):
                raise resolved[method]
            record = _train(resolved[method], args.json)
        except Exception as exc:  # noqa: BLE001  (one method's failure must not stop the rest)
            if getattr(args, "debug", False) or not isinstance(exc, CvbenchError):
                traceback.print_exception(exc, file=sys.stderr)  # a user's mistake needs none
            print(f"{method}: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed.append(method)
            continue
        if record is None:  # a DDP rank other than 0
            continue
        records.append(record)
        if not args.json:
            print_record(record, args.output)
    if args.json:
        print_json(records)
    done = len(names) - len(failed)
    print(
        f"{done} of {len(names)} methods done"
        + (f"; failed: {', '.join(failed)}" if failed else ""),
        file=sys.stderr if args.json else sys.stdout,
    )
    return 1 if failed else 0


def _print_config(resolved: dict[str, Any], as_json: bool) -> int:
    """``--print-config``: every method's settings; a method whose configs fail is an error."""
    for method, settings in resolved.items():
        if isinstance(settings, Exception):
            return print_error("cvbench run", f"{method}: {settings}")
    if as_json:
        shown = [describe(s) for s in resolved.values()]
        print_json(shown[0] if len(shown) == 1 else shown)
        return 0
    print("\n\n".join("\n".join(settings_lines(s)) for s in resolved.values()))
    return 0
