"""Synthetic CLIP pretraining (cvbench/pretrain.py): the loss, the cache, the loading path."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch
import torch.nn.functional as F

import methods  # noqa: F401  (registers the methods)
from cvbench.pretrain import (
    PretrainConfig,
    class_contrastive_loss,
    manifest,
    resolve_synthetic,
    synthetic_weights,
    weights_key,
)
from datamodules.synthetic import MOTION_CLASSES
from methods.registry import create_method, get_method
from methods.weights import WeightsError, resolve

# a corpus and schedule small enough for a test: 2 videos per class, one epoch
QUICK = PretrainConfig(videos_per_class=4, positions=2, epochs=1, batch_size=8)


def test_loss_matches_a_direct_computation() -> None:
    torch.manual_seed(0)
    images = F.normalize(torch.randn(6, 4), dim=-1)
    texts = F.normalize(torch.randn(3, 4), dim=-1)
    labels = torch.tensor([0, 2, 2, 0, 2, 0])
    scale = torch.tensor(10.0)
    logits = scale * images @ texts.t()
    i2t = -logits.log_softmax(1)[torch.arange(6), labels].mean()
    t2i = []
    for k in (0, 2):  # class 1 has no image in the batch: no text-to-image term
        log_p = logits[:, k].log_softmax(0)
        t2i.append(-log_p[labels == k].mean())
    expected = 0.5 * (i2t + torch.stack(t2i).mean())
    assert class_contrastive_loss(images, texts, labels, scale) == pytest.approx(expected.item())


def test_synthetic_is_not_a_file_for_the_methods() -> None:
    with pytest.raises(WeightsError, match="cvbench run"):
        resolve("synthetic", "pretrained")


def test_nothing_to_resolve_without_synthetic_options() -> None:
    config = get_method("tcar").make_config("tiny")
    assert resolve_synthetic("tcar", config) == ({}, None)


def test_the_cache_key_follows_the_architecture_not_the_trained_parts() -> None:
    config = get_method("tcar").make_config("tiny")
    classes = ("a", "b")
    key = weights_key("tcar", config, QUICK, classes)
    assert (
        weights_key("tcar", dataclasses.replace(config, temporal_layers=4), QUICK, classes) == key
    )
    wider = dataclasses.replace(config, clip=dataclasses.replace(config.clip, embed_dim=64))
    assert weights_key("tcar", wider, QUICK, classes) != key
    assert weights_key("tcar", config, dataclasses.replace(QUICK, epochs=2), classes) != key


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tcar", "tpclip"])
def test_built_weights_load_through_the_pretrained_options(name, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CVBENCH_CACHE", str(tmp_path / "cache"))
    config = get_method(name).make_config("tiny")
    made = synthetic_weights(name, config, pretrain=QUICK, progress=False)
    info = manifest(made)
    assert info["corpus"]["seed"] != 0  # never the benchmark's videos
    assert set(info["final_metrics"]) >= {"pretrain/loss"}
    built = os.stat(made["pretrained"]).st_mtime_ns
    again = synthetic_weights(name, config, pretrain=QUICK, progress=False)  # from the cache
    assert again == made and os.stat(made["pretrained"]).st_mtime_ns == built
    classes = [c.name for c in MOTION_CLASSES]
    model = create_method(name, "tiny", num_classes=10, class_names=classes, overrides=made)
    records = {r["option"]: r["weights"] for r in model.pretrained}
    assert records == made
    state = torch.load(made["pretrained"], weights_only=True)
    ours = {k: v for k, v in model.state_dict().items() if k.endswith("token_embedding.weight")}
    assert ours and all(torch.equal(v, state["token_embedding.weight"]) for v in ours.values())
    json.dumps(info)  # the manifest is plain JSON
