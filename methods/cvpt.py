"""CVPT: Compressed Video Prompt Tuning (Li, Chen, Bao, Huang; NeurIPS 2023).

Frozen: a VideoMAE-style ViT-B (tubelet 2, patch 16, fixed sinusoidal positions, mean
pooling with its final LayerNorm) that reads the I-frames; its patch embedding, 12
transformer blocks and final norm never change. Trained: the MV and residual patch
embeddings that make the conditional prompts, one SCCP block per layer (six 1x1 convs
around a C/alpha bottleneck plus the smoothing weight omega, eq. 3-7) and the linear
classifier. The ``paper`` preset is Table 1's "CVPT (Ours), ViT-B" row (0.5M tunable,
0.6%, 772.2 GFLOPs) with Table 4's 39.2K parameters per SCCP block.

Forward pass (eq. 1-7): I-frames -> frozen tubelet embedding + positions -> ``E_I^0``
(N tokens); MVs and residuals -> learnable tubelet embeddings -> ``P_MV^0``, ``P_R^0``
(N tokens each). At layer l the SCCP block maps ``[P_MV, P_R, E_I]`` to
``[P_MV', P_R', E_I']`` and the frozen block l reads the 3N tokens
``[P_MV', P_R', E_I + E_I']``; its outputs are the next layer's ``[P_MV, P_R, E_I]``
(the "refinement": prompts are rebuilt at every layer). The head mean-pools all 3N
tokens of the last layer (eq. 2).

Counting (tests/test_cvpt.py checks these numbers):

* Tunable parameters. SCCP: 3 x (768x8 + 8) + 3 x (8x768 + 768) + omega = 39,193 = the
  paper's 39.2K; 12 blocks = 470.3K; with a 101-class head (77.7K) 548K, i.e. "0.5M,
  0.6%" of the 86.2M backbone. The MV/residual patch embeddings (2.36M + 3.54M) cannot be
  inside the paper's 0.5M (any 16x16 patch embedding into 768 dims has at least 0.39M
  weights per input channel-frame), so the paper leaves them out. Both numbers are
  reported: ``tunable_params`` (everything that receives gradients, 6.45M) and
  ``tunable_params_excl_prompt_embed`` (the paper's convention, 0.55M). The paper gives
  one decimal: 548K (UCF-101) and 509.5K (HMDB-51, 51 classes) both read "0.5M, 0.6%";
  SSv2's 174-class head would make 604K ("0.6M"; Table 2 still says 0.5M).
* GFLOPs. Table 1's column is GMACs summed over the test views: VideoMAE's
  1080 = 180 x 6 views (2 clips x 3 crops, VideoMAE's SSv2 protocol) sits in the same
  column. 772.2 / 6 = 128.7 GMACs per view, which is what a ViT-B running 3N = 1176
  tokens (N = 2 tubelets x 14 x 14 = 392 per stream) costs: 99.9 (linear) + 25.5
  (attention) + 2.8 (three tubelet embeddings) + 0.17 (SCCP) = 128.3 GMACs. The same 772.2
  for Linear Probe and Full Fine-tuning confirms the count is the backbone on 3N tokens.
  The paper preset therefore tests with 2 clips x 3 crops. The ViT-L row fits the same
  count (2563.7 measured vs 2569.6); its "0.1M (0.03%)" tunable does not (24 SCCP blocks
  at C/alpha = 8 are 1.25M) and is not reproduced.
* Table 1's "Input [M]" (6.1 for CVPT, 24.1 for VideoMAE's 16x224x224x3 = 2.41M clip) is
  not explained by the paper; it is not reproduced.

Choices where the paper is silent or ambiguous (configurable where it is reasonable):

1. MV/residual tokens aligned with I-frame tubelets. ``P_MV^0, P_R^0 in R^{N x d}`` must
   have the I-frame token count N. With G consecutive GOPs, K P-frames per GOP and
   tubelet t, I-frame token (j, y, x) covers GOPs j*t .. j*t+t-1, whose P-frames are
   positions j*t*K .. (j+1)*t*K - 1 of the batch's ``mv``/``residual`` (the sampling puts
   GOP k's K P-frames at k*K .. k*K+K-1). So the MV and residual patch embeddings are
   Conv3d with kernel = stride = (t*K, 16, 16) = (6, 16, 16): token j of every stream
   sees the same GOPs and the same 16x16 region. Randomly initialised (PyTorch default,
   like VideoMAE's patch embedding); MV input has 2 channels (dx, dy), as the paper's
   ``X_MV in R^{2 x T_P x H x W}``.
2. MVs/residuals accumulated back to the I-frame (CoViAR [45], which the paper follows
   for pre-processing); ``accumulate`` switches to per-P-frame values.
3. Eq. 5's axis. ``A = Softmax(omega x P_R_hat)`` on a (N, C/alpha) map does not say
   which axis it normalises. ``paper`` reads "spatial-temporal attention map" literally:
   the softmax runs over the N = 392 token positions, per bottleneck channel
   (``softmax_over="tokens"``), so each channel's map sums to 1 over the video. The other
   reading (preset ``paper_mv_channels``, ``softmax_over="channels"``) normalises the
   C/alpha = 8 channels of each token, a per-token gate as in channel attention. The two
   differ in how strongly the MV prompts enter the blocks: over tokens a weight averages
   1/N, over channels 1/8. Measured at random init (``paper`` preset, seed 0, the RMS of
   P_R' over that of P_MV' at the 12 SCCP outputs, geometric mean): 344x on random
   inputs and 388x on a 224 px synthetic-set batch over tokens, 6.7x and 7.7x over
   channels. Over tokens the gap grows with N: 35x at 64 px (N = 32), 94x at 112 px
   (N = 98), which is where a "35x" figure measured at 64 px comes from; over channels it
   is 7-8x at every size. ``paper`` keeps the token reading (the paper calls A a
   spatial-temporal map, a word that does not describe a per-token channel gate); omega,
   learnable, can sharpen or flatten either. Both readings have the same parameters
   (39,193 per SCCP block) and GMACs (the softmax is not a multiply-accumulate): 0.548M
   tunable, 128.32 GMACs per view, 769.9 over 6 views, as ``paper``. omega is one
   learnable scalar, initialised to 1 (``omega_init``).
4. Eq. 1 taken literally: the prompts that enter block l are the SCCP outputs
   ``P_MV'``, ``P_R'`` (replacing the incoming prompts), the I-frame tokens get
   ``E_I + E_I'``. ``prompt_skip`` adds the incoming prompts back (P + P') instead.
5. The prompts get no position embedding (the paper adds positions only through the
   frozen I-frame embedding); ``prompt_pos_embed`` adds VideoMAE's sinusoid table.
6. 1x1 convolutions on a token grid are per-token linear maps: ``nn.Linear`` (same
   parameters, same MACs). Xavier-uniform weights, zero biases; g4 (the update added to
   the I-frame tokens) starts at zero so training starts from the frozen model's own
   I-frame features (``zero_init_iframe_update``).
7. CLS_Head of eq. 2: mean over all 3N tokens -> the backbone's frozen final LayerNorm
   (VideoMAE's ``fc_norm``; a pre-training checkpoint's encoder ``norm``, which VideoMAE
   applies before pooling, is used after it) -> dropout -> a
   trainable linear layer (VideoMAE's fine-tuning head: 768*K + K parameters, which is
   what makes 0.5M).
8. Optimiser: AdamW, lr 1e-3, weight decay 1e-4, 5 warm-up epochs (paper); cosine decay
   after the warm-up and head dropout 0.0 follow VideoMAE's fine-tuning defaults.
9. Ablations exposed: ``sccp_blocks`` (Figure 4: SCCP in the first n layers; later layers
   pass the prompts through unchanged), ``residual_attention=False`` (Figure 5(b): the
   embedded MV prompts are added without the residual attention).
10. Data: the sampling is ``PAPER_SAMPLINGS["cvpt4x3"]`` (4 consecutive GOPs, 3 P-frames
    each); the paper's random scaling, corner cropping and flipping are the datamodule's
    multi-scale crop and flip (MV x negated). Batch size (240 in the paper) is the
    datamodule's. The ``tiny`` preset keeps 4 GOPs, 64 px, width 64, 2 layers, C/alpha 8.
11. Pretrained weights: a local state dict in the original VideoMAE format (fine-tuned
    ``blocks.*`` with ``q_bias``/``v_bias``, or the pre-training checkpoint's
    ``encoder.*``) or the Hugging Face ``VideoMAEModel``/``VideoMAEForVideoClassification``
    format; heads and decoders are ignored, anything else missing or extra is an error.
12. Table 1's PT column: "SL" rows start from VideoMAE fine-tuned with Kinetics-400's
    labels, "SSL" rows from its self-supervised pre-training model; the two differ only
    in the checkpoint. ``pretraining`` names which one a config expects and loading
    refuses the other (told apart by its keys: a classification head, or a decoder), so
    a run's preset says which row it reproduces: ``paper`` the SL ViT-B row of Table 1,
    ``paper_ssl`` Table 1's SSL ViT-B row and Table 2's (SSv2, whose only ViT-B row is
    SSL). A bare encoder, which the keys cannot place, loads under either and the run
    record says so (``pretraining: not told apart by its keys``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Literal

import torch
from timm.models.vision_transformer import Block
from torch import nn

from datamodules.contract import DataSpec
from datamodules.sampling import PAPER_SAMPLINGS
from methods.base import BaseMethod, OptimConfig, count_parameters
from methods.registry import register_method
from methods.weights import (
    Checkpoint,
    Loaded,
    WeightsError,
    random_record,
    read_checkpoint,
    resolve,
)

# --------------------------------------------------------------------------- building blocks


def sinusoid_table(n_position: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """VideoMAE's fixed position table (its ``get_sinusoid_encoding_table``): (1, n, dim).

    Row k is the token at flat index k = t * h * w + y * w + x, so the table for fewer
    tubelets than pre-training (2 here, 8 there) is the first rows of the longer one.
    """
    pos = torch.arange(n_position, dtype=torch.float64, device=device)[:, None]  # (n, 1)
    j = torch.arange(dim, device=device)
    angle = pos / torch.pow(10000.0, (2 * (j // 2)).double() / dim)  # (n, dim)
    table = torch.where(j % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float()[None]  # (1, n, dim)


class TubeletEmbed(nn.Module):
    """Non-overlapping (t, p, p) tubelets -> tokens, flattened time-major as VideoMAE."""

    def __init__(self, in_chans: int, dim: int, tubelet: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(
            in_chans, dim, kernel_size=(tubelet, patch, patch), stride=(tubelet, patch, patch)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, C, H, W)
        x = self.proj(x.transpose(1, 2))  # (B, D, T/t, H/p, W/p)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)


class SCCP(nn.Module):
    """Selective Cross-modal Complementary Prompt block (eq. 3-7, Figure 3(b)).

    g1..g3 embed ``E_I``, ``P_MV``, ``P_R`` into C/alpha channels (eq. 4); the residual
    prompts give an attention map ``Softmax(omega * P_R_hat)`` that selects motion cues
    from ``P_MV_hat`` (eq. 5); the selected cues are added to ``E_I_hat`` (eq. 6); g4..g6
    project the three back to C channels (eq. 7).
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        residual_attention: bool = True,
        softmax_over: Literal["tokens", "channels"] = "tokens",
        omega_init: float = 1.0,
        zero_init_iframe_update: bool = True,
    ) -> None:
        super().__init__()
        self.down_i, self.down_mv, self.down_r = (nn.Linear(dim, hidden) for _ in range(3))
        self.up_i, self.up_mv, self.up_r = (nn.Linear(hidden, dim) for _ in range(3))
        self.omega = nn.Parameter(torch.tensor(float(omega_init)))  # smoothing weight of eq. 5
        self.residual_attention = residual_attention
        # tokens: one spatial-temporal map per channel (dim 1 of (B, N, c)); channels: per token
        self.softmax_dim = 1 if softmax_over == "tokens" else 2
        for linear in (self.down_i, self.down_mv, self.down_r, self.up_i, self.up_mv, self.up_r):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
        if zero_init_iframe_update:
            nn.init.zeros_(self.up_i.weight)  # E_I + g4(.) = E_I at the start

    def attention(self, r_hat: torch.Tensor) -> torch.Tensor:  # (B, N, c)
        """The residual-guided map A of eq. 5."""
        return torch.softmax(self.omega * r_hat, dim=self.softmax_dim)

    def forward(
        self, p_mv: torch.Tensor, p_r: torch.Tensor, e_i: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # each (B, N, C)
        e_hat = self.down_i(e_i)  # (B, N, C/alpha)     eq. 4
        mv_hat = self.down_mv(p_mv)
        r_hat = self.down_r(p_r)
        if self.residual_attention:
            mv_hat = self.attention(r_hat) * mv_hat  # eq. 5
        e_hat = e_hat + mv_hat  # eq. 6
        return self.up_mv(mv_hat), self.up_r(r_hat), self.up_i(e_hat)  # (B, N, C) x3, eq. 7


class VideoViT(nn.Module):
    """The frozen VideoMAE ViT: tubelet embedding, pre-norm blocks, final LayerNorm.

    Parameter names follow the original VideoMAE fine-tuning model (``patch_embed.proj``,
    ``blocks.i.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}``, ``fc_norm``);
    ``videomae_state_dict`` converts the other formats to them.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        patch: int,
        tubelet: int,
        ln_eps: float,
    ) -> None:
        super().__init__()
        norm = partial(nn.LayerNorm, eps=ln_eps)
        self.dim = dim
        self.patch_embed = TubeletEmbed(3, dim, tubelet, patch)
        self.blocks = nn.ModuleList(
            Block(dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm) for _ in range(depth)
        )
        self.fc_norm = norm(dim)

    def embed(self, iframe: torch.Tensor) -> torch.Tensor:  # (B, Ti, 3, H, W)
        x = self.patch_embed(iframe)  # (B, N, D)
        return x + sinusoid_table(x.shape[1], self.dim, x.device).to(x.dtype)

    def forward(self, iframe: torch.Tensor) -> torch.Tensor:
        """Token features of the plain backbone (no prompts): (B, N, D), before pooling."""
        x = self.embed(iframe)
        for block in self.blocks:
            x = block(x)
        return x


def _split_qkv_bias(state: dict[str, torch.Tensor], prefix: str) -> None:
    """VideoMAE's q_bias/v_bias (no key bias) -> one qkv bias, in place."""
    q, v = state.pop(f"{prefix}q_bias"), state.pop(f"{prefix}v_bias")
    state[f"{prefix}qkv.bias"] = torch.cat([q, torch.zeros_like(q), v])


_HF_BLOCK = {  # Hugging Face VideoMAE layer names -> VideoViT block names
    "attention.output.dense": "attn.proj",
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}
_IGNORED = ("head.", "classifier.", "decoder.", "encoder_to_decoder.", "mask_token", "pos_embed")


def videomae_state_dict(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """A VideoMAE checkpoint in any of its three formats -> VideoViT names; and the format.

    Heads, decoders, mask tokens and fixed position tables are dropped.
    """
    state = dict(state)
    if any(k.startswith("videomae.") for k in state):  # HF *For* models wrap the encoder
        state = {k.removeprefix("videomae."): v for k, v in state.items()}
    if "embeddings.patch_embeddings.projection.weight" in state:
        return _from_hf(state), "huggingface"
    fmt = "videomae"
    if "encoder.patch_embed.proj.weight" in state:  # pre-training model: encoder + decoder
        state = {
            k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")
        }
        fmt = "videomae-pretrain"
    state = {k: v for k, v in state.items() if not k.startswith(_IGNORED)}
    for key in [k for k in state if k.endswith(".attn.q_bias")]:
        _split_qkv_bias(state, key.removesuffix("q_bias"))
    # the pooled features' LayerNorm: fc_norm in fine-tuned models (their norm, if any, is
    # unused), the encoder's final norm in the pre-training model
    final = "fc_norm" if "fc_norm.weight" in state else "norm"
    for p in ("weight", "bias"):
        norm = state.pop(f"norm.{p}", None)
        state[f"fc_norm.{p}"] = state.pop(f"fc_norm.{p}") if final == "fc_norm" else norm
    return {k: v for k, v in state.items() if v is not None}, fmt


def _from_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {
        "patch_embed.proj.weight": state.pop("embeddings.patch_embeddings.projection.weight"),
        "patch_embed.proj.bias": state.pop("embeddings.patch_embeddings.projection.bias"),
    }
    norm = "fc_norm" if "fc_norm.weight" in state else "layernorm"
    for p in ("weight", "bias"):
        if f"{norm}.{p}" in state:
            out[f"fc_norm.{p}"] = state.pop(f"{norm}.{p}")
    i = 0
    while f"encoder.layer.{i}.attention.attention.query.weight" in state:
        src, dst = f"encoder.layer.{i}.", f"blocks.{i}."
        att = src + "attention.attention."
        q = state.pop(att + "query.weight")
        out[dst + "attn.qkv.weight"] = torch.cat(
            [q, state.pop(att + "key.weight"), state.pop(att + "value.weight")]
        )
        # transformers 4.x names the biases q_bias/v_bias, 5.x query.bias/value.bias
        qb = state.pop(att + "q_bias", None)
        qb = state.pop(att + "query.bias") if qb is None else qb
        vb = state.pop(att + "v_bias", None)
        vb = state.pop(att + "value.bias") if vb is None else vb
        kb = state.pop(att + "key.bias", torch.zeros_like(qb))
        out[dst + "attn.qkv.bias"] = torch.cat([qb, kb, vb])
        for hf, ours in _HF_BLOCK.items():
            for p in ("weight", "bias"):
                out[f"{dst}{ours}.{p}"] = state.pop(f"{src}{hf}.{p}")
        i += 1
    out.update({k: v for k, v in state.items() if not k.startswith(_IGNORED)})  # leftovers
    return out


def to_videomae_format(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """VideoViT names -> the original VideoMAE fine-tuning format (q_bias/v_bias)."""
    out = {}
    for key, value in state.items():
        if key.endswith(".attn.qkv.bias"):
            q, _, v = value.chunk(3)
            prefix = key.removesuffix("qkv.bias")
            out[prefix + "q_bias"], out[prefix + "v_bias"] = q.clone(), v.clone()
        else:
            out[key] = value
    return out


SUPERVISED, SELF_SUPERVISED = "supervised", "self-supervised"


def videomae_pretraining(state: dict[str, torch.Tensor]) -> str | None:
    """Which of VideoMAE's Kinetics-400 starting points a checkpoint is, from its keys: the
    self-supervised pre-training model (an encoder with its decoder: ``encoder.*`` +
    ``decoder.*``, Hugging Face's ``VideoMAEForPreTraining``) or a model fine-tuned with
    Kinetics-400's labels (a classification head: ``head.*``, Hugging Face's
    ``classifier.*``); None when the keys do not tell (a bare encoder)."""
    if any(k.startswith(("decoder.", "encoder_to_decoder.")) for k in state):
        return SELF_SUPERVISED
    if any(k.startswith(("head.", "classifier.")) for k in state):
        return SUPERVISED
    return None


def load_videomae(
    backbone: VideoViT, path: str, option: str, expected: str | None = None
) -> dict[str, object]:
    """Load a local VideoMAE checkpoint into ``backbone``; the record for the run's JSON.

    ``expected``: the starting point the config names (``pretraining``); a checkpoint whose
    keys say it is the other one is refused (CVPT's SL and SSL rows differ only in it)."""
    resolved = resolve(path, option)
    if resolved is None:
        return random_record(option, path)
    loaded = read_checkpoint(resolved)
    kind = videomae_pretraining(loaded.state)
    if expected is not None and kind is not None and kind != expected:
        raise WeightsError(
            f"{option}: {resolved} is VideoMAE's {kind} Kinetics-400 checkpoint, but the "
            f"config expects the {expected} one (pretraining: {expected}); CVPT's SL rows start "
            "from the fine-tuned checkpoint (preset paper), its SSL rows from the pre-training "
            "one (preset paper_ssl)"
        )
    state, fmt = videomae_state_dict(loaded.state)
    result = backbone.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise WeightsError(
            f"{option}: {resolved} is not a VideoMAE ViT of this config ({fmt} format read); "
            f"missing {result.missing_keys[:4]}, unexpected {result.unexpected_keys[:4]}"
        )
    return {
        "option": option,
        "weights": str(resolved),
        "layout": loaded.layout,
        "format": fmt,
        "pretraining": kind or "not told apart by its keys",
        "missing_keys": 0,
    }


# --------------------------------------------------------------------------- the network


class CVPTNet(nn.Module):
    """Frozen VideoMAE ViT + conditional MV/residual prompts + per-layer SCCP blocks."""

    def __init__(self, config: CVPTConfig, num_classes: int) -> None:
        super().__init__()
        c = config
        if c.gops % c.tubelet:
            raise ValueError(f"gops={c.gops} is not a multiple of tubelet={c.tubelet}")
        if not 0 <= c.sccp_blocks <= c.depth:
            raise ValueError(f"sccp_blocks={c.sccp_blocks} outside 0..depth={c.depth}")
        self.config = c
        self.backbone = VideoViT(
            c.embed_dim, c.depth, c.num_heads, c.mlp_ratio, c.patch_size, c.tubelet, c.ln_eps
        )
        # one motion tubelet = the P-frames of the GOPs under one I-frame tubelet (choice 1)
        motion_tubelet = c.tubelet * c.pframes_per_gop
        self.mv_embed = TubeletEmbed(2, c.embed_dim, motion_tubelet, c.patch_size)
        self.residual_embed = TubeletEmbed(3, c.embed_dim, motion_tubelet, c.patch_size)
        sccp = partial(
            SCCP,
            c.embed_dim,
            c.embed_dim // c.reduction,
            residual_attention=c.residual_attention,
            softmax_over=c.softmax_over,
            omega_init=c.omega_init,
            zero_init_iframe_update=c.zero_init_iframe_update,
        )
        self.sccp = nn.ModuleList(sccp() for _ in range(c.sccp_blocks))
        self.dropout = nn.Dropout(c.head_dropout)
        self.head = nn.Linear(c.embed_dim, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def prompts(self, mv: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The conditional prompts P_MV^0, P_R^0: (B, N, D) each."""
        p_mv, p_r = self.mv_embed(mv), self.residual_embed(residual)
        if self.config.prompt_pos_embed:
            pos = sinusoid_table(p_mv.shape[1], p_mv.shape[2], p_mv.device).to(p_mv.dtype)
            p_mv, p_r = p_mv + pos, p_r + pos
        return p_mv, p_r

    def features(
        self, iframe: torch.Tensor, mv: torch.Tensor, residual: torch.Tensor
    ) -> torch.Tensor:  # iframe (B, Ti, 3, H, W), mv (B, Tp, 2, H, W), residual (B, Tp, 3, H, W)
        c = self.config
        if mv.shape[1] != iframe.shape[1] * c.pframes_per_gop or residual.shape[1] != mv.shape[1]:
            raise ValueError(
                f"expected {c.pframes_per_gop} P positions per I-frame, got Ti={iframe.shape[1]}, "
                f"mv Tp={mv.shape[1]}, residual Tp={residual.shape[1]}"
            )
        e_i = self.backbone.embed(iframe)  # (B, N, D)  E_I^0
        p_mv, p_r = self.prompts(mv, residual)  # (B, N, D) each: P_MV^0, P_R^0
        n = e_i.shape[1]
        for layer, block in enumerate(self.backbone.blocks):
            if layer < len(self.sccp):
                mv_out, r_out, e_out = self.sccp[layer](p_mv, p_r, e_i)  # eq. 3
                if c.prompt_skip:
                    mv_out, r_out = p_mv + mv_out, p_r + r_out
                p_mv, p_r, e_i = mv_out, r_out, e_i + e_out
            x = block(torch.cat([p_mv, p_r, e_i], dim=1))  # (B, 3N, D)  eq. 1
            p_mv, p_r, e_i = x.split(n, dim=1)  # (B, N, D) x3
        return self.backbone.fc_norm(x.mean(dim=1))  # (B, D)  eq. 2, pooled over 3N tokens

    def forward(
        self, iframe: torch.Tensor, mv: torch.Tensor, residual: torch.Tensor
    ) -> torch.Tensor:
        return self.head(self.dropout(self.features(iframe, mv, residual)))  # (B, classes)


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class CVPTConfig:
    embed_dim: int = 768  # C: ViT-B width
    depth: int = 12  # L: transformer layers
    num_heads: int = 12  # attention heads
    mlp_ratio: float = 4.0  # MLP hidden = mlp_ratio * C
    patch_size: int = 16  # spatial patch side (all three streams)
    tubelet: int = 2  # I-frames per I-frame token (VideoMAE)
    ln_eps: float = 1e-6  # LayerNorm eps of the backbone (VideoMAE; HF configs say 1e-12)
    pretrained: str = "none"  # local VideoMAE state dict (original or HF format), or "none"
    # which Kinetics-400 VideoMAE ``pretrained`` is (Table 1's PT column): fine-tuned with
    # labels (SL, preset paper) or the self-supervised pre-training model (SSL, paper_ssl)
    pretraining: Literal["supervised", "self-supervised"] = "supervised"
    reduction: int = 96  # alpha: SCCP bottleneck width is C / alpha (paper: 96 for ViT-B)
    sccp_blocks: int = 12  # SCCP blocks in the first n layers (paper: all; Figure 4 varies it)
    residual_attention: bool = True  # eq. 5 on; False is Figure 5(b)'s "w/o attention"
    softmax_over: Literal["tokens", "channels"] = "tokens"  # axis of eq. 5's softmax (choice 3)
    omega_init: float = 1.0  # initial value of the learnable smoothing weight omega
    zero_init_iframe_update: bool = True  # g4 starts at zero (choice 6)
    prompt_skip: bool = False  # False: block input is P' (eq. 1); True: P + P'
    prompt_pos_embed: bool = False  # add the sinusoid positions to P_MV^0, P_R^0 too
    head_dropout: float = 0.0  # before the classifier (VideoMAE fine-tuning default)
    gops: int = 4  # consecutive GOPs per view = I-frames Ti (paper: 4)
    pframes_per_gop: int = 3  # P positions per GOP (paper: 3), Tp = gops * pframes_per_gop
    accumulate: bool = True  # MV/residual accumulated back to the I-frame (CoViAR) or per P
    size: int = 224  # crop side
    test_clips: int = 2  # temporal views at test time (2 x 3 makes Table 1's 772.2 GFLOPs)
    test_crops: int = 3  # spatial views at test time


def paper() -> CVPTConfig:
    return CVPTConfig()


def paper_ssl() -> CVPTConfig:
    """Table 1's and Table 2's "SSL" ViT-B rows: VideoMAE's self-supervised pre-training
    checkpoint as the frozen backbone (everything else as ``paper``)."""
    return replace(paper(), pretraining=SELF_SUPERVISED)


def tiny() -> CVPTConfig:
    # same code path; 4 GOPs kept so the tubelet alignment is the paper's (6-frame motion
    # tubelets); patch 16 on 64 px gives 2 x 4 x 4 = 32 tokens per stream, 96 in the blocks
    return CVPTConfig(
        embed_dim=64,
        depth=2,
        num_heads=4,
        reduction=8,
        sccp_blocks=2,
        size=64,
        test_clips=1,
        test_crops=1,
    )


def paper_mv_channels() -> CVPTConfig:
    """Eq. 5's softmax over each token's C/alpha channels instead of the N positions (choice 3)."""
    return replace(paper(), softmax_over="channels")


def tiny_mv_channels() -> CVPTConfig:
    return replace(tiny(), softmax_over="channels")


# --------------------------------------------------------------------------- LightningModule


class CVPT(BaseMethod):
    """Compressed Video Prompt Tuning on a frozen VideoMAE ViT."""

    def __init__(self, config: CVPTConfig, num_classes: int, class_names, optim=None) -> None:
        super().__init__(config, num_classes, class_names, optim)
        self.net = CVPTNet(config, num_classes)
        self.pretrained = [
            load_videomae(
                self.net.backbone, config.pretrained, "pretrained", expected=config.pretraining
            )
        ]
        self.freeze(self.net.backbone)

    def head_modules(self) -> list[str]:  # the linear classifier
        return ["net.head"]

    @property
    def data_spec(self) -> DataSpec:
        """PAPER_SAMPLINGS["cvpt4x3"] with this config's GOPs, P-frames and views."""
        c = self.config
        sampling, modalities = PAPER_SAMPLINGS["cvpt4x3"]
        return DataSpec(
            modalities=modalities,
            sampling=replace(
                sampling,
                num_positions=c.gops,
                pframes_per_gop=c.pframes_per_gop,
                accumulate=c.accumulate,
                test_clips=c.test_clips,
                test_crops=c.test_crops,
            ),
            size=c.size,
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(batch["iframe"], batch["mv"], batch["residual"])

    def parameter_counts(self) -> dict[str, int]:
        counts = super().parameter_counts()
        embed = count_parameters(self.net.mv_embed) + count_parameters(self.net.residual_embed)
        counts["prompt_embed_params"] = embed
        # the paper's 0.5M: SCCP blocks + head, without the MV/residual patch embeddings
        counts["tunable_params_excl_prompt_embed"] = counts["tunable_params"] - embed
        return counts

    @classmethod
    def default_optim(cls) -> OptimConfig:
        return OptimConfig(
            optimizer="adamw", lr=1e-3, weight_decay=1e-4, warmup_epochs=5.0, schedule="cosine"
        )

    def weight_state(self, option: str, loaded: Loaded) -> dict[str, torch.Tensor]:
        """VideoMAE's names (any of its formats) -> ours, as loading does."""
        return videomae_state_dict(loaded.state)[0]

    def weight_conflicts(
        self, option: str, target: nn.Module, state: dict[str, torch.Tensor], loaded: Loaded
    ) -> list[str]:
        """A VideoMAE checkpoint of the other starting point than the config's
        ``pretraining`` (a run at preset paper refuses the pre-training checkpoint, one at
        paper_ssl the fine-tuned one)."""
        kind, expected = videomae_pretraining(loaded.state), self.config.pretraining
        if option != "pretrained" or kind is None or kind == expected:
            return []
        return [
            f"pretrained: VideoMAE's {kind} checkpoint, the preset expects the {expected} one "
            f"(--preset {'paper_ssl' if kind == SELF_SUPERVISED else 'paper'})"
        ]

    @classmethod
    def pretrained_fixture(cls, config: CVPTConfig, directory: Path) -> dict[str, str]:
        """Write a backbone checkpoint in the original VideoMAE format; the overrides that load it."""
        backbone = VideoViT(
            config.embed_dim,
            config.depth,
            config.num_heads,
            config.mlp_ratio,
            config.patch_size,
            config.tubelet,
            config.ln_eps,
        )
        state = to_videomae_format(backbone.state_dict())
        state["head.weight"] = torch.zeros(400, config.embed_dim)  # a Kinetics head, ignored
        state["head.bias"] = torch.zeros(400)
        path = Path(directory) / "videomae_vit.pth"
        torch.save({"module": state}, path)
        return {"pretrained": str(path)}


WEIGHTS = (
    Checkpoint(
        option="pretrained",
        name="VideoMAE ViT-B/16 Kinetics-400 (1600-epoch pre-training, fine-tuned)",
        publisher="MCG-NJU (VideoMAE, NeurIPS 2022)",
        source="github.com/MCG-NJU/VideoMAE MODEL_ZOO.md (checkpoint.pth)",
        layout="videomae",
        serves="Table 1 'CVPT (Ours)' ViT-B SL row (HMDB-51 / UCF-101): preset paper",
        target="net.backbone",
        note="the Hugging Face MCG-NJU/videomae-base-finetuned-kinetics directory loads too",
    ),
    Checkpoint(
        option="pretrained",
        name="VideoMAE ViT-B/16 Kinetics-400 (1600-epoch self-supervised pre-training)",
        publisher="MCG-NJU (VideoMAE, NeurIPS 2022)",
        source="github.com/MCG-NJU/VideoMAE MODEL_ZOO.md (pre-training checkpoint.pth)",
        layout="videomae",
        serves="Table 1 'CVPT (Ours)' ViT-B SSL row and Table 2 (SSv2): preset paper_ssl",
        target="net.backbone",
        note="encoder + decoder (encoder.* keys); the Hugging Face MCG-NJU/videomae-base "
        "directory (VideoMAEForPreTraining) loads too",
    ),
)


register_method(
    "cvpt",
    CVPT,
    CVPTConfig,
    {
        "paper": paper,
        "tiny": tiny,
        "paper_ssl": paper_ssl,
        "paper_mv_channels": paper_mv_channels,
        "tiny_mv_channels": tiny_mv_channels,
    },
    "CVPT (NeurIPS 2023): frozen VideoMAE ViT-B on I-frames, MV/residual conditional "
    "prompts refined by SCCP blocks at every layer",
    WEIGHTS,
    readings={
        "paper_mv_channels": "eq. 5's softmax over each token's 8 bottleneck channels, not "
        "the 392 positions: the MV prompts enter the blocks ~7x, not ~350x, weaker than the "
        "residual ones at init",
    },
)
