"""Temporal-prompt CLIP with Chinese label co-supervision (Electronics, MDPI, 2024).

Paper: CLIP adapted to video action recognition with temporal prompts, a prompt
reparameterization encoder and a Chinese label dictionary (``papers/temporal_prompt_clip.txt``;
the extracted text has no title; keywords: action recognition, CLIP, dual semantic
supervision, temporal prompt reparameterization). No public implementation exists.

Frozen: the whole CLIP ViT-B/16 (open_clip: visual tower, English text tower, projections,
logit scale) and the Chinese-CLIP RoBERTa-wwm-base text encoder with its projection
(Section 4.1.2: "kept all encoders' pre-trained parameters constant during training").
Trained: per frozen visual layer a temporal-prompt generator (eq. 8-11: CLS projection
``P_cls``, LayerNorm + MHSA over the frames' CLS tokens, ``S`` global prompts,
``T`` interchange prompts) and a reparameterization encoder ``R(P) = beta(P) + P``
(eq. 12, R(2+1)D-style ST-block), plus the learnable temporal position embedding of eq. 1.

Paper preset: Table 6 "Ours", ViT-B/16, T = 16, S = 8 (Section 4.2.3), HMDB51/UCF101
fully supervised, 4 clips x 3 crops at test (Section 4.4, Table 8). It is an RGB method
(every-frame decoded RGB, ``PAPER_SAMPLINGS["tpclip16"]``, the suite's pixel-domain
reference); ``modality: iframe`` runs the same network on the I-frame of each sampled
frame's GOP instead (no decoding of P-frames). Tiny preset: the same code at 64 px
(2-layer width-64 ViT with 16-px patches, 1-layer width-32 CLIP text tower with 16 tokens,
2-layer Chinese text encoder, T = 8, S = 4, beta width 32), random weights. Frozen random
text towers give nearly collinear class embeddings, so nothing can be learned against them;
on the synthetic dataset ``configs/tpclip/synthetic.yaml`` sets ``pretrained`` and
``pretrained_cn`` to ``synthetic``: a tiny CLIP and Chinese text tower that the harness
pretrains contrastively on captioned MV images of a disjoint synthetic corpus
(``cvbench/pretrain.py``), loaded through the same options as real weights.
On the synthetic dataset it still stays at chance: a frozen tower pretrained on MV images, on
captioned positions or on regressing the object's position, and even a fully trained tower,
do not learn the motion from 8 RGB frames of 15 training videos per class, and neither does
a 3D CNN trained from scratch on the same views (``cvbench control``, README "Results").

Tunable parameters (paper 54.2M, Table 6): the prompt generators of eq. 8-11 are fixed by
the equations, 12 x 2.97M = 35.68M (``P_cls`` D^2 + D, LayerNorm 2D, MHSA 4D^2 + 4D,
global prompts S x D, interchange prompts T x D), plus 12.3K of temporal embedding. The
paper gives no size for ``beta``; a bottleneck of D/2 = 384 (LayerNorm, down-projection,
(1x3) spatial + (3x1) temporal convolution, up-projection) is 12 x 1.48M = 17.74M, so the
``paper`` preset has 53.42M tunable, 1.4% under 54.2M. Table 6's own percentages point to
that count rather than 54.2M: "106.8 (+100%)" for BIKE and "131.5 (+147%)" for X-CLIP
imply 53.27-53.35M; 53.42M gives +100% and +146%, 54.2M would give +97% and +143%. The
difference 54.2 - 53.42 = 0.78M is, to 0.01M, two 768 x 512 matrices (CLIP's visual
projection ``P_proj`` and Chinese-CLIP's text projection, 0.786M): with
``tune_projections: true`` the count is 54.21M. Section 4.1.2 says every pre-trained
parameter is frozen, so the preset keeps them frozen; both readings are tested.
Total 305.1M (CLIP ViT-B/16 149.6M, Chinese RoBERTa-wwm-base + projection 102.1M).

Cost (the paper reports none): 296.1 GMACs per view (16 frames at 224: 16 x 17.56 for the
frozen ViT, +7.1 for beta, +7.1 for the prompts in attention (keys, values, scores), +0.6
for the prompt generators, +0.4 for the class-conditional scores of 101 classes), 12 views. The frozen text encoders run once per class list (88 GMACs for the
101 UCF101 labels), not per view: their outputs are kept as buffers.

Choices where the paper is silent or ambiguous (all configurable unless noted):

* Global prompts ``G`` (written R^{T x S x D}) are S x D per layer, shared by every frame;
  interchange prompts ``I`` are T x D per layer and ``I_hat = I + X_cls`` (eq. 9) is the
  same T tokens for every frame: each frame sees every frame's projected CLS token.
  Per frame the prompt is ``[c_t, g_1..g_S, i_hat_1..i_hat_T]``, 1 + S + T tokens (eq. 11).
* ``beta`` (Figure 4, not in the text): LayerNorm -> Linear(D, r) -> GELU -> ST-block ->
  GELU -> Linear(r, D), r = ``reparam_width``. The ST-block is R(2+1)D-style on the
  (frames x prompt tokens) grid: a (1 x k) convolution along the prompt tokens ("spatial";
  prompts are a 1-D sequence, so the 2-D spatial kernel degenerates to 1 x k), GELU, a
  (k x 1) convolution along the frames (temporal). One ``beta`` per layer (``share_reparam``
  false); the residual of eq. 12 is ``reparam_residual`` (Table 4 ablates it).
* Prompts are regenerated at every layer from that layer's input CLS tokens and join only
  the attention's keys/values (eq. 13); eq. 14 drops their outputs before the MLP, so their
  queries are never computed (the result for the frame tokens is identical).
* The temporal position embedding of eq. 1 is added once, at the input, initialised to 0.
* Word-query frame weighting (eq. 6-7): the "words" are the CLIP text tokens of the label
  inside the prompt (``word_tokens: label``; ``sequence`` = all 77 positions, as BIKE),
  taken after ``ln_final`` and ``text_projection``; frames and words are L2-normalised
  before the dot product (with tau = 0.01 raw dot products would saturate the softmax).
  The weighting is class-conditional: for each class k the video embedding uses class k's
  words, so a video has one embedding per class (B, K, E), as BIKE's concept spotting. The
  English words weight the frames for both branches.
* English template "This is a video about {}." (Table 5, with its full stop); class names
  are spelt as words ("ApplyEyeMakeup" -> "apply eye makeup", "brush_hair" -> "brush hair").
  Chinese branch: the dictionary entry as it is (``template_cn: "{}"``), the [CLS] output
  of the Chinese encoder through its projection (as Chinese-CLIP).
* Chinese label dictionary: ``methods/tpclip_labels_zh.yaml`` (our translations for UCF101,
  HMDB51 and the synthetic classes; the paper's is unpublished). A class without an entry
  uses its English words (``untranslated: english``, with a warning) or is an error.
* Loss: eq. 15-17 as written (batch-wise symmetric cross-entropy over videos and label
  texts, every same-label pair a positive), tau = 0.01 for all temperatures (Section
  4.1.2). Inference: ``S = lambda S_en + (1 - lambda) S_cn`` (eq. 18), lambda not given:
  0.5; logits are ``S / tau``.
* Pixel normalisation: CLIP's mean/std. Training augmentation: the suite's TSN multi-scale
  crop and flip in ``paper``; Table 2's RandomSizedCrop and grayscale are the reading
  ``paper_rrc_gray`` (below).
* Learning rate: one lr for everything trained (Table 2's 5e-6), ``paper``; 10x for the
  new parts is the reading ``paper_lr10`` (below).
* Weights: ``pretrained`` is an open_clip state dict of ViT-B/16 with QuickGELU (OpenAI's
  weights in open_clip format, e.g. ``open_clip_pytorch_model.bin``; OpenAI's TorchScript
  ``.pt`` must be converted first). ``pretrained_cn`` is a Hugging Face Chinese-CLIP
  directory (config.json, weights, vocab.txt; only ``text_model.*`` and
  ``text_projection`` are read), loaded with ``local_files_only``; the text tower takes
  its shape from that config.json (the ``cn_*`` fields size the random tower only), and
  so does ``cvbench weights check --option pretrained_cn``. With ``"none"`` the
  Chinese encoder is random (RoBERTa-wwm-base shape, vocabulary 21128) and the tokenizer is
  the NO-WEIGHTS FALLBACK: a BERT WordPiece tokenizer whose vocabulary is built from the
  characters of the label dictionary and of the class texts (Chinese BERT tokenizes Chinese
  character by character, so only the vocabulary differs from the real one).

Readings (presets beside ``paper``, each with a ``tiny_*`` counterpart that trains on the
synthetic set; the network, its 305.1M / 53.42M parameters and its 296.1 GMACs x 12 views
are those of ``paper`` in both, ``results/runs/cost-tpclip-paper_*.json``):

* ``paper_lr10`` (``new_module_lr_mult: 10``). Table 2 gives one learning rate, 5e-6 (4e-6
  few-shot), for training that touches no pre-trained weight: all 53.4M tuned parameters
  are freshly initialised. 5e-6 is a rate for fine-tuning pre-trained weights; X-CLIP,
  whose K-shot protocol the paper follows (Sec. 4.3) and whose fully fine-tuned CLIP it
  compares with, trains its newly initialised modules at 10x its base lr (NOTES.md
  "Learning rates for new modules"), so the paper's 5e-6 may be the base of such a rule.
  ``paper`` keeps the printed lr for every parameter (what the text says); ``paper_lr10``
  puts the temporal embedding, the prompt generators and the betas in a group "new" at
  10 x the base lr (5e-5 fully supervised, 4e-5 few-shot) and trained pre-trained
  parameters (the two projections with ``tune_projections``) in a group "pretrained" at
  the base lr; a projection whose tower is random (``pretrained*: none``) is new. The run
  record lists the groups with their lrs (``param_groups``). At ``new_module_lr_mult: 1``
  the optimiser has the one group of every method, as before.
* ``paper_rrc_gray`` (``train_crop: random_resized``, ``grayscale_p: 0.2``). Table 2's
  augmentation reads "Training resize: RandomSizedCrop, crop 224, Random Flip 0.5, Gray
  Scale 0.2" (torchvision's / mmaction's RandomResizedCrop); ``paper`` uses the suite's TSN multi-scale
  crop (``DataSpec.scale_jitter``) as every other method does, so that the methods differ
  in the network, not in the augmentation, and keeps the seeded baselines. This reading
  draws the Inception crop (area 8-100 % of the frame, aspect 3/4-4/3 log-uniform, 10
  tries then a centre crop; datamodules/transforms.py) and turns a clip's frames to ITU-R
  601 luma with probability 0.2 (the same decision for every frame); the flip (0.5) and
  the test views are unchanged.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
import yaml
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from open_clip.tokenizer import SimpleTokenizer
from torch import nn

from datamodules.contract import DataSpec, Modality, Normalization, TrainCrop
from datamodules.sampling import PAPER_SAMPLINGS
from methods.base import BaseMethod, OptimConfig, ParamGroup
from methods.registry import register_method
from methods.weights import (
    Checkpoint,
    Loaded,
    WeightsError,
    is_random,
    load_into,
    load_state_dict,
    random_record,
    resolve,
)

BUILTIN = "builtin"  # label_dictionary value: the YAML shipped beside this module
LABELS_FILE = "tpclip_labels_zh.yaml"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# --------------------------------------------------------------------------- labels


def label_key(name: str) -> str:
    """Look-up key of a class name: case, spaces, underscores and hyphens ignored."""
    return re.sub(r"[\s_\-]", "", name).lower()


def english_label(name: str) -> str:
    """A class name as words: "ApplyEyeMakeup" -> "apply eye makeup", "brush_hair" -> "brush hair"."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ")
    return " ".join(spaced.split()).lower()


