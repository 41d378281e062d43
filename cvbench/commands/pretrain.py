"""``cvbench pretrain --method M``: build the synthetic-pretrained tiny CLIP of a CLIP method.

TCAR-Net and the temporal-prompt CLIP freeze CLIP and classify against its text embeddings
of the class names, so their ``tiny`` presets need a *pretrained* tiny CLIP: with random
frozen towers nothing can be learned. No such weights exist to download, so the suite makes
them: a contrastive image-text pretraining of the method's tiny CLIP architecture on
motion-vector images of a synthetic corpus generated with another seed than the benchmark's
(never the benchmark videos), captioned with the method's prompt of the class (and, for the
temporal-prompt CLIP, its Chinese label). The recipe and what it means for the numbers are in
``cvbench/pretrain.py``.

The weights are cached under ``$CVBENCH_CACHE/weights/synthetic-<method>-<hash>/``
(``open_clip.pt``, ``chinese_clip/``, ``manifest.json``); ``cvbench run`` builds them on first
use when a pretrained option is ``synthetic`` (as ``configs/<method>/synthetic.yaml`` sets),
so this command only does that work ahead of time and prints where the files are.
"""

from __future__ import annotations

import argparse
import sys

from cvbench.commands import print_json

_PROG = "cvbench pretrain"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pretrain",
        help="build the synthetic-pretrained tiny CLIP that tcar/tpclip's tiny presets load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--method",
        required=True,
        help="tcar, tpclip, or 'all' (the methods with a synthetic CLIP recipe)",
    )
    p.add_argument(
        "--preset", default="tiny", help="config preset whose CLIP architecture is pretrained"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method config override (repeatable), as for `cvbench run`",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the manifests as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import methods  # noqa: F401  (registers the methods)
    from cvbench.commands import parse_set
    from cvbench.pretrain import RECIPES, manifest, synthetic_weights
    from methods.registry import get_method

    names = sorted(RECIPES) if args.method == "all" else [args.method]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        print(
            f"{_PROG}: no synthetic CLIP recipe for {unknown[0]!r}; known: {', '.join(sorted(RECIPES))}",
            file=sys.stderr,
        )
        return 2
    out = {}
    for name in names:
        config = get_method(name).make_config(args.preset, parse_set(args.set), "--set")
        made = synthetic_weights(name, config, progress=not args.no_progress)
        info = manifest(made)
        out[name] = {"paths": made, **info}
        if not args.json:
            metrics = ", ".join(f"{k} {v}" for k, v in info["final_metrics"].items())
            print(f"{name}: {', '.join(f'{k}={v}' for k, v in made.items())}")
            print(f"  corpus {info['corpus']}; last epoch: {metrics}; built in {info['train_s']} s")
    if args.json:
        print_json(out if args.method == "all" else out[names[0]], ensure_ascii=False)
    return 0
