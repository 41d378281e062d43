"""The ``gpu`` table: the GPU check's records (``cvbench bench gpu``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from cvbench.report.format import Block, Footnotes, Table, fixed, signed
from cvbench.report.inputs import Inputs, preset_key
from cvbench.report.records import Record

GPU_INPUTS = "results/gpu/*.json"
GPU_COLUMNS = (
    "Method",
    "Batch (paper = step × accum.)",
    "Step (ms)",
    "Videos/s",
    "Peak GiB: measured / model",
    "GiB/video",
    "Max batch {classes} GB",  # filled with the memory classes' sizes
    "Inference ms fp32 / bf16",
    "Loader videos/s (workers)",
    "Workers needed",
)


def _class_label(name: str) -> str:
    """A memory class's size as its name gives it ("gpu_141gb" -> "141")."""
    match = re.fullmatch(r"gpu_(\d+)gb", name)
    return match[1] if match else name


def device_batch_run(record: Record) -> dict[str, Any] | None:
    """The training run at the record's device batch (not out of memory); None without one."""
    batch = record["device_batch"]
    runs = [r for r in record["training"] if r["batch_size"] == batch and not r.get("oom")]
    marked = [r for r in runs if r.get("device_batch")]
    return (marked or runs or [None])[-1]


def predicted_peak(record: Record, batch: int | None) -> float | None:
    """Peak GiB the record's memory model predicts at ``batch``."""
    fit = record["memory_model"]
    if fit is None or batch is None:
        return None
    return fit["fixed_gib"] + fit["per_video_gib"] * batch


def loader_runs(loader: Record | None, method: str) -> list[dict[str, Any]]:
    """The loader sweep (one run per worker count) of ``method``'s data spec."""
    if loader is None:
        return []
    entry = (loader.get("methods") or {}).get(method)
    if entry is None:
        return []
    return list((loader.get("specs") or {}).get(entry["spec"], []))


def workers_needed_cell(runs: Sequence[dict[str, Any]], rate: float | None) -> str:
    """The fewest workers whose loader videos/s meets the training ``rate``; ``> N`` when no
    measured count (the most is N) does; ``n/a`` without a sweep or a rate."""
    if not runs or rate is None:
        return "n/a"
    meeting = [r["workers"] for r in runs if r["videos_per_s"] >= rate]
    return str(min(meeting)) if meeting else f"> {max(r['workers'] for r in runs)}"


def precision_note(record: Record, shown: dict[tuple, Record]) -> str | None:
    """A note when the record's training precision is not the one the method's config trains
    it in on GPUs (``gpu_precision`` of ``configs/<method>/ucf101.yaml``; none: bf16-mixed)."""
    from cvbench.gpu_check import paper_settings

    method, preset, device, precision = (
        record[k] for k in ("method", "preset", "device", "precision")
    )
    if device.lower() == "cpu":  # the CPU always trains in 32-true
        return None
    _, configured = paper_settings(method)
    config = f"configs/{method}/ucf101.yaml"
    if configured is None:
        configured, where = "bf16-mixed", f"{config} names no gpu_precision, so it trains in"
    else:
        where = f"{config} trains it in"
    if precision == configured:
        return None
    if (method, preset, device, configured) in shown:
        todo = f"its {configured} numbers are in the {configured} block"
    else:
        todo = (
            f"its {configured} numbers are still to be measured (`cvbench bench gpu --method "
            f"{method} --precision {configured}`)"
        )
    return (
        f"`{method}` was measured in {precision}, whereas {where} {configured} on GPUs "
        f"(gpu_precision): {todo}."
    )


