"""The MAC counter against an analytic ViT-B/16 count, its two conventions, and `cvbench flops`."""

from __future__ import annotations

import json

import open_clip
import pytest
import timm
import torch
from torch import nn

from cvbench.cli import main
from cvbench.flops import build_on_meta, count_gmacs, measure, method_cost

IMAGE = torch.Size((1, 3, 224, 224))


# --------------------------------------------------------------------------- analytic ViT-B/16


def vit_macs(
    *,
    size: int = 224,
    patch: int = 16,
    dim: int = 768,
    depth: int = 12,
    mlp: int = 3072,
    head: int = 0,
    attention: bool = True,
) -> int:
    """Multiply-accumulates of a ViT forward on one image (class token, pooled head).

    patch embedding: every patch (3 * p * p values) projected to ``dim``; per block on N
    tokens: qkv (N x D x 3D), scores q k^T (N x N x D over all heads), weights x v (N x N x
    D), output projection (N x D x D), MLP (N x D x 4D, N x 4D x D); the head on the pooled
    token. ``attention=False`` leaves out all of the attention module (qkv, scores, weights
    x v, projection): what a counter blind to nn.MultiheadAttention's fused path sees.
    """
    patches = (size // patch) ** 2
    n = patches + 1  # + class token
    embed = patches * (3 * patch * patch) * dim
    attn = n * dim * 3 * dim + 2 * n * n * dim + n * dim * dim
    block = (attn if attention else 0) + 2 * n * dim * mlp
    return embed + depth * block + dim * head


def vit_params(
    *, patch: int = 16, dim: int = 768, depth: int = 12, mlp: int = 3072, tokens: int = 197
) -> int:
    """Parameters shared by timm's and open_clip's ViT-B/16 (embedding, blocks; no head)."""
    block = 2 * 2 * dim + (3 * dim * dim + 3 * dim) + (dim * dim + dim) + 2 * dim * mlp + mlp + dim
    return 3 * patch * patch * dim + dim + tokens * dim + depth * block  # conv, cls, pos, blocks


def timm_vit(num_classes: int):
    def factory() -> nn.Module:
        return timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=num_classes)

    # conv bias + final LayerNorm + linear head
    params = vit_params() + 768 + 2 * 768 + (768 * num_classes + num_classes)
    return factory, vit_macs(head=num_classes), params


def clip_visual(device_aware: bool = True):
    def factory() -> nn.Module:
        # open_clip moves the model to `device` (default "cpu"): pass the current default
        # so it can stay on meta; without it build_on_meta builds on the CPU, then moves
        kwargs = {"device": torch.get_default_device()} if device_aware else {}
        return open_clip.create_model("ViT-B-16", pretrained=None, **kwargs).visual

    # conv without bias, ln_pre + ln_post, projection 768 -> 512 without bias
    return factory, vit_macs(head=512), vit_params() + 2 * 2 * 768 + 768 * 512


VITS = {
    "timm-1000": lambda: timm_vit(1000),
    "timm-0": lambda: timm_vit(0),
    "open_clip": clip_visual,
}


def close(value: float, reference: float, tol: float = 0.01) -> bool:
    return abs(value / reference - 1.0) < tol


@pytest.mark.parametrize("which", list(VITS))
def test_vit_b16_matches_the_analytic_count_on_meta(which: str) -> None:
    factory, macs, params = VITS[which]()
    built = build_on_meta(factory)
    assert built.device == "meta", built.fallback_reason
    model = built.model.eval()  # eval before the call: the fused path must still be counted
    cost = count_gmacs(model, torch.zeros(IMAGE, device="meta"))
    assert cost["device"] == "meta"
    assert close(cost["gmacs"], macs / 1e9), (cost["gmacs"], macs / 1e9)
    assert close(cost["gmacs"], 17.56, 0.002)  # NOTES.md: 17.56 GMACs at 224
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == params
    assert close(n_params, 86e6, 0.01)
    assert not model.training  # modes restored
    assert torch.backends.mha.get_fastpath_enabled()  # flag restored


def test_eval_convention_is_attention_blind_for_open_clip() -> None:
    factory, macs, _ = clip_visual()
    model = build_on_meta(factory).model.train()
    complete = count_gmacs(model, torch.zeros(IMAGE, device="meta"))
    blind = count_gmacs(model, torch.zeros(IMAGE, device="meta"), mode="eval")
    assert model.training and all(m.training for m in model.modules())
    assert close(blind["gmacs"], vit_macs(head=512, attention=False) / 1e9)
    assert close(blind["gmacs"], 11.27, 0.002)  # NOTES.md: open_clip ViT-B-16 eval/no-grad
    assert close(complete["gmacs"], macs / 1e9)
    # the patch embedding and the MLPs are counted the same way in both conventions
    assert blind["by_child"]["conv1"] == complete["by_child"]["conv1"]


def test_eval_convention_equals_complete_without_multihead_attention() -> None:
    factory, macs, _ = timm_vit(1000)  # timm calls F.scaled_dot_product_attention
    model = build_on_meta(factory).model
    x = torch.zeros(IMAGE, device="meta")
    assert count_gmacs(model, x, mode="eval")["gmacs"] == count_gmacs(model, x)["gmacs"]


class _Attention(nn.Module):
    """Fused-eligible self-attention, sequence-first attention and cross-attention."""

    def __init__(self) -> None:
        super().__init__()
        self.fused = nn.MultiheadAttention(32, 4, batch_first=True)
        self.seq_first = nn.MultiheadAttention(32, 4)  # batch_first=False: never fused
        self.cross = nn.MultiheadAttention(32, 4, batch_first=True)  # q is not k: never fused
        self.mlp = nn.Linear(32, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D)
        y, _ = self.fused(x, x, x)  # need_weights=True, as nn.MultiheadAttention's default
        y = self.seq_first(y.transpose(0, 1), y.transpose(0, 1), y.transpose(0, 1))[0]
        y = y.transpose(0, 1)
        y, _ = self.cross(y, x, x, need_weights=False)
        return self.mlp(y)