def load_label_dictionary(source: str = BUILTIN) -> dict[str, dict[str, str]]:
    """The Chinese label dictionary, by dataset: ``{dataset: {class name: Chinese}}``."""
    if source == BUILTIN:
        text = importlib.resources.files("methods").joinpath(LABELS_FILE).read_text("utf-8")
        where = LABELS_FILE
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"label_dictionary: file {path} not found")
        text, where = path.read_text("utf-8"), str(path)
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{where}: expected {{dataset: {{class name: Chinese label}}}}")
    return {str(k): {str(n): str(z) for n, z in v.items()} for k, v in data.items()}


def chinese_lookup(dictionary: dict[str, dict[str, str]]) -> dict[str, str]:
    """Every dataset's entries merged by :func:`label_key`; conflicting entries are an error."""
    merged: dict[str, str] = {}
    for dataset, entries in dictionary.items():
        for name, chinese in entries.items():
            key = label_key(name)
            if merged.get(key, chinese) != chinese:
                raise ValueError(
                    f"label dictionary: {name!r} ({dataset}) is {chinese!r} but another "
                    f"dataset has {merged[key]!r}"
                )
            merged[key] = chinese
    return merged


def character_vocabulary(texts: Sequence[str]) -> list[str]:
    """A BERT vocabulary covering ``texts`` character by character (the no-weights fallback).

    BERT's pre-tokenizer splits CJK characters into single tokens; any other character
    also gets its WordPiece continuation form ``##c`` so Latin words split into letters.
    """
    chars = sorted({c for text in texts for c in text.lower() if not c.isspace()})
    cjk = {c for c in chars if _is_cjk(c)}
    return [*SPECIAL_TOKENS, *chars, *(f"##{c}" for c in chars if c not in cjk)]