def _gpu_row(
    inputs: Inputs, record: Record, loader: Record | None, footnotes: Footnotes
) -> list[str]:
    from cvbench.gpu_check import MEMORY_CLASSES_GIB

    method = record["method"]
    marks = []
    note = precision_note(record, inputs.gpu_checks)
    if note:
        marks.append(footnotes.mark(note))
    for item in record.get("not_measured") or []:
        marks.append(footnotes.mark(f"`{method}` not measured: {item}."))
    batch = record["device_batch"]
    run = device_batch_run(record)
    if batch is None:
        batch_cell = "n/a"
    else:
        batch_cell = str(batch)
        paper, split = record.get("paper_global_batch"), record.get("paper_batch_on_one_device")
        if paper and split:
            batch_cell += f" ({paper} = {split['device_batch']} × {split['accumulation']})"
        elif paper:
            batch_cell += f" ({paper})"
    measured = None if run is None else run.get("peak_allocated_gib")
    model = predicted_peak(record, batch)
    if measured is None and model is None:
        peak = "n/a"
    else:
        peak = f"{fixed(measured, 2)} / {fixed(model, 2)}"
        if measured is not None and model:
            peak += f" ({signed(100.0 * (measured - model) / model, 1)}%)"
    fit = record["memory_model"]
    max_batch = record.get("max_batch") or {}
    views = record.get("test_views")
    inference = f"{fixed(record.get('inference_ms_fp32'), 2)} / "
    inference += fixed(record.get("inference_ms_bf16"), 2)
    if views is not None:
        inference += f" ({views} view{'' if views == 1 else 's'})"
    sweep = loader_runs(loader, method)
    rate = None if run is None else run.get("videos_per_s")
    if rate is None:
        rate = record.get("train_videos_per_s")
    best = max(sweep, key=lambda r: (r["videos_per_s"], -r["workers"]), default=None)
    return [
        method + "".join(f" {m}" for m in marks),
        batch_cell,
        fixed(None if run is None else run.get("step_ms"), 2),
        fixed(None if run is None else run.get("videos_per_s"), 1),
        peak,
        fixed(None if fit is None else fit["per_video_gib"], 3),
        " / ".join(str(max_batch.get(name, "n/a")) for name in MEMORY_CLASSES_GIB),
        inference,
        "n/a" if best is None else f"{fixed(best['videos_per_s'], 1)} ({best['workers']})",
        workers_needed_cell(sweep, rate),
    ]


def _joined_values(values: Iterable[Any]) -> str:
    shown = sorted({str(v) for v in values if v is not None})
    return ", ".join(shown) if shown else "n/a"


def _hardware_note(records: Sequence[Record]) -> str:
    """The GPU, its memory, the GPU and CPU counts and torch, from the records' hardware."""
    hardware = [r.get("hardware") or {} for r in records]
    memory = _joined_values(r.get("device_memory_gib") for r in records)
    return (
        f"GPU: {_joined_values(r['device'] for r in records)}, {memory} GiB (total memory as "
        f"torch reports it); GPUs: {_joined_values(h.get('gpu_count') for h in hardware)}; "
        f"CPU cores: {_joined_values(h.get('cpu_count') for h in hardware)}; torch "
        f"{_joined_values(h.get('torch') for h in hardware)}."
    )


def _loader_note(loader: Record | None, preset: str, device: str, older: int) -> str:
    if loader is None:
        return f"No loader record of preset `{preset}` on {device}: the loader columns are n/a."
    parts = []
    options = loader.get("dataset_options") or {}
    size = options.get("size")
    if isinstance(size, list) and len(size) == 2:
        parts.append(f"{size[1]}x{size[0]} px")
    if options.get("frames") is not None:
        parts.append(f"{options['frames']} frames")
    dataset = f"the `{loader.get('dataset', '?')}` dataset" + (
        f" ({', '.join(parts)})" if parts else ""
    )
    counts = loader.get("workers") or []
    hardware = loader.get("hardware") or {}
    text = (
        f"Loader: {loader.file} (the newest loader record of this preset and GPU"
        + (f"; {older} older not shown" if older else "")
        + f"): {dataset}, batch {loader.get('batch_size', '?')}, pin_memory "
        + ("on" if loader.get("pin_memory") else "off")
        + f", worker counts {', '.join(str(c) for c in counts) or '?'} on "
        + f"{hardware.get('cpu_count', '?')} CPU cores."
    )
    transport = loader.get("transport") or "float32 (recorded before the uint8 transport)"
    text += f" Transport: {transport}."
    equal = loader.get("transport_equal")
    if isinstance(equal, dict) and equal:
        unequal = sorted(
            f"{spec} {modality}"
            for spec, by_modality in equal.items()
            for modality, same in (by_modality or {}).items()
            if same is not True
        )
        text += " uint8 batches finished on the GPU equal the float32 ones bit for bit: " + (
            f"yes, for all {len(equal)} data specs."
            if not unequal
            else f"NO for {', '.join(unequal)} (the GPU default must go back to float32)."
        )
    if loader.get("error"):
        text += f" The loader stage failed: {loader['error']}."
    return text


