"""The shared datamodule: the batch contract for every paper sampling, bad videos, cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from datamodules.contract import BATCH_KEYS, DataSpec, Modality, Sampling
from datamodules.datamodule import CompressedVideoDataModule
from datamodules.sampling import PAPER_SAMPLINGS

TINY = {"num_classes": 3, "videos_per_class": 4, "frames": 30, "size": (64, 80)}


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synthetic")


def _module(
    root: Path,
    name: str,
    spec: DataSpec | None = None,
    batch_size: int = 4,
    stage: str = "fit",
    **kwargs,
) -> CompressedVideoDataModule:
    if spec is None:
        sampling, modalities = PAPER_SAMPLINGS[name]
        spec = DataSpec(modalities=modalities, sampling=sampling, size=48)
    dm = CompressedVideoDataModule(
        spec,
        dataset="synthetic",
        root=root,
        batch_size=batch_size,
        dataset_options=TINY,
        progress=False,
        **kwargs,
    )
    dm.prepare_data()
    dm.setup(stage)
    return dm


def _expected_t(sampling, modality: Modality, test: bool) -> int:
    n = (
        sampling.test_num_positions
        if (test and sampling.test_num_positions)
        else sampling.num_positions
    )
    if sampling.kind == Sampling.CONSECUTIVE_GOPS and modality != Modality.IFRAME:
        return n * sampling.pframes_per_gop
    return n


@pytest.mark.parametrize("name", sorted(PAPER_SAMPLINGS))
def test_batches_follow_the_contract(synthetic_root: Path, name: str) -> None:
    dm = _module(synthetic_root, name)
    sampling, modalities = PAPER_SAMPLINGS[name]
    channels = {Modality.IFRAME: 3, Modality.MV: 2, Modality.RESIDUAL: 3, Modality.RGB: 3}
    for loader, test in ((dm.train_dataloader(), False), (dm.test_dataloader(), True)):
        batch = dm.on_after_batch_transfer(next(iter(loader)), 0)
        assert set(batch) == {m.value for m in modalities} | {"label", "video_index", "view"}
        assert set(batch) <= set(BATCH_KEYS)
        for m in modalities:
            t = _expected_t(sampling, m, test)
            b = len(batch["label"])
            assert b == min(4, len(loader.dataset))
            assert batch[m.value].shape == (b, t, channels[m], 48, 48), (name, m)
            assert batch[m.value].dtype == torch.float32
        assert batch["label"].dtype == torch.int64
    assert dm.summary()["train_skipped"] == [] and dm.skipped == 0


def test_multi_view_test_set(synthetic_root: Path) -> None:
    sampling, modalities = PAPER_SAMPLINGS["meaci8"]
    spec = DataSpec(
        modalities=modalities,
        size=48,
        sampling=sampling.__class__(**{**sampling.__dict__, "test_clips": 3, "test_crops": 3}),
    )
    dm = _module(synthetic_root, "meaci8", spec=spec, batch_size=9, stage="test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["video_index"].tolist() == [0] * 9
    assert batch["view"].tolist() == list(range(9))


def test_bad_videos_are_reported_counted_and_skipped(tmp_path: Path, synthetic_root: Path) -> None:
    # a class-per-folder dataset: copies of generated videos plus broken files
    dm = _module(synthetic_root, "coviar3")
    root = tmp_path / "folder"
    for i, item in enumerate(dm._list("train").items[:6]):
        dest = root / f"class{i % 2}" / f"v{i}.m4v"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(item.path, dest)
    (root / "class0" / "empty.m4v").touch()
    (root / "class1" / "text.m4v").write_text("not a video")
    sampling, modalities = PAPER_SAMPLINGS["coviar3"]
    folder = CompressedVideoDataModule(
        DataSpec(modalities=modalities, sampling=sampling, size=48),
        dataset="folder",
        root=root,
        batch_size=2,
        progress=False,
        dataset_options={"test_fraction": 0.3},
    )
    folder.prepare_data()
    folder.setup("fit")
    summary = folder.summary()
    skipped = summary["train_skipped"] + summary["test_skipped"]
    assert sorted(Path(s["path"]).name for s in skipped) == ["empty.m4v", "text.m4v"]
    assert any("zero-length" in s["problem"] for s in skipped)
    assert summary["train_videos"] + summary["test_videos"] == 6
    for batch in folder.train_dataloader():
        assert batch["iframe"].abs().sum() > 0  # no zero stand-ins


def test_cached_test_batches_equal_stream_batches(tmp_path: Path, synthetic_root: Path) -> None:
    stream = _module(synthetic_root, "tcar16")
    cached = _module(synthetic_root, "tcar16", cache_dir=tmp_path / "cache")
    a = next(iter(stream.test_dataloader()))
    b = next(iter(cached.test_dataloader()))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_a_mirrored_training_sample_gets_the_mirrored_label(
    synthetic_root: Path, monkeypatch
) -> None:
    import datamodules.datamodule as module
    from datamodules.transforms import CropBox

    dm = _module(synthetic_root, "coviar3")
    data = dm.train_dataloader().dataset
    mirrors = dm._list("train").hflip_labels
    assert mirrors == (1, 0, 2)  # translate_right <-> translate_left, translate_up stays
    monkeypatch.setattr(
        module, "sample_train_crop", lambda h, w, *a, **k: CropBox(0, 0, h, w, flip=True)
    )
    for i, item in enumerate(data.videos[:6]):
        assert data[i]["label"] == mirrors[item.label]


def test_default_training_samples_draw_as_before(synthetic_root: Path) -> None:
    """The default spec (multiscale crop, no grayscale) serves exactly what the datamodule
    served before those options existed: positions from (seed, epoch, video, 0), then the
    TSN box and flip from (seed, epoch, video, 1), nothing else drawn."""
    import numpy as np

    from datamodules.transforms import apply_view, sample_train_box

    dm = _module(synthetic_root, "tcar16")
    data = dm.train_dataloader().dataset
    spec = data.spec
    for video_index, epoch in ((0, 0), (3, 2), (5, 7)):
        got = data[(video_index, epoch)]
        plan_rng, box_rng = (
            np.random.default_rng([data.seed, epoch, video_index, draw]) for draw in (0, 1)
        )
        arrays = data._arrays(data.videos[video_index], 0, plan_rng)
        h, w = next(iter(arrays.values())).shape[1:3]
        box = sample_train_box(h, w, spec.scale_jitter, data.flip, box_rng)
        expected = apply_view(arrays, box, spec.size, spec.normalization)
        for key, value in expected.items():
            assert torch.equal(got[key], value), (video_index, epoch, key)


def test_grayscale_training_samples_are_seeded_per_sample(synthetic_root: Path) -> None:
    from dataclasses import replace

    sampling, modalities = PAPER_SAMPLINGS["tpclip16"]
    spec = DataSpec(modalities=modalities, sampling=sampling, size=48)
    gray_spec = replace(spec, train_crop="random_resized", grayscale_p=0.5)
    data = _module(synthetic_root, "tpclip16", gray_spec).train_dataloader().dataset
    again = _module(synthetic_root, "tpclip16", gray_spec).train_dataloader().dataset
    decisions = []
    for key in [(i, e) for i in range(6) for e in range(2)]:
        a, b = data[key]["rgb"], again[key]["rgb"]
        assert torch.equal(a, b)  # a function of (seed, epoch, sample)
        raw = a * torch.tensor(spec.normalization.rgb_std).view(1, 3, 1, 1)
        raw = raw + torch.tensor(spec.normalization.rgb_mean).view(1, 3, 1, 1)
        gray = [torch.allclose(f[0], f[1], atol=1e-5) and torch.allclose(f[1], f[2], atol=1e-5)
                for f in raw]  # fmt: skip
        assert len(set(gray)) == 1  # one decision for every frame of the clip
        decisions.append(gray[0])
    assert 0 < sum(decisions) < len(decisions)


def test_flips_are_off_when_a_mirrored_class_is_missing(tmp_path: Path) -> None:
    sampling, modalities = PAPER_SAMPLINGS["coviar3"]
    dm = CompressedVideoDataModule(
        DataSpec(modalities=modalities, sampling=sampling, size=48),
        dataset="synthetic",
        root=tmp_path,
        batch_size=2,
        progress=False,
        dataset_options={"num_classes": 1, "videos_per_class": 4, "frames": 13, "size": (32, 48)},
    )
    dm.prepare_data()
    dm.setup("fit")
    assert dm._list("train").hflip_labels == (-1,)  # translate_right alone: no mirror class
    assert dm.train_dataloader().dataset.flip is False


def test_loader_options_reach_the_dataloader(synthetic_root: Path) -> None:
    plain = _module(synthetic_root, "coviar3", check=False)
    assert plain.train_dataloader().pin_memory is False  # the default: CPU runs unchanged
    gpu = _module(synthetic_root, "coviar3", check=False, pin_memory=True, prefetch_factor=4)
    assert gpu.train_dataloader().pin_memory is True
    assert gpu.train_dataloader().prefetch_factor is None  # no workers: nothing to prefetch
    gpu.num_workers = 1
    assert gpu.test_dataloader().prefetch_factor == 4