def _is_cjk(char: str) -> bool:
    cp = ord(char)
    return 0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0xF900 <= cp <= 0xFAFF


# --------------------------------------------------------------------------- blocks


class TemporalPrompts(nn.Module):
    """Eq. 8-11: temporal prompts of one layer from the frames' CLS tokens.

    Per frame t: ``[c_t, g_1..g_S, i_1 + x_1, .., i_T + x_T]`` (1 + S + T tokens), where
    ``x = P_cls z_cls`` and ``c = MHSA(LN(x)) + x`` over the T frames of a video.
    """

    def __init__(self, width: int, frames: int, global_prompts: int, heads: int) -> None:
        super().__init__()
        self.frames = frames
        self.cls_proj = nn.Linear(width, width)  # P_cls
        self.norm = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.global_prompts = nn.Parameter(torch.empty(global_prompts, width))  # G
        self.interchange = nn.Parameter(torch.empty(frames, width))  # I
        nn.init.trunc_normal_(self.global_prompts, std=0.02)
        nn.init.trunc_normal_(self.interchange, std=0.02)

    @property
    def num_tokens(self) -> int:
        return 1 + self.global_prompts.shape[0] + self.frames

    def forward(self, cls: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, 1+S+T, D)
        b, t, d = cls.shape
        if t != self.frames:
            raise ValueError(f"temporal prompts built for {self.frames} frames, got {t}")
        x = self.cls_proj(cls)  # X_cls (B, T, D)
        h = self.norm(x)
        c = self.attn(h, h, h, need_weights=False)[0] + x  # C (B, T, D)
        g = self.global_prompts.expand(b, t, -1, d)  # (B, T, S, D)
        interchange = (self.interchange + x).unsqueeze(1).expand(b, t, t, d)  # I_hat (B, T, T, D)
        return torch.cat([c.unsqueeze(2), g, interchange], dim=2)  # (B, T, 1+S+T, D)