def gpu_table(inputs: Inputs) -> Table:
    from cvbench.gpu_check import HEADROOM, MEMORY_CLASSES_GIB

    classes = " / ".join(_class_label(name) for name in MEMORY_CLASSES_GIB)
    columns = [c.format(classes=classes) for c in GPU_COLUMNS]
    groups = sorted(
        {(preset, device, precision) for _, preset, device, precision in inputs.gpu_checks},
        key=lambda g: (preset_key(g[0]), g[1], g[2]),
    )
    blocks = []
    for preset, device, precision in groups:
        chosen = sorted(
            (
                record
                for key, record in inputs.gpu_checks.items()
                if key[1:] == (preset, device, precision)
            ),
            key=lambda r: (inputs.method_key(r["method"]), r["method"]),
        )
        loader = inputs.loaders.get((preset, device))
        older = sum(
            1 for r in inputs.gpu.loaders if (r["preset"], r["device"]) == (preset, device)
        ) - (loader is not None)
        footnotes = Footnotes()
        cells, sources = [], []
        for record in chosen:
            cells.append(_gpu_row(inputs, record, loader, footnotes))
            sources.append("; ".join([record.file, *([loader.file] if loader else [])]))
        memory = _joined_values(r.get("device_memory_gib") for r in chosen)
        notes = [_hardware_note(chosen), _loader_note(loader, preset, device, older)]
        blocks.append(
            Block(
                f"{device} ({memory} GiB), {preset} preset, {precision}",
                pd.DataFrame(cells, columns=columns, dtype=object),
                sources,
                notes + footnotes.notes(),
            )
        )
    folder = inputs.gpu_dir.as_posix()
    if not blocks:
        why = "the folder does not exist" if not inputs.gpu.folder_found else "none there"
        frame = pd.DataFrame([], columns=columns, dtype=object)
        blocks.append(
            Block(
                None,
                frame,
                [],
                [f"No GPU check records in {folder} ({why}): `cvbench bench gpu` writes them."],
            )
        )
    headroom = f"{100 * HEADROOM:.0f} %"
    fitted = (
        "; ".join(
            sorted(
                {
                    " and ".join(str(b) for b in sorted({r["batch_size"] for r in runs})[:2])
                    for record in inputs.gpu_checks.values()
                    if (runs := [r for r in record["training"] if not r.get("oom")])
                }
            )
        )
        or "n/a"
    )
    sizes = ", ".join(f"{gib:g}" for gib in MEMORY_CLASSES_GIB.values())
    notes = [
        f"`cvbench bench gpu` records ({folder}/*.json, kind gpu_check; the newest per "
        "method, preset, GPU and training precision by `created`): one block per preset, GPU "
        "and precision, methods in registry order.",
        "Batch: the device batch the training was measured at, the largest the memory model "
        f"fits in {headroom} of this GPU's memory, capped at the paper's global batch; in "
        "brackets the paper's global batch as one GPU makes it up: the batch per optimiser "
        "step × gradient-accumulation steps.",
        "Step (ms), Videos/s: the median optimiser step (forward, loss, backward, optimiser "
        "step; after warm-up steps) of Lightning's Trainer at the device batch, on training "
        "samples made by the data layer (the method's own sampling and augmentation, read from "
        "one encoded clip and tiled to the batch) and resident on the GPU: no data loading in "
        "it (see Loader).",
        "Peak GiB: torch.cuda.max_memory_allocated over the steps at the device batch, "
        "measured / predicted by the memory model (peak = fixed + per video × batch, fitted "
        f"on the peaks at the two smallest batches, {fitted}), and measured - model in % of "
        "the model. GiB/video: the model's slope.",
        f"Max batch: the largest batch the memory model fits in {headroom} of a GPU of "
        f"{sizes} GiB ({classes} GB classes: 24 GB cards, A100 40 GB, 80 GB A100/H100, H200 "
        "as torch reports it); predicted, checked by the measurement at the device batch only.",
        "Inference ms fp32 / bf16: one forward pass over one video's test views (the paper's; "
        "their number in brackets, the batch), eval mode, input on the GPU, in float32 and "
        "under bf16 autocast; the fp32 number is the timing table's row of this GPU.",
        "Loader videos/s (workers): the best videos/s of the real training DataLoader (the "
        "method's data spec: decoding, sampling and augmentation on the CPU workers) over the "
        "worker counts measured, with that count. Workers needed: the fewest workers whose "
        "videos/s meets the training videos/s of the row; > N: none of the counts measured "
        "(up to N) does, so on this machine the loader, not the GPU, sets the training rate.",
    ]
    return Table(
        "gpu",
        "GPU check: training step, memory, device batch, inference and loader per method",
        blocks,
        notes,
        inputs=GPU_INPUTS,
        block_column=True,
    )
