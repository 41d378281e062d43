"""``cvbench bench gpu``: what each method costs a GPU (``make gpu-check``).

Per method, at the paper preset on a GPU (the tiny preset on the CPU, where the same
script runs end to end as a check of itself):

  training   a few optimiser steps with Lightning's Trainer, bf16-mixed on a GPU, at two
             small batches and at the device batch (the largest that the fitted memory
             model puts on this GPU, capped at the paper's global batch): step time,
             videos/s, peak memory
  memory     peak memory = fixed + per video x batch, and the largest batch per GPU
             memory class (24, 40, 80, 141 GB) at 85 % of the card
  inference  pre-processing / inference / full pipeline in ms per video over the paper's
             test views (float32, the papers' timing protocol; a timing record), and the
             inference under bf16 autocast
  loader     videos/s of the real training DataLoader with 1..cores workers on a
             340x256 synthetic dataset, and the workers needed to feed the training rate

Inputs are real training samples of each method's sampling and augmentation, read from
one encoded clip (the loader benchmark's 340x256 bikes clip unless --video is given) and
tiled to the batch; models have random weights (cost does not depend on weight values).
With --save: one record per method in OUT/gpu-<method>-<preset>-<device>.json, the loader
record in OUT/loader-<preset>-<device>.json, the timing records in
RUNS/timing-<method>-<preset>-<device>.json (read by `cvbench table`). --budget stops
starting new work after that many seconds; what was skipped is listed in the records.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from cvbench.commands import print_error
from cvbench.commands.loader_bench import parse_workers

_PROG = "cvbench bench gpu"
PRECISIONS = ("bf16-mixed", "16-mixed", "32-true", "bf16-true")


def add_parser(kinds: argparse._SubParsersAction) -> None:
    """Add ``gpu`` to the ``bench`` group's subcommands."""
    p = kinds.add_parser(
        "gpu",
        help="per method on a GPU: training step, memory, device batch, inference, loader workers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--method",
        default="all",
        help="registered method name, a comma-separated list, or 'all' (default)",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="cuda (cuda:N), cpu, or auto (default: cuda when available, else cpu)",
    )
    p.add_argument(
        "--preset",
        default=None,
        help="config preset the models are built at (default: paper on a GPU, tiny on the CPU)",
    )
    p.add_argument(
        "--stages",
        default="train,inference,loader",
        help="comma-separated stages to run: train, inference, loader (default: all three)",
    )
    p.add_argument(
        "--precision",
        default=None,
        help="training precision on a GPU (default: the method's gpu_precision in "
        "configs/<method>/ucf101.yaml, else bf16-mixed); the CPU trains in 32-true",
    )
    p.add_argument(
        "--train-batches",
        default=None,
        help="the two small training batch sizes the memory model is fitted to, comma-"
        "separated (default: 4,8 on a GPU, 2,4 on the CPU)",
    )
    p.add_argument("--steps", type=int, default=5, help="timed training steps per batch size")
    p.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="untimed training steps, and untimed inference runs, before the timed ones",
    )
    p.add_argument("--repeats", type=int, default=5, help="timed inference runs (median)")
    p.add_argument(
        "--loader-workers",
        default=None,
        help="loader worker counts: a list (1,2,4), a range (1-16), 'max' (1..cores), or "
        "'none' to skip the loader stage (default: 1,2,4,8,12,16 up to the cores on a GPU "
        "machine, 1,2 on the CPU)",
    )
    p.add_argument("--loader-batch", type=int, default=8, help="loader batch size (videos)")
    p.add_argument(
        "--loader-transport",
        choices=("float32", "uint8"),
        default="uint8",
        help="the transport the loader stage's DataLoaders use (default: uint8, a GPU run's; "
        "the transport ceiling and the on-device equality check cover both)",
    )
    p.add_argument(
        "--loader-dataset-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="synthetic dataset option of the loader stage (repeatable; default: 340x256, "
        "96 frames, 4 videos per class)",
    )
    p.add_argument(
        "--video",
        default=None,
        help="read the training and test inputs from this MPEG-4 Part 2 video (default: the "
        "340x256 bikes clip of `cvbench bench loader --synthetic`)",
    )
    p.add_argument("--video-description", default=None, help="what --video is, for the records")
    p.add_argument(
        "--budget",
        type=float,
        default=480.0,
        help="seconds after which no new work starts (default 480)",
    )
    p.add_argument(
        "--loader-reserve",
        type=float,
        default=120.0,
        help="seconds of the budget kept for the loader stage: no method stage starts after "
        "budget - reserve (default 120)",
    )
    p.add_argument("--save", action="store_true", help="write the records (see --out, --runs)")
    p.add_argument(
        "--out", default="results/gpu", help="gpu_check and loader records (default: results/gpu)"
    )
    p.add_argument("--runs", default="results/runs", help="timing records (default: results/runs)")
    p.add_argument("--json", action="store_true", help="print every record as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.set_defaults(func=run)


def _error(message: str) -> int:
    return print_error(_PROG, message)


def parse_counts(text: str, cores: int) -> list[int]:
    """``1,2,4`` / ``1-16`` / ``max`` / ``none`` -> worker counts, 0 (the main process)
    allowed: :func:`cvbench.commands.loader_bench.parse_workers` (ValueError if malformed)."""
    if text.strip().lower() == "none":
        return []
    return parse_workers(text.strip().lower(), cores, minimum=0)


def _log(message: str) -> None:
    print(f"{_PROG}: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    import torch

    import methods  # noqa: F401  (registers every method)
    from cvbench.commands import parse_set, print_json
    from cvbench.gpu_check import LOADER_DATASET, run_gpu_check
    from cvbench.loader_bench import synthetic_video
    from cvbench.method_bench import resolve_device
    from datamodules.errors import VideoError
    from methods.registry import get_method, list_methods

    try:
        device = resolve_device(args.device)
    except (ValueError, RuntimeError) as exc:
        return _error(str(exc))
    gpu = device.type == "cuda"
    names = list_methods() if args.method == "all" else [n.strip() for n in args.method.split(",")]
    unknown = [n for n in names if n not in list_methods()]
    if not names or unknown:
        return _error(f"unknown method(s) {unknown}; known: {', '.join(list_methods())} or all")
    preset = args.preset or ("paper" if gpu else "tiny")
    missing = [n for n in names if preset not in get_method(n).presets]
    if missing:
        return _error(f"preset {preset!r} is not a preset of {', '.join(missing)}")
    cores = os.cpu_count() or 1
    try:
        batches = [int(v) for v in (args.train_batches or ("4,8" if gpu else "2,4")).split(",")]
        default_workers = (
            ",".join(str(n) for n in (1, 2, 4, 8, 12, 16) if n <= cores) if gpu else "1,2"
        )
        workers = parse_counts(args.loader_workers or default_workers, cores)
    except ValueError as exc:
        return _error(f"--train-batches/--loader-workers: {exc}")
    if len(batches) != 2 or min(batches) < 1 or batches[0] == batches[1]:
        return _error("--train-batches takes two different sizes >= 1, e.g. 4,8")
    stages = [v.strip() for v in args.stages.split(",") if v.strip()]
    if not stages or set(stages) - {"train", "inference", "loader"}:
        return _error(f"--stages {args.stages!r}: choose from train, inference, loader")
    if args.precision is not None and args.precision not in PRECISIONS:
        return _error(f"--precision {args.precision!r}: choose from {', '.join(PRECISIONS)}")
    if args.steps < 1 or args.warmup < 0 or args.repeats < 1 or args.loader_batch < 1:
        return _error("--steps, --repeats and --loader-batch must be >= 1, --warmup >= 0")
    try:
        loader_dataset = {
            **LOADER_DATASET,
            **parse_set(args.loader_dataset_option, "--loader-dataset-option"),
        }
    except SystemExit as exc:
        return _error(str(exc))

    with tempfile.TemporaryDirectory(prefix="cvbench-gpu-check-") as tmp:
        try:
            if args.video is None:
                _log("preparing the 340x256 clip ...")
                video, description = synthetic_video(tmp)
            else:
                video, description = Path(args.video), args.video_description
                if not video.is_file():
                    return _error(f"--video {video}: no such file")
            if gpu:
                props = torch.cuda.get_device_properties(device)
                _log(
                    f"{props.name}, {props.total_memory / 1024**3:.1f} GiB, torch "
                    f"{torch.__version__}, {cores} cores"
                )
            result = run_gpu_check(
                names,
                video,
                description=description,
                device=device,
                preset=preset,
                train_batches=batches,
                steps=args.steps,
                warmup=args.warmup,
                repeats=args.repeats,
                loader_workers=workers,
                loader_batch=args.loader_batch,
                loader_dataset=loader_dataset,
                loader_transport=args.loader_transport,
                out_dir=args.out if args.save else None,
                runs_dir=args.runs if args.save else None,
                budget_s=args.budget,
                loader_reserve_s=args.loader_reserve,
                precision=args.precision,
                stages=stages,
                progress=not args.no_progress,
                log=_log,
            )
        except VideoError as exc:
            return _error(str(exc))
    if args.json:
        print_json(result)
    else:
        print(format_summary(result))
    for name, cause in result["failed"].items():
        print(f"{name}: FAILED: {cause}", file=sys.stderr)
    return 1 if result["failed"] else 0


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def format_summary(result: dict[str, Any]) -> str:
    """One line per method, then the loader table."""
    header = (
        "method",
        "preset",
        "prec",
        "params M",
        "batch",
        "step ms",
        "videos/s",
        "peak GiB",
        "GiB/video",
        "max batch 24/40/80/141 GB",
        "infer ms fp32",
        "bf16",
        "views",
        "workers needed",
    )
    rows = [header]
    loader = result.get("loader") or {}
    for r in result["methods"]:
        runs = [t for t in r.get("training", []) if not t.get("oom")]
        top = max(runs, key=lambda t: t["batch_size"]) if runs else {}
        fit = r.get("memory_model") or {}
        maxb = r.get("max_batch") or {}
        need = (loader.get("methods") or {}).get(r["method"], {}).get("workers_needed")
        rows.append(
            (
                r["method"],
                r["preset"],
                r["precision"].split("-")[0],
                f"{r['total_params'] / 1e6:.1f}",
                _fmt(top.get("batch_size"), "d"),
                _fmt(top.get("step_ms")),
                _fmt(top.get("videos_per_s")),
                _fmt(top.get("peak_allocated_gib"), ".2f"),
                _fmt(fit.get("per_video_gib"), ".3f"),
                "/".join(str(maxb[k]) for k in maxb) or "-",
                _fmt(r.get("inference_ms_fp32"), ".2f"),
                _fmt(r.get("inference_ms_bf16"), ".2f"),
                _fmt(r.get("test_views"), "d"),
                "-"
                if need is None
                and "workers_needed" not in (loader.get("methods") or {}).get(r["method"], {})
                else (str(need) if need else "> max"),
            )
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    for spec, sweep in (loader.get("specs") or {}).items():
        users = [m for m, e in loader["methods"].items() if e["spec"] == spec]
        cells = ", ".join(f"{s['workers']}w {s['videos_per_s']:.0f}" for s in sweep)
        lines.append(f"loader ({'/'.join(users)}): videos/s by workers: {cells}")
    ceilings = loader.get("transport_ceiling") or loader.get("transport") or {}
    for spec, rows in ceilings.items():
        users = [m for m, e in loader["methods"].items() if e["spec"] == spec]
        for kind in dict.fromkeys(r.get("transport", "float32") for r in rows):
            mine = [r for r in rows if r.get("transport", "float32") == kind]
            cells = ", ".join(
                f"{r['workers']}w{' pinned' if r['pin_memory'] else ''} {r['videos_per_s']:.0f}"
                for r in mine
            )
            lines.append(
                f"transport ceiling {kind} ({'/'.join(users)}, {mine[0]['sample_mb']:.1f} MB a "
                f"video): videos/s {cells}"
            )
    for spec, equal in (loader.get("transport_equal") or {}).items():
        users = [m for m, e in loader["methods"].items() if e["spec"] == spec]
        verdict = (
            "equal"
            if all(equal.values())
            else "DIFFERENT: " + ", ".join(k for k, ok in equal.items() if not ok)
        )
        lines.append(f"uint8 finished on the device vs float32 ({'/'.join(users)}): {verdict}")
    for note in loader.get("not_measured", []):
        lines.append(f"loader not measured: {note}")
    if loader.get("error"):
        lines.append(f"loader FAILED: {loader['error']}")
    return "\n".join(lines)