class STBlock(nn.Module):
    """R(2+1)D-style block on the (frames x prompt tokens) grid: spatial, then temporal."""

    def __init__(self, channels: int, spatial_kernel: int, temporal_kernel: int) -> None:
        super().__init__()
        self.spatial = nn.Conv2d(
            channels, channels, (1, spatial_kernel), padding=(0, spatial_kernel // 2)
        )
        self.act = nn.GELU()
        self.temporal = nn.Conv2d(
            channels, channels, (temporal_kernel, 1), padding=(temporal_kernel // 2, 0)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, P)
        return self.temporal(self.act(self.spatial(x)))


class ReparameterizationEncoder(nn.Module):
    """Eq. 12: ``R(P) = beta(P) + P``, beta a bottleneck around an :class:`STBlock`."""

    def __init__(
        self, width: int, bottleneck: int, spatial_kernel: int, temporal_kernel: int, residual: bool
    ) -> None:
        super().__init__()
        self.residual = residual
        self.norm = nn.LayerNorm(width)
        self.down = nn.Linear(width, bottleneck)
        self.act = nn.GELU()
        self.block = STBlock(bottleneck, spatial_kernel, temporal_kernel)
        self.up = nn.Linear(bottleneck, width)
        for linear in (self.down, self.up):
            nn.init.trunc_normal_(linear.weight, std=0.02)
            nn.init.zeros_(linear.bias)

    def beta(self, prompts: torch.Tensor) -> torch.Tensor:  # (B, T, P, D)
        h = self.act(self.down(self.norm(prompts)))  # (B, T, P, r)
        h = self.block(h.permute(0, 3, 1, 2))  # (B, r, T, P): channels first for the convs
        return self.up(self.act(h.permute(0, 2, 3, 1)))  # (B, T, P, D)

    def forward(self, prompts: torch.Tensor) -> torch.Tensor:  # (B, T, P, D)
        out = self.beta(prompts)
        return out + prompts if self.residual else out


def frame_weights(
    frames: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor, tau: float
) -> torch.Tensor:
    """Eq. 6: ``W[b, k, t] = mean_n softmax_t(<F_bt, w_kn> / tau)`` over class k's words.

    frames (B, T, E), words (K, N, E), word_mask (K, N) bool -> (B, K, T), rows sum to 1.
    """
    f = F.normalize(frames, dim=-1)
    w = F.normalize(words, dim=-1)
    attn = torch.einsum("bte,kne->bknt", f, w).div(tau).softmax(dim=-1)  # (B, K, N, T)
    mask = word_mask.to(attn.dtype)[None, :, :, None]  # (1, K, N, 1)
    return (attn * mask).sum(dim=2) / mask.sum(dim=2).clamp(min=1.0)  # (B, K, T)


def label_contrastive_loss(sim: torch.Tensor, labels: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 15/16: symmetric cross-entropy between a batch's videos and its label texts.

    ``sim[j, k]`` is the cosine of video j and class k. ``m[i, j] = s(T_i, V_j)`` pairs the
    label text of sample i with video j; every same-label pair (``K(i)``) is a positive.
    """
    m = sim[:, labels].t() / tau  # (B texts, B videos)
    same = (labels[:, None] == labels[None, :]).to(m.dtype)  # (B, B), symmetric
    v2t = -(same * m.log_softmax(dim=1)).sum(dim=1) / same.sum(dim=1)  # softmax over videos
    t2v = -(same * m.log_softmax(dim=0)).sum(dim=0) / same.sum(dim=0)  # softmax over texts
    return 0.5 * (v2t.mean() + t2v.mean())


# --------------------------------------------------------------------------- encoders


def build_clip(config: TPCLIPConfig) -> CLIP:
    """open_clip CLIP with the config's dimensions (ViT-B/16 with QuickGELU for the paper)."""
    vision = CLIPVisionCfg(
        layers=config.vision_layers,
        width=config.vision_width,
        head_width=config.vision_head_width,
        patch_size=config.patch_size,
        image_size=config.image_size,
    )
    text = CLIPTextCfg(
        context_length=config.context_length,
        width=config.text_width,
        heads=config.text_heads,
        layers=config.text_layers,
    )
    return CLIP(config.embed_dim, vision, text, quick_gelu=config.quick_gelu)


def _chinese_text_config(config: TPCLIPConfig, vocab_size: int) -> Any:
    from transformers import ChineseCLIPTextConfig

    return ChineseCLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=config.cn_hidden,
        num_hidden_layers=config.cn_layers,
        num_attention_heads=config.cn_heads,
        intermediate_size=config.cn_intermediate,
        max_position_embeddings=config.cn_max_positions,
    )


def chinese_texts(
    config: TPCLIPConfig, class_names: Sequence[str], lookup: dict[str, str] | None = None
) -> list[str]:
    """The Chinese text of each class: its dictionary entry (its English words when it has
    none) in ``template_cn``."""
    if lookup is None:
        lookup = chinese_lookup(load_label_dictionary(config.label_dictionary))
    return [
        config.template_cn.format(lookup.get(label_key(n), english_label(n))) for n in class_names
    ]


def chinese_vocabulary(config: TPCLIPConfig, texts: Sequence[str] = ()) -> list[str]:
    """A character vocabulary for a Chinese-CLIP directory made here (tests, synthetic
    pretraining): the label dictionary, ``texts`` and lower-case ASCII."""
    lookup = chinese_lookup(load_label_dictionary(config.label_dictionary))
    return character_vocabulary([*lookup.values(), *texts, "abcdefghijklmnopqrstuvwxyz0123456789"])


def chinese_clip_config(config: TPCLIPConfig, vocab_size: int) -> Any:
    """A whole Hugging Face Chinese-CLIP config whose text tower has ``config``'s shape (what
    ``pretrained_cn`` reads); the vision side, never used here, is the smallest valid one."""
    from transformers import ChineseCLIPConfig

    return ChineseCLIPConfig(
        text_config=_chinese_text_config(config, vocab_size).to_dict(),
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 16,
        },
        projection_dim=config.embed_dim,
    )


def save_chinese_clip(model: nn.Module, vocab: Sequence[str], directory: Path) -> None:
    """A Chinese-CLIP directory as ``pretrained_cn`` reads it: weights, config, vocab.txt."""
    model.save_pretrained(str(directory))
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")


def _chinese_clip_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """The weights of a Hugging Face model directory (single file or sharded)."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (directory / name).is_file():
            return load_state_dict(directory / name)
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (directory / index).is_file():
            shards = sorted(set(json.loads((directory / index).read_text())["weight_map"].values()))
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(load_state_dict(directory / shard))
            return state
    raise WeightsError(
        f"pretrained_cn: no model.safetensors or pytorch_model.bin in {directory}. Set "
        f"pretrained_cn to a Chinese-CLIP directory, or to 'none' for random weights"
    )


def chinese_clip_text_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The text tower of a Chinese-CLIP state dict under :class:`ChineseTextBranch`'s names:
    ``text_model.*`` -> ``encoder.*``, ``text_projection.weight`` -> ``projection.weight``.
    Chinese-CLIP has no pooler; older checkpoints also store the position_ids buffer."""
    text = {
        f"encoder.{k.removeprefix('text_model.')}": v
        for k, v in state.items()
        if k.startswith("text_model.") and ".pooler." not in k and not k.endswith("position_ids")
    }
    if "text_projection.weight" in state:
        text["projection.weight"] = state["text_projection.weight"]
    return text


class ChineseTextBranch(nn.Module):
    """Chinese-CLIP's text tower: RoBERTa-wwm encoder, [CLS] output, linear projection."""

    def __init__(self, config: TPCLIPConfig, texts: Sequence[str], load: bool = True) -> None:
        """With ``pretrained_cn`` a directory, the tower has the shape of the directory's
        config.json (the ``cn_*`` fields are not read) and its weights unless ``load`` is
        False (``cvbench weights check``: the shape a run would build, nothing read, no
        refusal; :meth:`conflicts` says what a run would refuse)."""
        super().__init__()
        from transformers import BertTokenizer, ChineseCLIPConfig, ChineseCLIPTextModel

        directory = resolve(config.pretrained_cn, "pretrained_cn", kind="directory")
        if directory is None:
            vocab = character_vocabulary(texts)
            if len(vocab) > config.cn_vocab_size:
                raise ValueError(
                    f"cn_vocab_size {config.cn_vocab_size} < {len(vocab)} fallback tokens"
                )
            self.tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(vocab)})
            text_config = _chinese_text_config(config, config.cn_vocab_size)
            projection_dim, state = config.embed_dim, None
            self.record = {
                **random_record("pretrained_cn", config.pretrained_cn),
                "tokenizer": f"character fallback, {len(vocab)} tokens",
            }
        else:
            if not (directory / "vocab.txt").is_file():
                raise WeightsError(f"pretrained_cn: no vocab.txt in {directory}")
            kind = json.loads((directory / "config.json").read_text()).get("model_type")
            if kind != "chinese_clip":  # transformers would read default sizes into it
                raise WeightsError(
                    f"pretrained_cn: {directory} holds a {kind!r} model, not a whole "
                    "Chinese-CLIP model ('chinese_clip', with its text projection)"
                )
            full = ChineseCLIPConfig.from_pretrained(str(directory), local_files_only=True)
            text_config, projection_dim = full.text_config, full.projection_dim
            self.tokenizer = BertTokenizer.from_pretrained(str(directory), local_files_only=True)
            state = _chinese_clip_state_dict(directory) if load else None
            self.record = {"option": "pretrained_cn", "weights": str(directory), "loaded": False}
        self.max_length = text_config.max_position_embeddings
        self.encoder = ChineseCLIPTextModel(text_config, add_pooling_layer=False)
        self.projection = nn.Linear(text_config.hidden_size, projection_dim, bias=False)
        if load and projection_dim != config.embed_dim:
            raise ValueError(self.conflicts(config.embed_dim)[0])
        if state is not None:
            self.record = self._load(state, directory)

    def conflicts(self, embed_dim: int) -> list[str]:
        """What a run would refuse or fail on in this tower, besides its keys: a projection
        to another width than CLIP's embedding (refused), and token ids beyond the
        embedding table (vocab.txt longer than the config's vocab_size)."""
        found = []
        if self.projection.out_features != embed_dim:
            found.append(
                f"pretrained_cn projects to {self.projection.out_features}, "
                f"CLIP's embedding is {embed_dim}"
            )
        rows = self.encoder.config.vocab_size
        if len(self.tokenizer) > rows:
            found.append(
                f"pretrained_cn: vocab.txt has {len(self.tokenizer)} tokens, the text "
                f"encoder's embedding {rows} rows"
            )
        return found

    def _load(self, state: dict[str, torch.Tensor], directory: Path) -> dict[str, Any]:
        text = chinese_clip_text_state(state)
        encoder = {
            k.removeprefix("encoder."): v for k, v in text.items() if k.startswith("encoder.")
        }
        if "projection.weight" not in text:
            raise WeightsError(f"pretrained_cn: {directory} has no text_projection.weight")
        result = self.encoder.load_state_dict(encoder, strict=False)
        missing = [k for k in result.missing_keys if not k.endswith("position_ids")]
        if missing or result.unexpected_keys:
            raise WeightsError(
                f"pretrained_cn: {directory} does not fit the text encoder "
                f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})"
            )
        self.projection.load_state_dict({"weight": text["projection.weight"]})
        return {
            "option": "pretrained_cn",
            "weights": str(directory),
            "tensors": len(encoder) + 1,
            "tokenizer": f"vocab.txt, {len(self.tokenizer)} tokens",
        }

    @property
    def unk(self) -> int:
        return self.tokenizer.unk_token_id

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text ([CLS] ... [SEP]), unpadded."""
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]

    def trunk(self, ids: Sequence[Sequence[int]], device: torch.device) -> torch.Tensor:
        """[CLS] outputs (K, H), as Chinese-CLIP. Texts of equal length run together, so no
        padding mask is needed (and none is evaluated, which the meta device could not do)."""
        out: list[torch.Tensor | None] = [None] * len(ids)
        for length in sorted({len(t) for t in ids}):
            group = [k for k, t in enumerate(ids) if len(t) == length]
            batch = torch.tensor([ids[k] for k in group], device="cpu").to(device)  # (G, length)
            cls = self.encoder(input_ids=batch).last_hidden_state[:, 0]  # (G, H)
            for row, k in enumerate(group):
                out[k] = cls[row]
        return torch.stack(out)  # (K, H)


# --------------------------------------------------------------------------- the network


class TemporalPromptCLIP(nn.Module):
    """Frozen CLIP ViT with reparameterized temporal prompts, English + Chinese label texts."""

    def __init__(self, config: TPCLIPConfig, class_names: Sequence[str]) -> None:
        super().__init__()
        self.config = c = config
        self.clip = build_clip(c)
        self.load_records = [load_into(self.clip, c.pretrained, "pretrained", strict=True)]
        visual = self.clip.visual
        if visual.proj is None or visual.attn_pool is not None or visual.pool_type != "tok":
            raise ValueError("tpclip needs a CLS-token ViT with a projection")
        blocks = visual.transformer.resblocks
        if not all(block.attn.batch_first for block in blocks):
            raise ValueError("tpclip expects batch-first attention blocks")

        # label texts, English for CLIP and Chinese from the dictionary
        self.english = [english_label(n) for n in class_names]
        lookup = chinese_lookup(load_label_dictionary(c.label_dictionary))
        self.untranslated = [n for n in class_names if label_key(n) not in lookup]
        if self.untranslated and c.untranslated == "error":
            raise KeyError(f"no Chinese label for {self.untranslated} in {c.label_dictionary}")
        if self.untranslated:
            warnings.warn(
                f"tpclip: no Chinese label for {len(self.untranslated)} classes (first: "
                f"{', '.join(self.untranslated[:5])}): their English words are used",
                stacklevel=2,
            )
        self.chinese = chinese_texts(c, class_names, lookup)
        dictionary_texts = list(lookup.values())
        self.cn = ChineseTextBranch(c, [*dictionary_texts, *self.chinese])
        self.load_records.append(self.cn.record)

        # token ids are made on the CPU even when the model is built on the meta device
        with torch.device("cpu"):
            tokenizer = SimpleTokenizer(context_length=c.context_length)
            tokens = tokenizer([c.template_en.format(name) for name in self.english])  # (K, L)
            mask = _label_token_mask(tokenizer, c, self.english)  # (K, L)
        self.eot = tokens.argmax(dim=-1).tolist()  # the end-of-text token has the highest id
        # The text transformer is causal: positions up to the last EOT never see what
        # follows, so "label" words and EOT features need only that prefix.
        length = c.context_length if c.word_tokens == "sequence" else max(self.eot) + 1
        device = self.clip.token_embedding.weight.device
        self.register_buffer("en_tokens", tokens[:, :length].to(device), persistent=False)
        self.register_buffer("en_word_mask", mask[:, :length].to(device), persistent=False)
        self.cn_ids = self.cn.tokenize(self.chinese)
        unknown = [
            t for t, ids in zip(self.chinese, self.cn_ids, strict=True) if self.cn.unk in ids
        ]
        if unknown:
            warnings.warn(
                f"tpclip: characters missing from the vocabulary in {unknown}", stacklevel=2
            )
        # frozen encoders' outputs before the projections (K, L, W) and (K, H): computed
        # here, again after a state dict is loaded, and moved with the module
        self.register_buffer("en_trunk", torch.empty(0), persistent=False)
        self.register_buffer("cn_trunk", torch.empty(0), persistent=False)
        self.refresh_text()

        # tunable parts
        width = c.vision_width
        self.temporal_embedding = nn.Parameter(torch.zeros(c.frames, width))  # e_temporal
        self.prompts = nn.ModuleList(
            TemporalPrompts(width, c.frames, c.global_prompts, c.prompt_heads) for _ in blocks
        )
        self.reparam = nn.ModuleList(
            ReparameterizationEncoder(
                width, c.reparam_width, c.spatial_kernel, c.temporal_kernel, c.reparam_residual
            )
            for _ in range(1 if c.share_reparam else len(blocks))
        )

    def frozen_modules(self) -> list[nn.Module]:
        return [self.clip, self.cn]

    def projections(self) -> list[nn.Parameter]:
        """CLIP's visual projection and the Chinese text projection (``tune_projections``)."""
        return [self.clip.visual.proj, self.cn.projection.weight]

    def fresh_parameters(self) -> list[nn.Parameter]:
        """What no checkpoint initialises: the temporal embedding, the prompt generators and
        the betas, plus a projection whose tower has random weights (option ``none``)."""
        new = [self.temporal_embedding, *self.prompts.parameters(), *self.reparam.parameters()]
        c = self.config
        random_tower = (is_random(c.pretrained), is_random(c.pretrained_cn))
        return new + [p for p, r in zip(self.projections(), random_tower, strict=True) if r]

    # ------------------------------------------------------------------ video

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:  # (B, T, 3, H, W) -> (B, T, E)
        visual = self.clip.visual
        b, t = frames.shape[:2]
        x = visual.conv1(frames.flatten(0, 1))  # (B*T, D, h, w)
        x = x.flatten(2).transpose(1, 2)  # (B*T, N, D)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)  # (B*T, 1+N, D)
        n, d = x.shape[1:]
        x = x.view(b, t, n, d) + self.temporal_embedding[:, None].to(x.dtype)  # eq. 1
        x = visual.ln_pre(x.flatten(0, 1))  # (B*T, 1+N, D)
        for i, (block, make_prompts) in enumerate(
            zip(visual.transformer.resblocks, self.prompts, strict=True)
        ):
            prompts = make_prompts(x[:, 0].view(b, t, d))  # (B, T, P, D), eq. 8-11
            prompts = self.reparam[i % len(self.reparam)](prompts)  # P_R, eq. 12
            q = block.ln_1(x)  # (B*T, 1+N, D)
            kv = torch.cat([q, block.ln_1(prompts.flatten(0, 1))], dim=1)  # (B*T, 1+N+P, D)
            x = x + block.ls_1(block.attn(q, kv, kv, need_weights=False)[0])  # eq. 13
            x = x + block.ls_2(block.mlp(block.ln_2(x)))  # eq. 14, prompts dropped
        pooled = visual.ln_post(x[:, 0]) @ visual.proj  # (B*T, E), eq. 3
        return pooled.view(b, t, -1)

    # ------------------------------------------------------------------ text

    @torch.inference_mode(False)  # ordinary tensors even when first called in a test step,
    @torch.no_grad()  # so that training may use them afterwards
    def refresh_text(self) -> None:
        """Run the frozen text encoders over the class texts (once; they never change)."""
        clip = self.clip
        modes = [(m, m.training) for m in (clip, self.cn)]
        for module, _ in modes:
            module.eval()  # dropout off (RoBERTa has some) even before the method freezes them
        device = clip.token_embedding.weight.device
        length = self.en_tokens.shape[1]
        x = clip.token_embedding(self.en_tokens.to(device)) + clip.positional_embedding[:length]
        x = clip.transformer(x, attn_mask=clip.attn_mask[:length, :length])  # (K, L, W)
        self.en_trunk = clip.ln_final(x)
        self.cn_trunk = self.cn.trunk(self.cn_ids, device)  # (K, H)
        for module, training in modes:
            module.train(training)
        self._text_stale = False

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._text_stale = True  # new encoder weights: recompute the text features
        super()._load_from_state_dict(*args, **kwargs)

    def text_features(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(eps_T (K, E), words (K, L, E), word mask (K, L), eps_C (K, E))."""
        if self._text_stale:
            self.refresh_text()
        projected = self.en_trunk @ self.clip.text_projection  # (K, L, E)
        rows = torch.arange(len(self.eot), device=projected.device)
        eot = torch.tensor(self.eot, device=projected.device)
        eps_t = projected[rows, eot]  # (K, E), at the end-of-text token
        mask = self.en_word_mask.to(projected.device)
        if self.config.word_tokens == "sequence":
            mask = torch.ones_like(mask)
        return eps_t, projected, mask, self.cn.projection(self.cn_trunk)

    # ------------------------------------------------------------------ scores

    def similarities(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosine of the class-conditional video embeddings with English and Chinese labels,
        each (B, K)."""
        feats = self.encode_video(frames)  # (B, T, E)
        eps_t, words, mask, eps_c = self.text_features()
        weights = frame_weights(feats, words, mask, self.config.tau)  # (B, K, T)
        video = F.normalize(torch.einsum("bkt,bte->bke", weights, feats), dim=-1)  # eq. 7
        s_en = (video * F.normalize(eps_t, dim=-1)).sum(-1)  # (B, K)
        s_cn = (video * F.normalize(eps_c, dim=-1)).sum(-1)  # (B, K)
        return s_en, s_cn

    def fuse(self, s_en: torch.Tensor, s_cn: torch.Tensor) -> torch.Tensor:
        """Eq. 18 as logits: (lambda S_en + (1 - lambda) S_cn) / tau."""
        lam = self.config.fusion_lambda
        return (lam * s_en + (1.0 - lam) * s_cn) / self.config.tau

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # (B, T, 3, H, W) -> (B, K)
        return self.fuse(*self.similarities(frames))


def _label_token_mask(
    tokenizer: SimpleTokenizer, config: TPCLIPConfig, labels: Sequence[str]
) -> torch.Tensor:
    """(K, L) bool: positions of each label's own BPE tokens inside its templated prompt."""
    prefix = config.template_en.split("{}")[0]
    start = 1 + len(tokenizer.encode(prefix))  # after the start-of-text token
    mask = torch.zeros(len(labels), config.context_length, dtype=torch.bool)
    for k, label in enumerate(labels):
        stop = min(start + len(tokenizer.encode(label)), config.context_length - 1)
        mask[k, start:stop] = True
    return mask


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class TPCLIPConfig:
    # frozen CLIP (open_clip); paper: ViT-B/16
    pretrained: str = "none"  # open_clip state dict of CLIP ViT-B/16 (QuickGELU), or "none"
    image_size: int = 224  # input side (crop size)
    patch_size: int = 16  # ViT patch side
    vision_width: int = 768  # D
    vision_layers: int = 12  # L, every layer gets temporal prompts
    vision_head_width: int = 64  # attention head width of the visual tower
    embed_dim: int = 512  # joint embedding dimension (D tilde)
    text_width: int = 512  # CLIP text transformer width
    text_layers: int = 12  # CLIP text transformer depth
    text_heads: int = 8  # CLIP text transformer heads
    context_length: int = 77  # CLIP text context (BPE tokens)
    quick_gelu: bool = True  # OpenAI CLIP weights were trained with QuickGELU
    # frozen Chinese text encoder; paper: Chinese-CLIP RoBERTa-wwm-base
    pretrained_cn: str = (
        "none"  # Hugging Face Chinese-CLIP directory, or "none" (random + fallback)
    )
    cn_hidden: int = 768  # hidden size, used only with pretrained_cn "none"
    cn_layers: int = 12  # layers, pretrained_cn "none" only
    cn_heads: int = 12  # attention heads, pretrained_cn "none" only
    cn_intermediate: int = 3072  # feed-forward width, pretrained_cn "none" only
    cn_vocab_size: int = 21128  # RoBERTa-wwm vocabulary, pretrained_cn "none" only
    cn_max_positions: int = 512  # position embeddings, pretrained_cn "none" only
    label_dictionary: str = BUILTIN  # Chinese labels: "builtin" (tpclip_labels_zh.yaml) or a YAML
    untranslated: Literal["english", "error"] = "english"  # a class with no Chinese entry
    template_en: str = "This is a video about {}."  # CLIP prompt (Table 5)
    template_cn: str = "{}"  # Chinese text around the dictionary entry (none in the paper)
    # temporal prompts and reparameterization (tunable)
    frames: int = 16  # T, frames per view
    global_prompts: int = 8  # S (Section 4.2.3)
    prompt_heads: int = 12  # heads of the MHSA over CLS tokens (eq. 8)
    reparam_width: int = 384  # bottleneck of beta (D/2; fits Table 6, see the docstring)
    spatial_kernel: int = 3  # ST-block kernel along the prompt tokens
    temporal_kernel: int = 3  # ST-block kernel along the frames
    reparam_residual: bool = True  # eq. 12's "+ P" (Table 4 ablates it)
    share_reparam: bool = False  # one beta for every layer instead of one per layer
    tune_projections: bool = False  # also train CLIP's visual and the Chinese text projection
    new_module_lr_mult: float = 1.0  # lr x this for freshly initialised parts (X-CLIP: 10)
    # scores
    word_tokens: Literal["label", "sequence"] = "label"  # words of eq. 6
    tau: float = 0.01  # every temperature (Section 4.1.2)
    fusion_lambda: float = 0.5  # lambda of eq. 18 (not given in the paper)
    # data
    modality: Literal["rgb", "iframe"] = "rgb"  # decoded frames (paper) or I-frames
    train_crop: Literal["multiscale", "random_resized"] = "multiscale"  # TSN or Inception crop
    grayscale_p: float = 0.0  # training: chance a clip is turned to luma (Table 2: 0.2)
    test_clips: int = 4  # temporal views at test (Section 4.4: 4)
    test_crops: int = 3  # spatial views at test (Section 4.4: 3)


def paper() -> TPCLIPConfig:
    return TPCLIPConfig()


def paper_lr10() -> TPCLIPConfig:
    """The freshly initialised parts at 10 x the base lr (X-CLIP's protocol)."""
    return dataclasses.replace(paper(), new_module_lr_mult=10.0)


def paper_rrc_gray() -> TPCLIPConfig:
    """Table 2's augmentation: RandomSizedCrop and grayscale with probability 0.2."""
    return dataclasses.replace(paper(), train_crop="random_resized", grayscale_p=0.2)


def tiny() -> TPCLIPConfig:
    return TPCLIPConfig(
        image_size=64,
        patch_size=16,
        vision_width=64,
        vision_layers=2,
        vision_head_width=32,
        embed_dim=32,
        text_width=32,
        text_layers=1,
        text_heads=2,
        context_length=16,
        cn_hidden=64,
        cn_layers=2,
        cn_heads=2,
        cn_intermediate=128,
        cn_vocab_size=1024,
        cn_max_positions=64,
        frames=8,
        global_prompts=4,
        prompt_heads=2,
        reparam_width=32,
        test_clips=1,
        test_crops=1,
    )


def tiny_lr10() -> TPCLIPConfig:
    return dataclasses.replace(tiny(), new_module_lr_mult=10.0)


def tiny_rrc_gray() -> TPCLIPConfig:
    return dataclasses.replace(tiny(), train_crop="random_resized", grayscale_p=0.2)


# --------------------------------------------------------------------------- method


class TemporalPromptCLIPMethod(BaseMethod):
    """Frozen CLIP + reparameterized temporal prompts, English and Chinese label losses."""

    def __init__(
        self,
        config: TPCLIPConfig,
        num_classes: int,
        class_names: Sequence[str],
        optim: OptimConfig | None = None,
    ) -> None:
        super().__init__(config, num_classes, class_names, optim)
        self.net = TemporalPromptCLIP(config, self.class_names)
        self.pretrained = self.net.load_records
        self.freeze(*self.net.frozen_modules())
        if config.tune_projections:
            for p in self.net.projections():
                p.requires_grad_(True)

    def head_modules(self) -> list[str]:  # none saved: class embeddings rebuilt from names
        return []

    def param_groups(self) -> list[ParamGroup]:
        """One group at the base lr (``new_module_lr_mult`` 1: the paper's single lr); else
        the freshly initialised parts at lr x mult ("new") and the trained pretrained
        projections (``tune_projections``) at the base lr ("pretrained")."""
        mult = self.config.new_module_lr_mult
        if mult == 1.0:
            return super().param_groups()
        fresh = self.net.fresh_parameters()
        fresh_ids = {id(p) for p in fresh}
        pretrained = [p for p in self.net.projections() if id(p) not in fresh_ids]
        return [ParamGroup("new", fresh, mult), ParamGroup("pretrained", pretrained, 1.0)]

    @property
    def data_spec(self) -> DataSpec:
        c = self.config
        sampling, _ = PAPER_SAMPLINGS["tpclip16"]
        return DataSpec(
            modalities=(Modality(c.modality),),
            sampling=dataclasses.replace(
                sampling, num_positions=c.frames, test_clips=c.test_clips, test_crops=c.test_crops
            ),
            size=c.image_size,
            train_crop=TrainCrop(c.train_crop),
            grayscale_p=c.grayscale_p,
            normalization=Normalization(
                rgb_mean=tuple(OPENAI_DATASET_MEAN), rgb_std=tuple(OPENAI_DATASET_STD)
            ),
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(batch[self.config.modality])

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 17: video<->English plus video<->Chinese; the logits are eq. 18's."""
        s_en, s_cn = self.net.similarities(batch[self.config.modality])
        labels, tau = batch["label"], self.config.tau
        loss = label_contrastive_loss(s_en, labels, tau) + label_contrastive_loss(s_cn, labels, tau)
        return loss, self.net.fuse(s_en, s_cn)

    # the paper's numbers, read by cvbench.flops.method_cost (parameters as counts)
    reported = {
        "tunable_params": {"value": 54_200_000, "source": "Table 6, ViT-B/16, T = 8 and 16"},
        "top1_ucf101": {"value": 96.5, "source": "Table 8, split average, 4 clips x 3 crops"},
        "top1_hmdb51": {"value": 73.8, "source": "Table 8, split average, 4 clips x 3 crops"},
    }

    @classmethod
    def default_optim(cls) -> OptimConfig:
        # Table 2 / Section 4.4: AdamW, lr 5e-6, weight decay 0.01, 5 warm-up epochs, cosine, 30 epochs
        return OptimConfig(
            optimizer="adamw",
            lr=5e-6,
            weight_decay=1e-2,
            betas=(0.9, 0.999),
            schedule="cosine",
            warmup_epochs=5.0,
            epochs=30,
        )

    def weight_target(self, option: str, path: Path | None = None) -> nn.Module | None:
        """``pretrained_cn`` set to the directory ``path``: the Chinese text tower a run
        builds from it (the shape of its config.json, not the ``cn_*`` fields; on this
        method's device, weights not read). Otherwise None: the manifest's target."""
        if option != "pretrained_cn" or path is None:
            return None
        config = dataclasses.replace(self.config, pretrained_cn=str(path))
        with torch.device(self.net.cn.projection.weight.device):
            return ChineseTextBranch(config, (), load=False)

    def weight_conflicts(
        self, option: str, target: nn.Module, state: dict[str, torch.Tensor], loaded: Loaded
    ) -> list[str]:
        """What a run would refuse besides missing, unexpected or misshapen keys, given the
        ``target``, the converted ``state`` and the file as read (``pretrained_cn``: no text
        projection in the file, :meth:`ChineseTextBranch.conflicts`)."""
        if option != "pretrained_cn" or not isinstance(target, ChineseTextBranch):
            return []
        found = [] if "projection.weight" in state else ["pretrained_cn: no text_projection.weight"]
        return found + target.conflicts(self.config.embed_dim)

    def weight_state(self, option: str, loaded: Loaded) -> dict[str, torch.Tensor]:
        """Chinese-CLIP's names (``text_model.*``, ``text_projection``) -> the text branch's
        (``encoder.*``, ``projection``), as loading does; other options as read."""
        if option != "pretrained_cn":
            return loaded.state
        return chinese_clip_text_state(loaded.state)

    @classmethod
    def pretrained_fixture(cls, config: TPCLIPConfig, directory: Path) -> dict[str, str]:
        """Write an open_clip state dict and a Chinese-CLIP directory (config.json, weights
        by ``save_pretrained``, a vocab.txt covering the label dictionary and ASCII) for
        ``config``; return the overrides that load them."""
        from transformers import ChineseCLIPModel

        directory = Path(directory)
        clip_path = directory / "open_clip_tiny.pt"
        torch.save(build_clip(config).state_dict(), clip_path)

        vocab = chinese_vocabulary(config)
        cn_dir = directory / "chinese_clip"
        save_chinese_clip(ChineseCLIPModel(chinese_clip_config(config, len(vocab))), vocab, cn_dir)
        return {"pretrained": str(clip_path), "pretrained_cn": str(cn_dir)}


WEIGHTS = (
    Checkpoint(
        option="pretrained",
        name="CLIP ViT-B/16",
        publisher="OpenAI",
        source="github.com/openai/CLIP (ViT-B-16.pt); open_clip 'ViT-B-16-quickgelu' "
        "pretrained='openai'",
        layout="openai-torchscript",
        serves="Tables 7-9 (closed set, few-shot, zero-shot): 'Ours' ViT-B/16 rows",
        target="net.clip",
        note="an open_clip state dict of the same weights loads too",
    ),
    Checkpoint(
        option="pretrained_cn",
        name="Chinese-CLIP ViT-B/16 (RoBERTa-wwm-base text tower)",
        publisher="OFA-Sys (Chinese-CLIP)",
        source="Hugging Face OFA-Sys/chinese-clip-vit-base-patch16",
        layout="huggingface",
        serves="the Chinese-label branch of every 'Ours' row (Sec. 3.4)",
        target="net.cn",
        note="a directory: config.json, model weights, vocab.txt",
    ),
)


register_method(
    "tpclip",
    TemporalPromptCLIPMethod,
    TPCLIPConfig,
    {
        "paper": paper,
        "tiny": tiny,
        "paper_lr10": paper_lr10,
        "tiny_lr10": tiny_lr10,
        "paper_rrc_gray": paper_rrc_gray,
        "tiny_rrc_gray": tiny_rrc_gray,
    },
    "temporal-prompt CLIP (Electronics 2024): frozen CLIP ViT-B/16 + reparameterized "
    "temporal prompts, English + Chinese label supervision, on RGB frames (or I-frames)",
    WEIGHTS,
    readings={
        "paper_lr10": "prompts, betas and temporal embedding (53.4M, all new) at 10x the "
        "base lr, as X-CLIP, whose protocol the paper follows: 5e-6 is a fine-tuning lr",
        "paper_rrc_gray": "Table 2's augmentation: Inception RandomSizedCrop (area 0.08-1, "
        "ratio 3/4-4/3) and grayscale p 0.2, instead of the suite's TSN multi-scale crop",
    },
)
