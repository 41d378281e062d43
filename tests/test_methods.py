"""The same checks for every registered method (parametrised over ``list_methods()``)."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import pytest
import torch

import methods  # noqa: F401  (registers every method)
from datamodules.contract import DataSpec, Modality, Sampling
from datamodules.datamodule import CompressedVideoDataModule
from methods.base import BaseMethod
from methods.registry import create_method, get_method, list_methods

NUM_CLASSES = 4
CHANNELS = {Modality.IFRAME: 3, Modality.MV: 2, Modality.RESIDUAL: 3, Modality.RGB: 3}
SYNTHETIC = {"num_classes": NUM_CLASSES, "videos_per_class": 3, "frames": 30, "size": (64, 80)}


def dummy_batch(spec: DataSpec, batch_size: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors shaped as the batch contract says for ``spec`` (training views)."""
    g = torch.Generator().manual_seed(seed)
    s = spec.sampling
    batch: dict[str, torch.Tensor] = {}
    for m in spec.modalities:
        t = s.num_positions
        if s.kind == Sampling.CONSECUTIVE_GOPS and m != Modality.IFRAME:
            t *= s.pframes_per_gop
        batch[m.value] = torch.randn(batch_size, t, CHANNELS[m], spec.size, spec.size, generator=g)
    batch["label"] = torch.arange(batch_size) % NUM_CLASSES
    batch["video_index"] = torch.arange(batch_size)
    batch["view"] = torch.zeros(batch_size, dtype=torch.long)
    return batch


def build(name: str, **overrides) -> BaseMethod:
    torch.manual_seed(0)
    return create_method(
        name,
        "tiny",
        num_classes=NUM_CLASSES,
        class_names=[f"action {i}" for i in range(NUM_CLASSES)],
        overrides=overrides,
    )


@pytest.fixture(params=list_methods())
def name(request) -> str:
    return request.param


def test_builds_and_forward_shapes(name: str) -> None:
    model = build(name).eval()
    with torch.no_grad():
        logits = model(dummy_batch(model.data_spec))
    assert logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(logits).all()
    counts = model.parameter_counts()
    assert 0 < counts["tunable_params"] <= counts["total_params"]


def test_frozen_parts_stay_frozen_and_tunable_parts_learn(name: str) -> None:
    model = build(name).train()
    batch = dummy_batch(model.data_spec)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss, _ = model.training_loss(batch)
    loss.backward()
    for n, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, f"frozen {n} received a gradient"
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert not changed & frozen, f"frozen parameters changed: {sorted(changed & frozen)[:5]}"
    tunable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert changed, "no tunable parameter changed after an optimiser step"
    assert changed <= tunable


def test_loss_decreases_on_a_fixed_batch(name: str) -> None:
    model = build(name).train()
    batch = dummy_batch(model.data_spec, batch_size=4)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss, _ = model.training_loss(batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert min(losses[-3:]) < losses[0], losses


def test_pretrained_weights_load_through_the_config_path(name: str, tmp_path: Path) -> None:
    entry = get_method(name)
    overrides = entry.module.pretrained_fixture(entry.make_config("tiny"), tmp_path)
    assert overrides, "pretrained_fixture must return the options that load the checkpoint"
    model = build(name, **overrides)
    assert model.pretrained and all(r["weights"] != "none" for r in model.pretrained)
    # a missing file names the option to set
    option = next(iter(overrides))
    with pytest.raises(FileNotFoundError, match=option.split(".")[-1]):
        build(name, **{option: str(tmp_path / "missing.pt")})


def test_fast_dev_run_on_the_synthetic_dataset(name: str, tmp_path: Path) -> None:
    model = build(name)
    dm = CompressedVideoDataModule(
        model.data_spec,
        dataset="synthetic",
        root=tmp_path_factory_root(tmp_path),
        batch_size=2,
        dataset_options=SYNTHETIC,
        progress=False,
    )
    trainer = L.Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    assert 0.0 <= model.test_results["top1"] <= 1.0


_SYNTHETIC_ROOT: list[Path] = []


def tmp_path_factory_root(tmp_path: Path) -> Path:
    """One generated synthetic dataset for the whole session (generation is deterministic)."""
    if not _SYNTHETIC_ROOT:
        _SYNTHETIC_ROOT.append(tmp_path / "synthetic")
    return _SYNTHETIC_ROOT[0]


def test_registry_rejects_duplicates() -> None:
    from methods.registry import register_method

    entry = get_method(list_methods()[0])
    with pytest.raises(ValueError, match="already registered"):
        register_method(entry.name, entry.module, entry.config, entry.presets, entry.summary)


def test_unknown_override_names_the_key() -> None:
    with pytest.raises(ValueError, match="no_such_key"):
        build(list_methods()[0], no_such_key=1)


def test_model_is_deepcopyable(name: str) -> None:
    copy.deepcopy(build(name))
