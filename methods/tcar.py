"""TCAR-Net: text-driven compressed action recognition with multimodal fusion.

Paper: Guo, Li, Tao, Ma, "TCAR-Net: Text-Driven Compressed Action Recognition with
Multimodal Fusion" (Inner Mongolia University; preprint, ``papers/tcar_net.txt``).

Frozen: the CLIP visual encoder(s) applied to I-frames, residuals and motion vectors,
and the CLIP text encoder (its class-name embeddings are computed once, at build time,
into buffers). Trained: the adaptive I/R fusion weights beta (eq. 1-2) and two
6-layer temporal transformers with frame position embeddings (eq. 3-4), one per stream.
The text-guided saliency (eq. 5-7), the category matching (eq. 8) and the lambda fusion
(eq. 9) have no parameters.

``paper`` reproduces Table 1's "Ours ViT/B" row and Table 3's PEFT row: CLIP ViT-B/16
visual towers + CLIP ViT-B text tower, 16+16+16 frames at 224x224, one test view.
Tunable 37.91M = 2 x (6 x 3.15M blocks + 77 x 512 position table) + 2 (beta). Table 3's
totals count THREE visual encoders: 359.91M = 3 x 86.19M (ViT-B/16 visual) + 63.43M (text
tower) + 37.91M, and "video branch" 296.49M = 3 x 86.19M + 37.91M. So the preset builds
one frozen visual tower per modality (Fig. 1 draws three encoders too); Sec. 3.2.1's "a
single V for all inputs" is ``shared_visual=True`` (identical outputs when the three
copies come from one checkpoint, a third of the memory). ``paper_l``: Table 1's "Ours
ViT/L" row (ViT-L/14, temporal width 768; 85.17M tunable vs the paper's 85.12M).

GMACs: the complete count of a view is 48 frames x 17.56 (ViT-B/16, attention included)
+ the temporal transformers, ~843.6 GMACs. The paper's 544.85 "GFLOPs" matches an
attention-blind counter (thop style: only ``nn.Linear``/``nn.Conv2d`` modules, so
``nn.MultiheadAttention`` and its projections are invisible): 48 x 11.27 + 0.40 = 541.4
GMACs (-0.6%). ``tests/test_tcar.py`` asserts both. For ``paper_l`` the complete count,
3889.98 GMACs, is the one within 2.5% of the paper's 3990.65 (attention-blind: 2491.87):
Table 1's two rows apparently were not counted the same way.

``tiny``: the same code with a 2-layer width-64 ViT (16-px patches at 64 px), a 1-layer
text tower, 2-layer temporal transformers, 4 clips. With ``pretrained: none`` the frozen
random text tower's class embeddings are nearly collinear (cosine 0.70-0.995) and the
method cannot learn; ``configs/tcar/synthetic.yaml`` sets ``pretrained: synthetic``, a tiny
CLIP that the harness pretrains contrastively on captioned MV images of a synthetic corpus
disjoint from the benchmark (``cvbench/pretrain.py``), the stand-in for CLIP's pretraining.

Choices where the paper is silent or ambiguous (each configurable):

* Temporal model (eq. 3-4) = BIKE's (ref. [10]): CLIP residual attention blocks
  (QuickGELU) at the CLIP embedding width, width/64 heads, a learned 77-entry frame
  position table (BIKE's ``context_length``; the 77 entries are what make 37.91M exact),
  an outer residual ``x = T(x + P) + x`` (eq. 3 omits it; ``outer_residual``), init
  N(0, 0.02) for Linear/Embedding weights, zero biases.
* beta starts at zero (equal I/R weights). The MV stream has one input, hence no beta.
* E_T of eq. 5 is the class embedding (``saliency_text="sentence"``, the paper's
  equations, default); ``"words"`` is BIKE's variant, all context-length token outputs
  of the text tower projected to the joint space. Softmax of eq. 6 is over frames
  ("relevance of each temporal step"); with words it is taken per word and the weights
  averaged over words (BIKE). Eq. 7 pools the un-normalised frame features.
  Reading ``paper_words``: the paper writes E_T in R^{N_c x D} (one embedding per class)
  but says the saliency is the "parameter-free mechanism [10]", BIKE's, which compares
  every frame with every word of the class prompt. ``paper`` follows the equations;
  ``paper_words`` is BIKE's mechanism with everything else unchanged. Both have no
  parameters, so sizes are identical; the word embeddings are computed once from the
  frozen text tower (a 77 x 512 buffer per class), and the saliency costs
  T x N_c x 77 x D MACs per stream and view instead of T x N_c x D (101 classes, two
  streams: 843.78 against 843.66 GMACs per view, measured; cost-tcar-paper_words.json).
* Prompt: "This is a video about {}" (BIKE's template); class names have "_" turned to
  spaces and CamelCase split ("ApplyEyeMakeup" -> "Apply Eye Makeup").
* Lambda of eq. 9 weights the *spatial* score, as the equation is written:
  S = 0.4 S_S + 0.6 S_M. Sec. 4.4 ("temporal information dominates" at 0.4) agrees.
* Logits for the loss = 100 x S (CLIP's logit scale, fixed: the paper trains nothing
  else), cross-entropy over classes (the loss is not stated; with fixed class text
  BIKE's video-to-text loss is this cross-entropy).
* MVs (2 channels, +-0.5 for +-20 px) enter the 3-channel CLIP encoder as
  (dx, dy, |mv|) x 4, i.e. about the range of CLIP-normalised pixels (``mv_image``,
  ``mv_gain``); ``"hsv"`` is the flow colouring (hue = direction, value = magnitude).
* One ``pretrained`` open_clip checkpoint (whole CLIP state dict) fills the visual and
  text towers; the paper's visual tower is a Kinetics-400-adapted ViT (Table 4) while the
  text tower is CLIP's, so ``pretrained_visual`` optionally loads a visual-only state dict
  over the visual towers. All visual copies get the same weights.
* I-frames are normalised with CLIP's mean/std; residuals with the data layer's default.
* Sampling: ``tcar16`` (16 GOP clips, random in training, centre at test), accumulated MV
  and residuals (CoViAR [5]); one view at test (centre clip, centre crop). Random
  horizontal flips in training as the paper (``flip``); on datasets whose classes are
  defined by direction the datamodule gives a mirrored sample its mirrored label (the
  synthetic set's left/right and cw/ccw classes swap under a flip).
* Which streams hold which modalities is configurable (``spatial``, ``motion``), which
  covers Table 2 (single modality) and Table 5 (residual in the motion branch, no MV). An
  empty stream is dropped and the remaining stream scores alone.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import open_clip
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torch import nn

from datamodules.contract import DataSpec, Modality, Normalization
from datamodules.sampling import PAPER_SAMPLINGS
from methods.base import BaseMethod, OptimConfig
from methods.registry import register_method
from methods.weights import Checkpoint, Loaded, fit, load_into, read_checkpoint, resolve

VOCAB_SIZE = 49408  # open_clip's bundled BPE tokenizer (works offline)

# --------------------------------------------------------------------------- building blocks


def _mv_dx_dy_mag(mv: torch.Tensor, gain: float) -> torch.Tensor:
    """(dx, dy, |mv|) x gain: keeps the sign and the magnitude in separate channels."""
    magnitude = mv.norm(dim=2, keepdim=True)  # (B, T, 1, H, W)
    return torch.cat([mv, magnitude], dim=2) * gain  # (B, T, 3, H, W)


def _mv_hsv(mv: torch.Tensor, gain: float) -> torch.Tensor:
    """Flow colouring (hue = direction, value = magnitude), then CLIP's normalisation."""
    dx, dy = mv[:, :, 0], mv[:, :, 1]
    hue = (torch.atan2(dy, dx) / (2 * torch.pi)) % 1.0  # (B, T, H, W) in [0, 1)
    value = (torch.sqrt(dx**2 + dy**2) * gain / 2).clamp(max=1.0)  # 1 at gain=4 and 0.5
    # HSV -> RGB with saturation 1: channel n = v - v * clamp(min(k, 4 - k), 0, 1)
    k = (torch.tensor([5.0, 3.0, 1.0], device=mv.device)[:, None, None] + hue[:, :, None] * 6) % 6
    rgb = value[:, :, None] * (1 - torch.clamp(torch.minimum(k, 4 - k), 0, 1))
    mean = torch.tensor(OPENAI_DATASET_MEAN, device=mv.device)[:, None, None]
    std = torch.tensor(OPENAI_DATASET_STD, device=mv.device)[:, None, None]
    return (rgb - mean) / std  # (B, T, 3, H, W)


