"""Multiply-accumulates of one forward pass, attention included, and the papers' conventions.

Units (NOTES.md, "Counting and reporting"): video papers' "GFLOPs" are GMACs per view.
``torch.utils.flop_counter.FlopCounterMode`` counts 2 FLOPs per MAC, and only matrix
products and convolutions (elementwise ops, norms, softmax are not counted, as in fvcore);
every number here is that count / 2 / 1e9.

Two modes, both with the model in eval mode (inference: no training-only branches, no
BatchNorm batch statistics) under ``torch.no_grad()``:

* ``"complete"`` — attention included. ``nn.MultiheadAttention``'s fused inference path
  (``torch._native_multi_head_attention``, invisible to the counter) is switched off with
  ``torch.backends.mha.set_fastpath_enabled(False)`` for the call, so the projections and
  the attention products run as counted ops; and the CPU kernel of
  ``F.scaled_dot_product_attention`` (``_scaled_dot_product_flash_attention_for_cpu``,
  which torch's counter has no formula for) gets the formula torch uses for the CUDA ones.
  Checked against an analytic ViT-B/16 count (17.56 GMACs) in ``tests/test_flops.py``.
* ``"eval"`` — the attention-blind convention some papers' figures follow: what a counter
  blind to ``nn.MultiheadAttention``'s fused path reports for an eval-mode model under
  ``no_grad`` (open_clip ViT-B-16 visual: 11.27 GMACs instead of 17.56: only the patch
  embedding, the MLPs and the projection are seen). On CPU/CUDA torch's own fast path is
  simply left on. On the meta device torch never takes it (meta is not a supported device),
  so the calls that would take it are emulated: same checks as torch's, output of the
  right shape, nothing counted. ``F.scaled_dot_product_attention`` is counted in both
  modes, so a timm ViT (no ``nn.MultiheadAttention``) counts the same in both.

Models are counted on the meta device (:func:`build_on_meta`, :func:`measure`): shapes
only, no memory, a paper-scale model counted in about a second. A model that cannot be
built there (a factory that moves it to "cpu", as open_clip's does) is built on the CPU
and moved to meta; one that cannot run there (an op without a meta kernel, ``.item()``,
a tensor kept outside parameters and buffers) is built and counted on the CPU. The results
say which device counted and why.

Optional hooks a method class may define (``methods/base.py`` is not changed for them):

* ``paper_cost_conventions``: ``{name: {"gmacs": float | callable(model, counts) -> float,
  "explanation": str}}`` — how the paper's cost figure was counted. ``counts`` is
  ``{"complete": ..., "eval": ...}``, each a :func:`count_gmacs` result for one test view
  at batch size 1; ``model`` is the built method (on meta or CPU). The number is in the
  unit of the paper's figure (say which in the explanation).
* ``reported``: ``{key: number | {"value": number, "source": str}}`` — the paper's numbers
  (parameters as counts, not millions; costs in GMACs). Keys that name a number of
  :func:`method_cost`'s result (or a convention) get a relative gap; others (accuracies)
  are passed through.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from typing import Any, Literal, NamedTuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from datamodules.contract import DataSpec, Modality, Sampling

Mode = Literal["complete", "eval"]
MODES: tuple[str, ...] = ("complete", "eval")
_GIGA = 1e9
_FLOPS_PER_MAC = 2
# channels per modality in the batch contract (datamodules/contract.py ``Batch``)
_CHANNELS = {"iframe": 3, "mv": 2, "residual": 3, "rgb": 3}
# keys of method_cost's result that a convention may not take
_RESERVED = (
    "method",
    "preset",
    "device",
    "fallback_reason",
    "total_params",
    "tunable_params",
    "gmacs_per_view",
    "views",
    "positions_per_view",
    "gmacs_all_views",
    "attention_blind_gmacs_per_view",
    "breakdown",
    "note",
    "reported",
)


# --------------------------------------------------------------------------- formulas


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of ``softmax(q k^T) v`` for (B, H, L, E) inputs: torch's formula for CUDA SDPA."""
    b, h, lq, e = query_shape
    lk, ev = key_shape[-2], value_shape[-1]
    return _FLOPS_PER_MAC * b * h * lq * lk * (e + ev)  # scores (L x S x E) + weights x v


# F.scaled_dot_product_attention's CPU kernel: torch registers no formula for it
_EXTRA_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops}