def test_meta_emulation_of_the_fused_path_matches_the_cpu() -> None:
    torch.manual_seed(0)
    cpu = _Attention()
    meta = build_on_meta(_Attention).model
    x = torch.randn(2, 10, 32)
    for mode in ("complete", "eval"):
        on_cpu = count_gmacs(cpu, x, mode=mode)
        on_meta = count_gmacs(meta, x.to("meta"), mode=mode)
        assert on_cpu["by_module"] == pytest.approx(on_meta["by_module"]), mode
    eval_ = count_gmacs(cpu, x, mode="eval")["by_module"]
    complete = count_gmacs(cpu, x)["by_module"]
    assert eval_.get("fused", 0.0) == 0.0 < complete["fused"]
    assert eval_["cross"] == complete["cross"] > 0


class _NeedsData(nn.Module):
    """Reads a value in forward: impossible on meta, so counted on the CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * float(x.sum().item() >= 0)


def test_falls_back_to_the_cpu_and_says_why() -> None:
    built = build_on_meta(lambda: nn.Linear(8, 4).to("cpu"))  # as open_clip.create_model does
    assert built.device == "meta" and "built on the CPU, then moved" in built.fallback_reason
    assert built.model.weight.is_meta
    measured = measure(_NeedsData, lambda model, device: torch.zeros(1, 8, device=device))
    assert measured.device == "cpu" and "counting on meta failed" in measured.fallback_reason
    assert measured.counts["complete"]["gmacs"] == 8 * 4 / 1e9


@pytest.mark.slow
def test_vit_b16_on_cpu_matches_meta_and_the_analytic_count() -> None:
    """Counted on the CPU (torch's real fused path in the eval convention), same numbers."""
    factory, macs, params = clip_visual(device_aware=False)
    model = factory().eval()
    complete = count_gmacs(model, torch.zeros(IMAGE))
    blind = count_gmacs(model, torch.zeros(IMAGE), mode="eval")  # torch's own fused path
    assert close(complete["gmacs"], macs / 1e9)
    assert close(blind["gmacs"], vit_macs(head=512, attention=False) / 1e9)
    assert sum(p.numel() for p in model.parameters()) == params
    timm_model = timm_vit(0)[0]().eval()  # F.scaled_dot_product_attention's CPU kernel
    assert close(count_gmacs(timm_model, torch.zeros(IMAGE))["gmacs"], vit_macs() / 1e9)


# --------------------------------------------------------------------------- methods and the CLI


def test_paper_conventions_and_reported_numbers(monkeypatch) -> None:
    from methods.iframe import IFrameBaseline

    conventions = {
        "per_frame": {
            "gmacs": lambda model, counts: counts["complete"]["gmacs"] / 25,
            "explanation": "one I-frame through ResNet-50 (CoViAR counts per frame)",
        }
    }
    reported = {"per_frame": 4.1, "total_params": {"value": 23.5e6, "source": "timm"}, "top1": 0.8}
    monkeypatch.setattr(IFrameBaseline, "paper_cost_conventions", conventions, raising=False)
    monkeypatch.setattr(IFrameBaseline, "reported", reported, raising=False)
    cost = method_cost("iframe", "paper", num_classes=101)
    assert cost["device"] == "meta"
    assert close(cost["per_frame"]["gmacs"], 4.09, 0.01)  # ResNet-50 at 224: 4.1 GMACs
    assert cost["per_frame"]["explanation"].startswith("one I-frame")
    assert cost["positions_per_view"] == 25 and "25 positions" in cost["note"]
    gaps = cost["reported"]["relative_gap"]
    assert set(gaps) == {"per_frame", "total_params"}  # top1 is passed through, not compared
    assert gaps["per_frame"] == pytest.approx(cost["per_frame"]["gmacs"] / 4.1 - 1, abs=1e-4)
    assert "reported" not in method_cost("iframe", "tiny", num_classes=4)  # paper preset only


def test_cli_json_keys(capsys) -> None:
    assert main(["flops", "--method", "iframe", "--preset", "tiny", "--json"]) == 0
    cost = json.loads(capsys.readouterr().out)
    required = {"total_params", "tunable_params", "gmacs_per_view", "views", "method", "preset"}
    assert required <= set(cost)
    assert cost["method"] == "iframe" and cost["preset"] == "tiny" and cost["device"] == "meta"
    assert cost["views"] == 1 and cost["gmacs_per_view"] > 0
    assert 0 < cost["tunable_params"] <= cost["total_params"]


def test_cli_table(capsys) -> None:
    assert main(["flops", "--method", "iframe", "--preset", "tiny"]) == 0
    assert "GMACs per view" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--method", "no_such_method"], "unknown method 'no_such_method'; known: "),
        (["--method", "iframe", "--preset", "no_such_preset"], "no preset 'no_such_preset'"),
    ],
)
def test_cli_unknown_method_or_preset(argv: list[str], message: str, capsys) -> None:
    assert main(["flops", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "iframe" in err


def test_breakdown_opens_up_the_single_network_child() -> None:
    cost = method_cost("iframe", "tiny", num_classes=4)
    assert set(cost["breakdown"]) == {"net.backbone", "net.head"}
    assert sum(cost["breakdown"].values()) == pytest.approx(cost["gmacs_per_view"], abs=1e-3)