# How a 2-channel MV field becomes a 3-channel image for the CLIP patch embedding.
MV_IMAGES: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "dx_dy_mag": _mv_dx_dy_mag,
    "hsv": _mv_hsv,
}


def class_prompt(name: str, template: str) -> str:
    """A class name as words in the prompt template ("ApplyEyeMakeup" -> "Apply Eye Makeup")."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name.replace("_", " "))
    return template.format(" ".join(words.split()))


class ResidualAttentionBlock(nn.Module):
    """CLIP's pre-LN transformer block (BIKE's temporal model is six of these)."""

    def __init__(self, width: int, heads: int, quick_gelu: bool) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, width * 4),
            open_clip.transformer.QuickGELU() if quick_gelu else nn.GELU(),
            nn.Linear(width * 4, width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class TemporalTransformer(nn.Module):
    """Eq. 3-4: E' = T_seq(E + P) (+ E, BIKE's outer residual)."""

    def __init__(
        self,
        width: int,
        layers: int,
        heads: int,
        max_frames: int,
        outer_residual: bool,
        quick_gelu: bool,
    ) -> None:
        super().__init__()
        self.position = nn.Embedding(max_frames, width)
        self.blocks = nn.Sequential(
            *(ResidualAttentionBlock(width, heads, quick_gelu) for _ in range(layers))
        )
        self.outer_residual = outer_residual
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # BIKE's init; MultiheadAttention's in_proj keeps torch's xavier init as in BIKE
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        positions = self.position.weight[: x.shape[1]]  # (T, D)
        y = self.blocks(x + positions)
        return y + x if self.outer_residual else y


class AdaptiveFusion(nn.Module):
    """Eq. 1-2: w = softmax(beta), E = sum_i w_i E_i; no parameter for a single input."""

    def __init__(self, inputs: int) -> None:
        super().__init__()
        self.beta = nn.Parameter(torch.zeros(inputs)) if inputs > 1 else None

    def weights(self) -> torch.Tensor:  # (inputs,)
        return self.beta.softmax(dim=0) if self.beta is not None else torch.ones(1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (inputs, B, T, D)
        if self.beta is None:
            return features[0]
        w = self.weights()
        return torch.einsum("i,ibtd->btd", w, features)  # (B, T, D)


def text_guided_pooling(x: torch.Tensor, words: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 5-7: per-class frame saliency from text, then a saliency-weighted frame sum.

    ``x`` (B, T, D) frame features; ``words`` (C, K, D) L2-normalised text features, K
    tokens per class (K = 1: the class embedding of eq. 5). Returns F (B, C, D).
    """
    sim = torch.einsum("btd,ckd->bctk", F.normalize(x, dim=-1), words)  # (B, C, T, K) eq. 5
    saliency = (sim / tau).softmax(dim=2).mean(dim=3)  # (B, C, T) eq. 6, softmax over frames
    return torch.einsum("bct,btd->bcd", saliency, x)  # (B, C, D) eq. 7