# --------------------------------------------------------------------------- eval emulation

_MHA_SIGNATURE = inspect.signature(nn.MultiheadAttention.forward)


def _takes_fused_path(mha: nn.MultiheadAttention, args: tuple, kwargs: dict) -> bool:
    """Whether torch would run this call as ``_native_multi_head_attention`` on CPU/CUDA.

    The checks of ``nn.MultiheadAttention.forward`` (torch 2.14) other than the device,
    gradient and tracing ones (the count runs under ``no_grad``).
    """
    bound = _MHA_SIGNATURE.bind(mha, *args, **kwargs)
    bound.apply_defaults()
    a = bound.arguments
    query, key, value = a["query"], a["key"], a["value"]
    masks = (a["attn_mask"], a["key_padding_mask"])
    if any(m is not None and torch.is_floating_point(m) for m in masks):
        return False
    return (
        torch.backends.mha.get_fastpath_enabled()
        and query.dim() == 3
        and query is key
        and key is value
        and mha.in_proj_weight is not None
        and mha.in_proj_bias is not None
        and query.dtype == mha.in_proj_weight.dtype == mha.in_proj_bias.dtype
        and not mha.training
        and mha.num_heads % 2 == 0
        and mha.batch_first
        and mha.bias_k is None
        and mha.bias_v is None
        and not mha.add_zero_attn
        and mha._qkv_same_embed_dim
        and not torch.is_autocast_enabled()
    )


def _uncounted_mha(mha: nn.MultiheadAttention) -> Callable[..., Any]:
    """A forward that, where torch would fuse the call, returns outputs of the fused op's
    shapes without running (so without counting) anything."""
    original = mha.forward

    def forward(*args, **kwargs):
        if not _takes_fused_path(mha, args, kwargs):
            return original(*args, **kwargs)
        bound = _MHA_SIGNATURE.bind(mha, *args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        query = a["query"]  # (B, L, E), batch_first
        b, length, _ = query.shape
        weights = None
        if a["need_weights"]:
            shape = (
                (b, length, length)
                if a["average_attn_weights"]
                else (b, mha.num_heads, length, length)
            )
            weights = query.new_empty(shape)
        return query.new_empty(query.shape), weights

    return forward


@contextmanager
def _mha_fast_path(enabled: bool, emulate: bool, model: nn.Module):
    """Set torch's MHA fast-path flag for the call; on meta, emulate the fused calls."""
    previous = torch.backends.mha.get_fastpath_enabled()
    patched: list[nn.MultiheadAttention] = []
    torch.backends.mha.set_fastpath_enabled(enabled)
    try:
        if enabled and emulate:
            for module in model.modules():
                if isinstance(module, nn.MultiheadAttention) and "forward" not in vars(module):
                    module.forward = _uncounted_mha(module)
                    patched.append(module)
        yield
    finally:
        for module in patched:
            del module.forward
        torch.backends.mha.set_fastpath_enabled(previous)


@contextmanager
def _eval_mode(model: nn.Module):
    """Eval mode for the count; every module's own flag restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


# --------------------------------------------------------------------------- counting


def _device_of(model: nn.Module, inputs: Any) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers(), *_tensors(inputs)):
        return tensor.device
    return torch.device("cpu")


def _tensors(inputs: Any) -> list[torch.Tensor]:
    if isinstance(inputs, torch.Tensor):
        return [inputs]
    if isinstance(inputs, Mapping):
        return [t for v in inputs.values() for t in _tensors(v)]
    if isinstance(inputs, list | tuple):
        return [t for v in inputs for t in _tensors(v)]
    return []


def count_gmacs(model: nn.Module, inputs: Any, *, mode: Mode = "complete") -> dict[str, Any]:
    """GMACs of one ``model(inputs)`` call (``inputs`` a tuple: positional arguments).

    ``mode="complete"`` counts attention; ``mode="eval"`` gives the attention-blind
    convention (see the module docstring). The model's train/eval flags are restored.

    Returns ``{"mode", "device", "gmacs", "by_op": {op: gmacs}, "by_child": {top-level
    child: gmacs}, "by_module": {dotted module path: gmacs}, "notes": [str]}``; ops run
    directly in the root module's ``forward`` appear in ``by_child`` as ``"(root)"``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    device = _device_of(model, inputs)
    notes = []
    if mode == "eval" and device.type == "meta":
        if any(isinstance(m, nn.MultiheadAttention) for m in model.modules()):
            notes.append("nn.MultiheadAttention's fused path emulated on meta")
        if any(isinstance(m, nn.TransformerEncoderLayer) for m in model.modules()):
            notes.append(
                "nn.TransformerEncoderLayer's fused eval path is not emulated on meta: "
                "run on CPU for the exact attention-blind count"
            )
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS)
    with (
        _eval_mode(model),
        _mha_fast_path(mode == "eval", device.type == "meta", model),
        torch.no_grad(),
        counter,
    ):
        model(*args)
    return _summarise(counter.get_flop_counts(), type(model).__name__, mode, device, notes)


def _summarise(
    counts: Mapping[str, Mapping[Any, int]], root: str, mode: str, device: torch.device, notes
) -> dict[str, Any]:
    def gmacs(ops: Mapping[Any, int]) -> float:
        return sum(ops.values()) / _FLOPS_PER_MAC / _GIGA

    total = gmacs(counts.get("Global", {}))
    by_module = {}
    for name, ops in counts.items():
        if name == "Global" or name == root:
            continue
        # ModuleTracker names modules "<RootClass>.child.grandchild"
        by_module[name.removeprefix(f"{root}.")] = gmacs(ops)
    by_child = {k: v for k, v in sorted(by_module.items()) if "." not in k}
    rest = total - sum(by_child.values())
    if rest > 1e-9 * max(total, 1.0):
        by_child["(root)"] = rest
    by_op = {str(op): v / _FLOPS_PER_MAC / _GIGA for op, v in counts.get("Global", {}).items()}
    return {
        "mode": mode,
        "device": device.type,
        "gmacs": total,
        "by_op": dict(sorted(by_op.items())),
        "by_child": by_child,
        "by_module": dict(sorted(by_module.items())),
        "notes": notes,
    }


# --------------------------------------------------------------------------- meta device


class Built(NamedTuple):
    """A model, where it lives, and why it was not simply built on meta (None when it was)."""

    model: nn.Module
    device: str  # "meta", or "cpu" when it could not be moved there
    fallback_reason: str | None


def _on_meta(model: nn.Module) -> bool:
    return all(t.is_meta for t in (*model.parameters(), *model.buffers()))


def build_on_meta(factory: Callable[[], nn.Module]) -> Built:
    """``factory()`` under ``torch.device("meta")``: shapes only, no memory, no init cost.

    When that fails (an op without a meta kernel, ``.item()``, a factory that moves its
    model to "cpu" as open_clip's does), the model is built on the CPU instead and then
    moved to meta (counting is what costs time at paper scale, not building); when it
    cannot be moved, it stays on the CPU. The reason is returned either way.
    """
    try:
        with torch.device("meta"):
            model = factory()
        if _on_meta(model):
            return Built(model, "meta", None)
        reason = "the factory put some tensors off meta; they were moved to meta"
    except (NotImplementedError, RuntimeError) as error:
        reason = f"building on meta failed ({type(error).__name__}: {_first_line(error)}); "
        with torch.device("cpu"):
            model = factory()
        reason += "built on the CPU, then moved to meta"
    try:
        return Built(model.to("meta"), "meta", reason)
    except (NotImplementedError, RuntimeError) as error:
        return Built(model, "cpu", f"{reason}; moving failed: {_first_line(error)}")


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else ""


class Measured(NamedTuple):
    """Counts of one model, per mode, and where they were taken."""

    model: nn.Module
    device: str  # "meta" or "cpu"
    fallback_reason: str | None
    counts: dict[str, dict[str, Any]]  # mode -> count_gmacs result


def measure(
    factory: Callable[[], nn.Module],
    make_inputs: Callable[[nn.Module, torch.device], Any],
    modes: tuple[str, ...] = MODES,
) -> Measured:
    """Build with :func:`build_on_meta`, count every mode in ``modes`` on inputs from
    ``make_inputs(model, device)``; when the forward cannot run on meta, build again on the
    CPU and count there."""
    built = build_on_meta(factory)
    if built.device == "meta":
        try:
            inputs = make_inputs(built.model, torch.device("meta"))
            counts = {m: count_gmacs(built.model, inputs, mode=m) for m in modes}
            return Measured(built.model, "meta", built.fallback_reason, counts)
        except (NotImplementedError, RuntimeError) as error:
            reason = f"counting on meta failed ({type(error).__name__}: {_first_line(error)})"
            reason = f"{built.fallback_reason}; {reason}" if built.fallback_reason else reason
        with torch.device("cpu"):
            built = Built(factory(), "cpu", f"{reason}; built and counted on the CPU")
    inputs = make_inputs(built.model, torch.device("cpu"))
    counts = {m: count_gmacs(built.model, inputs, mode=m) for m in modes}
    return Measured(built.model, "cpu", built.fallback_reason, counts)