def category_scores(pooled: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Eq. 8: cosine of each class's pooled feature (B, C, D) with its embedding (C, D)."""
    return (F.normalize(pooled, dim=-1) * classes).sum(dim=-1)  # (B, C)


class ClipTextTower(nn.Module):
    """The text half of an open_clip ``CLIP``, returning every token's projected output."""

    def __init__(self, clip: open_clip.CLIP) -> None:
        super().__init__()
        self.token_embedding = clip.token_embedding
        self.positional_embedding = clip.positional_embedding
        self.transformer = clip.transformer
        self.ln_final = clip.ln_final
        self.text_projection = clip.text_projection
        self.register_buffer("attn_mask", clip.attn_mask, persistent=False)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled (N, D), all tokens (N, L, D)) for token ids (N, L), as CLIP's encode_text."""
        x = self.token_embedding(tokens) + self.positional_embedding  # (N, L, W)
        x = self.ln_final(self.transformer(x, attn_mask=self.attn_mask))
        x = x @ self.text_projection  # (N, L, D)
        eot = tokens.argmax(dim=-1)  # the end-of-text token has the highest id
        return x[torch.arange(len(x), device=x.device), eot], x


# --------------------------------------------------------------------------- the network


class TCARNet(nn.Module):
    """Frozen CLIP towers + per-stream adaptive fusion, temporal transformer, text saliency."""

    def __init__(
        self,
        visual: nn.Module,
        text: ClipTextTower,
        tokens: torch.Tensor,
        streams: dict[str, tuple[Modality, ...]],
        stream_weights: dict[str, float],
        *,
        embed_dim: int,
        shared_visual: bool,
        temporal_layers: int,
        temporal_head_width: int,
        max_frames: int,
        outer_residual: bool,
        quick_gelu: bool,
        saliency_text: Literal["sentence", "words"],
        tau: float,
        logit_scale: float,
        mv_image: str,
        mv_gain: float,
    ) -> None:
        super().__init__()
        self.streams = {name: mods for name, mods in streams.items() if mods}
        self.stream_weights = stream_weights
        self.modalities = tuple(dict.fromkeys(m for mods in self.streams.values() for m in mods))
        # one frozen tower per modality (Table 3's count) or one for all (Sec. 3.2.1)
        self.encoders = nn.ModuleDict(
            {"shared": visual}
            if shared_visual
            else {
                m.value: visual if i == 0 else copy.deepcopy(visual)
                for i, m in enumerate(self.modalities)
            }
        )
        self.text = text
        heads = max(embed_dim // temporal_head_width, 1)
        self.fusion = nn.ModuleDict({n: AdaptiveFusion(len(m)) for n, m in self.streams.items()})
        self.temporal = nn.ModuleDict(
            {
                n: TemporalTransformer(
                    embed_dim, temporal_layers, heads, max_frames, outer_residual, quick_gelu
                )
                for n in self.streams
            }
        )
        self.saliency_text = saliency_text
        self.tau = tau
        self.logit_scale = logit_scale
        # inputs that are not 3-channel images get an image made of them
        self.to_image = {Modality.MV: partial(MV_IMAGES[mv_image], gain=mv_gain)}
        self.register_buffer("tokens", tokens)
        self.register_buffer("class_embeddings", torch.empty(len(tokens), embed_dim))
        self.register_buffer("word_embeddings", torch.empty(0))
        self.refresh_text_embeddings()

    @torch.no_grad()
    def refresh_text_embeddings(self) -> None:
        """Encode the class prompts once with the frozen text tower (call after loading it)."""
        was_training = self.text.training
        pooled, words = self.text.eval()(self.tokens)  # (C, D), (C, L, D)
        self.text.train(was_training)
        self.class_embeddings = F.normalize(pooled, dim=-1)
        words = pooled[:, None] if self.saliency_text == "sentence" else words  # (C, K, D)
        self.word_embeddings = F.normalize(words, dim=-1)

    def encoder(self, modality: Modality) -> nn.Module:
        return self.encoders["shared" if "shared" in self.encoders else modality.value]

    def encode(self, modality: Modality, x: torch.Tensor) -> torch.Tensor:
        """Frame features E = V(x): (B, T, C, H, W) -> (B, T, D)."""
        adapter = self.to_image.get(modality)
        x = adapter(x) if adapter is not None else x  # (B, T, 3, H, W)
        b, t = x.shape[:2]
        return self.encoder(modality)(x.flatten(0, 1)).view(b, t, -1)  # (B, T, D)

    def stream_scores(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """S_X of eq. 8 for every stream: {name: (B, C)}."""
        features = {m: self.encode(m, inputs[m.value]) for m in self.modalities}
        scores = {}
        for name, mods in self.streams.items():
            x = self.fusion[name](torch.stack([features[m] for m in mods]))  # (B, T, D) eq. 1-2
            x = self.temporal[name](x)  # (B, T, D) eq. 3-4
            pooled = text_guided_pooling(x, self.word_embeddings, self.tau)  # (B, C, D)
            scores[name] = category_scores(pooled, self.class_embeddings)  # (B, C)
        return scores

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits (B, C) = logit_scale x S, S = sum of stream weights x S_X (eq. 9)."""
        scores = self.stream_scores(inputs)
        total = sum(self.stream_weights[n] for n in scores)
        fused = sum(self.stream_weights[n] / total * s for n, s in scores.items())  # (B, C)
        return self.logit_scale * fused


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class ClipArch:
    """An open_clip ``CLIP`` architecture (``paper`` = open_clip's ``ViT-B-16`` json)."""

    embed_dim: int = 512  # joint image-text space, also the temporal transformers' width
    image_size: int = 224  # input side of the visual tower
    patch_size: int = 16  # ViT patch side
    vision_width: int = 768  # ViT width
    vision_layers: int = 12  # ViT depth
    vision_head_width: int = 64  # ViT width per attention head
    text_width: int = 512  # text transformer width
    text_heads: int = 8  # text transformer heads
    text_layers: int = 12  # text transformer depth
    context_length: int = 77  # text tokens (the BPE tokenizer pads/truncates to this)
    quick_gelu: bool = True  # OpenAI CLIP weights were trained with QuickGELU

    def build(self) -> open_clip.CLIP:
        vision = open_clip.CLIPVisionCfg(
            layers=self.vision_layers,
            width=self.vision_width,
            head_width=self.vision_head_width,
            patch_size=self.patch_size,
            image_size=self.image_size,
        )
        text = open_clip.CLIPTextCfg(
            context_length=self.context_length,
            vocab_size=VOCAB_SIZE,
            width=self.text_width,
            heads=self.text_heads,
            layers=self.text_layers,
        )
        return open_clip.CLIP(self.embed_dim, vision, text, quick_gelu=self.quick_gelu)


@dataclass(frozen=True)
class TCARConfig:
    clip: ClipArch = field(default_factory=ClipArch)  # frozen CLIP towers
    pretrained: str = "none"  # open_clip checkpoint (whole CLIP state dict), or "none"
    pretrained_visual: str = (
        "none"  # visual-only state dict loaded over it (K400 ViT), "none": keep
    )
    shared_visual: bool = False  # one tower for I/R/MV (Sec. 3.2.1) vs one each (Table 3, Fig. 1)
    spatial: tuple[str, ...] = ("iframe", "residual")  # spatial stream inputs, fused by eq. 1-2
    motion: tuple[str, ...] = ("mv",)  # motion stream inputs
    lam: float = 0.4  # eq. 9: weight of the spatial score S_S; the motion score gets 1 - lam
    tau: float = 0.01  # eq. 6 saliency temperature
    logit_scale: float = 100.0  # fixed logit scale on S for the cross-entropy (CLIP's 1/0.01)
    saliency_text: Literal["sentence", "words"] = "sentence"  # E_T of eq. 5: class or its tokens
    prompt: str = "This is a video about {}"  # class-name template (BIKE)
    temporal_layers: int = 6  # blocks per temporal transformer (eq. 3-4)
    temporal_head_width: int = 64  # width per head (BIKE: width / 64 heads)
    max_frames: int = 77  # rows of the position tables (BIKE: 77)
    outer_residual: bool = True  # E' = T(E + P) + E (BIKE); False: eq. 3 as printed
    mv_image: str = "dx_dy_mag"  # MV -> 3-channel image, a key of MV_IMAGES
    mv_gain: float = 4.0  # MV scale into the encoder (+-20 px -> +-2)
    frames: int = 16  # GOP clips per view (I, MV and R each)
    test_crops: int = 1  # spatial views at test (paper: centre crop)
    flip: bool = True  # random horizontal flip in training (paper)


def paper() -> TCARConfig:
    return TCARConfig()


def paper_l() -> TCARConfig:
    """Table 1's "Ours ViT/L": open_clip ``ViT-L-14``."""
    arch = ClipArch(
        embed_dim=768,
        patch_size=14,
        vision_width=1024,
        vision_layers=24,
        text_width=768,
        text_heads=12,
    )
    return TCARConfig(clip=arch)


def paper_words() -> TCARConfig:
    """Reading: BIKE's word-level saliency (see the ``saliency_text`` choice above)."""
    return TCARConfig(saliency_text="words")


def tiny() -> TCARConfig:
    arch = ClipArch(
        embed_dim=32,
        image_size=64,
        vision_width=64,
        vision_layers=2,
        vision_head_width=32,
        text_width=32,
        text_heads=2,
        text_layers=1,
        context_length=16,
    )
    return TCARConfig(
        clip=arch, shared_visual=False, temporal_layers=2, temporal_head_width=16, frames=4
    )


def tiny_words() -> TCARConfig:
    return replace(tiny(), saliency_text="words")


# --------------------------------------------------------------------------- LightningModule


class TCAR(BaseMethod):
    """TCAR-Net on I-frames, residuals and MVs with class-name text guidance."""

    def __init__(
        self,
        config: TCARConfig,
        num_classes: int,
        class_names: Sequence[str],
        optim: OptimConfig | None = None,
    ) -> None:
        super().__init__(config, num_classes, class_names, optim)
        c = config
        if c.mv_image not in MV_IMAGES:
            raise ValueError(f"mv_image {c.mv_image!r} is not one of {sorted(MV_IMAGES)}")
        clip = c.clip.build()
        self.pretrained = [load_into(clip, c.pretrained, "pretrained")]
        visual_path = resolve(c.pretrained_visual, "pretrained_visual")
        visual = read_checkpoint(visual_path) if visual_path is not None else None
        if visual is not None:
            # a visual-only state dict, a whole CLIP or BIKE's checkpoint: its visual tower
            self.pretrained.append(
                load_into(clip.visual, visual_path, "pretrained_visual", others_ok=True)
            )
        prompts = [class_prompt(name, c.prompt) for name in self.class_names]
        tokens = open_clip.tokenize(prompts, context_length=c.clip.context_length)  # (C, L)
        streams = {
            "spatial": tuple(Modality(m) for m in c.spatial),
            "motion": tuple(Modality(m) for m in c.motion),
        }
        self.net = TCARNet(
            clip.visual,
            ClipTextTower(clip),
            tokens.to(clip.token_embedding.weight.device),
            streams,
            {"spatial": c.lam, "motion": 1.0 - c.lam},
            embed_dim=c.clip.embed_dim,
            shared_visual=c.shared_visual,
            temporal_layers=c.temporal_layers,
            temporal_head_width=c.temporal_head_width,
            max_frames=c.max_frames,
            outer_residual=c.outer_residual,
            quick_gelu=c.clip.quick_gelu,
            saliency_text=c.saliency_text,
            tau=c.tau,
            logit_scale=c.logit_scale,
            mv_image=c.mv_image,
            mv_gain=c.mv_gain,
        )
        self.freeze(self.net.encoders, self.net.text)
        if visual is not None and "temporal" in visual.extra:
            self.pretrained.append(self._load_temporal(visual))

    def _load_temporal(self, visual: Loaded) -> dict[str, Any]:
        """BIKE's temporal transformer (``fusion_model_state_dict``) into both of ours,
        tensor by tensor where the shapes match (BIKE's names renamed to ours)."""
        state = bike_temporal_state(visual.extra["temporal"])
        record: dict[str, Any] = {"option": "pretrained_visual", "part": "temporal transformers"}
        for stream, module in self.net.temporal.items():
            fitted, report = fit(state, module, visual.layout)
            module.load_state_dict(fitted, strict=False)
            record[stream] = {"loaded": len(fitted), "shape_mismatch": len(report.mismatched)}
        return record

    def weight_target(self, option: str, path: Path | None = None) -> nn.Module:
        """What ``option``'s tensors fill: a whole CLIP (``pretrained``), one visual tower
        (shaped by the config whatever ``path`` holds, as a run builds them)."""
        if option == "pretrained":
            return self.config.clip.build()
        return next(iter(self.net.encoders.values()))

    def head_modules(self) -> list[str]:  # the class-name text buffers it classifies against
        return ["net.tokens", "net.class_embeddings", "net.word_embeddings"]

    @property
    def data_spec(self) -> DataSpec:
        c = self.config
        sampling = PAPER_SAMPLINGS["tcar16"][0]
        return DataSpec(
            modalities=self.net.modalities,
            sampling=replace(sampling, num_positions=c.frames, test_crops=c.test_crops),
            size=c.clip.image_size,
            flip=c.flip,
            normalization=Normalization(rgb_mean=OPENAI_DATASET_MEAN, rgb_std=OPENAI_DATASET_STD),
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(batch)  # (B, num_classes)

    @classmethod
    def default_optim(cls) -> OptimConfig:
        # Sec. 4.2: AdamW 5e-5, betas (0.9, 0.999), wd 0.2, 5 warm-up epochs, cosine, 20 epochs
        return OptimConfig(
            optimizer="adamw",
            lr=5e-5,
            weight_decay=0.2,
            betas=(0.9, 0.999),
            schedule="cosine",
            warmup_epochs=5,
            epochs=20,
        )

    @classmethod
    def pretrained_fixture(cls, config: TCARConfig, directory) -> dict[str, str]:
        """Write an open_clip state dict of ``config.clip``; return the override that loads it."""
        path = directory / "open_clip_tiny.pt"
        torch.save(config.clip.build().state_dict(), path)
        return {"pretrained": str(path)}


def bike_temporal_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """BIKE's ``video_header`` names -> ours (``transformer.resblocks`` -> ``blocks``,
    ``frame_position_embeddings`` -> ``position``, ``mlp.c_fc``/``c_proj`` -> ``mlp.0``/``2``)."""
    renames = (
        ("transformer.resblocks.", "blocks."),
        ("frame_position_embeddings.", "position."),
        (".mlp.c_fc.", ".mlp.0."),
        (".mlp.c_proj.", ".mlp.2."),
    )
    out = {}
    for key, value in state.items():
        for old, new in renames:
            key = key.replace(old, new)
        out[key] = value
    return out


WEIGHTS = (
    Checkpoint(
        option="pretrained",
        name="CLIP ViT-B/16",
        publisher="OpenAI",
        source="github.com/openai/CLIP (ViT-B-16.pt); open_clip 'ViT-B-16' pretrained='openai'",
        layout="openai-torchscript",
        serves="Table 1 'Ours ViT/B', Table 3 PEFT row, Table 4 'CLIP' (text tower, towers' init)",
        target="clip",
        note="an open_clip state dict of the same weights loads too; paper_l: ViT-L/14. The "
        "paper names CLIP ViT-B/32's text encoder; the preset uses ViT-B/16's (same width)",
    ),
    Checkpoint(
        option="pretrained_visual",
        name="BIKE ViT-B/16 Kinetics-400 (k400-vitb-16-f8x224)",
        publisher="Wu et al. (BIKE, CVPR 2023)",
        source="github.com/whwu95/BIKE model zoo",
        layout="bike",
        serves="Table 1 'Ours ViT/B', Table 4 'K400' (74.3 HMDB-51)",
        target="visual tower",
        note="visual tower into every encoder; BIKE's temporal transformer into ours where the "
        "shapes match",
    ),
)


register_method(
    "tcar",
    TCAR,
    TCARConfig,
    {
        "paper": paper,
        "paper_l": paper_l,
        "paper_words": paper_words,
        "tiny": tiny,
        "tiny_words": tiny_words,
    },
    "TCAR-Net: frozen CLIP on I/R/MV, temporal transformers, text-guided saliency (I+MV+R+text)",
    WEIGHTS,
    readings={
        "paper_words": "eq. 5-7's saliency over every word of the class prompt, as BIKE's "
        "parameter-free mechanism [10] the paper names, instead of one embedding per class "
        "(E_T in R^{N_c x D}, as the equations write it)"
    },
)