# --------------------------------------------------------------------------- methods


def one_view_batch(spec: DataSpec, device: torch.device | str = "cpu", batch_size: int = 1) -> dict:
    """One test view per sample of a method's ``DataSpec``, shaped as the batch contract
    says (``test_num_positions`` replaces ``num_positions``, as in the test sampling)."""
    s = spec.sampling
    positions = s.test_num_positions or s.num_positions
    batch: dict[str, torch.Tensor] = {}
    for m in spec.modalities:
        t = positions
        if s.kind == Sampling.CONSECUTIVE_GOPS and m != Modality.IFRAME:
            t *= s.pframes_per_gop  # Tp = Tr = GOPs x P positions per GOP
        shape = (batch_size, t, _CHANNELS[m.value], spec.size, spec.size)
        batch[m.value] = torch.zeros(shape, device=device)  # (B, T, C, H, W)
    for key in ("label", "video_index", "view"):
        batch[key] = torch.zeros(batch_size, dtype=torch.long, device=device)
    return batch


def _views_note(spec: DataSpec) -> str:
    s = spec.sampling
    note = f"views = {s.test_clips} clip(s) x {s.test_crops} crop(s)"
    if s.test_num_positions and s.test_num_positions != s.num_positions:
        note += (
            f"; a test view holds {s.test_num_positions} positions "
            f"({s.num_positions} in training), gmacs_per_view counts a test view"
        )
    return note


def _round(x: float) -> float:
    return round(float(x), 4)


def method_cost(name: str, preset: str = "paper", *, num_classes: int = 101) -> dict[str, Any]:
    """Parameters and GMACs of registered method ``name`` at ``preset``, one test view at
    batch size 1, plus the paper's counting conventions and reported numbers when the method
    class declares them (``paper_cost_conventions``, ``reported``: module docstring).
    ``reported`` is compared only for the ``paper`` preset. Raises ``KeyError`` for an
    unknown method or preset."""
    import methods  # noqa: F401  (registers every method)
    from methods.registry import create_method, get_method

    entry = get_method(name)
    entry.make_config(preset)  # an unknown preset fails here, before any building

    def factory() -> nn.Module:
        return create_method(name, preset, num_classes=num_classes)

    measured = measure(factory, lambda model, device: one_view_batch(model.data_spec, device))
    model = measured.model
    spec = model.data_spec
    complete = measured.counts["complete"]
    s = spec.sampling
    result: dict[str, Any] = {"method": name, "preset": preset, "device": measured.device}
    if measured.fallback_reason:  # why it was not built, or not counted, on meta
        result["fallback_reason"] = measured.fallback_reason
    result |= model.parameter_counts()
    result |= {
        "gmacs_per_view": _round(complete["gmacs"]),
        "views": s.test_views,
        "positions_per_view": s.test_num_positions or s.num_positions,
        "gmacs_all_views": _round(complete["gmacs"] * s.test_views),
        "attention_blind_gmacs_per_view": _round(measured.counts["eval"]["gmacs"]),
        "breakdown": {k: _round(v) for k, v in _breakdown(complete).items()},
        "note": _views_note(spec),
    }
    result |= _conventions(entry.module, model, measured.counts)
    reported = getattr(entry.module, "reported", None)
    if reported and preset == "paper":
        result["reported"] = _compare(reported, result)
    return result


def _breakdown(counts: Mapping[str, Any]) -> dict[str, float]:
    """GMACs per module at the first level with more than one counted module: a method's
    one top-level child (``net``) is opened up into its parts (``net.backbone``, ...)."""
    parts = dict(counts["by_child"])
    while len(parts) == 1 and (only := next(iter(parts))) != "(root)":
        below = {k: v for k, v in counts["by_module"].items() if k.startswith(f"{only}.")}
        # the shallowest counted modules under `only`: a module called through a method of
        # its parent (clip.encode_image -> clip.visual) is counted, its parent is not
        children = {k: v for k, v in below.items() if not any(k.startswith(f"{a}.") for a in below)}
        if not children:
            break
        rest = parts[only] - sum(children.values())  # ops in `only`'s own forward
        if rest > 1e-9 * max(parts[only], 1.0):
            children[f"{only} (own ops)"] = rest
        parts = dict(sorted(children.items()))
    return parts


def _conventions(cls: type, model: nn.Module, counts: dict) -> dict[str, Any]:
    out = {}
    for key, convention in (getattr(cls, "paper_cost_conventions", None) or {}).items():
        where = f"{cls.__name__}.paper_cost_conventions[{key!r}]"
        if key in _RESERVED:
            raise ValueError(f"{where}: the name is taken by a cost key")
        if not isinstance(convention, Mapping) or set(convention) != {"gmacs", "explanation"}:
            raise ValueError(f"{where} must be a dict with exactly 'gmacs' and 'explanation'")
        gmacs = convention["gmacs"]
        value = gmacs(model, counts) if callable(gmacs) else gmacs
        out[key] = {"gmacs": _round(value), "explanation": str(convention["explanation"])}
    return out


def _compare(reported: Mapping[str, Any], result: Mapping[str, Any]) -> dict[str, Any]:
    """The paper's numbers and ``ours / paper - 1`` for every one we have a number for."""
    values, gaps = {}, {}
    for key, item in reported.items():
        value = item["value"] if isinstance(item, Mapping) else item
        values[key] = item
        ours = result.get(key)
        if isinstance(ours, Mapping):
            ours = ours.get("gmacs")
        if isinstance(ours, int | float) and not isinstance(ours, bool) and value:
            gaps[key] = _round(ours / float(value) - 1.0)
    return {"values": values, "relative_gap": gaps}


def format_cost(cost: Mapping[str, Any]) -> str:
    """A readable block for one :func:`method_cost` result."""
    lines = [
        f"{cost['method']} ({cost['preset']} preset), counted on {cost['device']}",
        f"  parameters       {cost['total_params'] / 1e6:10.2f} M total, "
        f"{cost['tunable_params'] / 1e6:.2f} M tunable",
        f"  GMACs per view   {cost['gmacs_per_view']:10.2f}   (attention included)",
        f"  views            {cost['views']:10d}   ({cost['note']})",
        f"  GMACs all views  {cost['gmacs_all_views']:10.2f}",
        f"  attention-blind  {cost['attention_blind_gmacs_per_view']:10.2f}   GMACs per view "
        "(nn.MultiheadAttention's fused path not counted)",
    ]
    if "fallback_reason" in cost:
        lines.append(f"  device note: {cost['fallback_reason']}")
    lines.append("  per module (GMACs per view):")
    lines += [f"    {k:30s} {v:10.2f}" for k, v in cost["breakdown"].items()]
    for key, value in cost.items():
        if key not in _RESERVED and isinstance(value, Mapping) and "explanation" in value:
            lines.append(f"  paper convention {key}: {value['gmacs']:.2f} — {value['explanation']}")
    if "reported" in cost:
        lines.append("  paper's numbers (relative gap ours/paper - 1):")
        for key, item in cost["reported"]["values"].items():
            gap = cost["reported"]["relative_gap"].get(key)
            shown = f"{gap:+.1%}" if gap is not None and math.isfinite(gap) else "-"
            lines.append(f"    {key:30s} {item!s:>14} {shown:>8}")
    return "\n".join(lines)


def format_table(costs: list[Mapping[str, Any]]) -> str:
    """One row per method: parameters, GMACs per view, views, total."""
    header = (
        f"{'method':10s} {'preset':8s} {'device':6s} {'params M':>9s} {'tunable M':>10s} "
        f"{'GMACs/view':>11s} {'blind':>9s} {'views':>6s} {'GMACs all':>10s}"
    )
    rows = [header, "-" * len(header)]
    for c in costs:
        rows.append(
            f"{c['method']:10s} {c['preset']:8s} {c['device']:6s} "
            f"{c['total_params'] / 1e6:9.2f} {c['tunable_params'] / 1e6:10.2f} "
            f"{c['gmacs_per_view']:11.2f} {c['attention_blind_gmacs_per_view']:9.2f} "
            f"{c['views']:6d} {c['gmacs_all_views']:10.2f}"
        )
    return "\n".join(rows)
