"""The uint8 transport: pictures and residuals leave the loader workers as uint8 and the
datamodule's ``on_after_batch_transfer`` finishes them; every batch equals the float32
transport's bit for bit (every method's tiny data spec, grayscale included), the luma
identity it rests on holds for every colour, and the run, test and bench commands take it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from cvbench import runsettings as rs
from cvbench.cli import main
from datamodules.contract import EMPTY, GRAYSCALE, DataSpec, Modality, Normalization
from datamodules.datamodule import CompressedVideoDataModule, collate
from datamodules.transforms import (
    CropBox,
    apply_view,
    finish_batch,
    luma,
    luma_terms,
)

OPTIONS = {"num_classes": 3, "videos_per_class": 4, "frames": 30, "size": [64, 80]}
PICTURES = ("iframe", "rgb", "residual")


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synthetic")


def _preset_specs(prefix: str = "tiny") -> dict[str, DataSpec]:
    """Every distinct data spec of the registered methods' presets named ``prefix*`` (the
    readings' too), named by its first user; and two grayscale specs no preset has:
    grayscale on every training clip of tpclip's reading, and on I-frames (a picture
    beside MVs and residuals)."""
    import methods  # noqa: F401  (registers the methods)
    from cvbench.loader_throughput import method_spec
    from methods.registry import get_method, list_methods

    specs: dict[str, DataSpec] = {}
    for name in list_methods():
        for preset in get_method(name).presets:
            if preset.startswith(prefix):
                spec = method_spec(name, preset, num_classes=3)
                if spec not in specs.values():
                    specs[f"{name}-{preset}"] = spec
    gray = [s for s in specs.values() if s.grayscale_p > 0]
    assert gray, "tpclip's tiny_rrc_gray reading draws grayscale clips"
    specs["always-gray"] = replace(gray[0], grayscale_p=1.0)
    specs["coviar-gray"] = replace(specs[f"coviar-{prefix}"], grayscale_p=0.5)
    return specs


SPECS = _preset_specs("tiny")


def _module(
    root: Path, spec: DataSpec, transport: str, options: dict = OPTIONS, **kwargs
) -> CompressedVideoDataModule:
    dm = CompressedVideoDataModule(
        spec,
        dataset="synthetic",
        root=root,
        batch_size=3,
        dataset_options=options,
        progress=False,
        check=False,
        seed=3,
        transport=transport,
        **kwargs,
    )
    dm.prepare_data()
    dm.setup("fit")
    return dm


# --------------------------------------------------------------------------- the identities


def test_luma_terms_equal_luma_for_every_uint8_colour() -> None:
    """The device-side luma (explicit elementwise sum) is the worker's reduction, for all
    2^24 colours, whether the worker's frames are channels-last (resized) or not."""
    g, b = torch.meshgrid(torch.arange(256), torch.arange(256), indexing="ij")
    for r in range(256):
        x = torch.stack([torch.full_like(g, r), g, b]).to(torch.uint8)[None]  # (1, 3, 256, 256)
        expected = luma(x.contiguous(memory_format=torch.channels_last))
        assert torch.equal(luma(x), expected), r
        assert torch.equal(luma_terms(x), expected), r


def _arrays(rng: np.random.Generator, t: int = 2) -> dict[str, np.ndarray]:
    shape = (t, 40, 52)
    return {
        "iframe": rng.integers(0, 256, (*shape, 3), dtype=np.uint8),
        "mv": rng.normal(0, 8, (*shape, 2)).astype(np.float32),
        "residual": rng.integers(-255, 256, (*shape, 3)).astype(np.int16),
        "rgb": rng.integers(0, 256, (*shape, 3), dtype=np.uint8),
    }


@pytest.mark.parametrize("grayscale", [False, True])
@pytest.mark.parametrize(
    "box", [CropBox(3, 5, 30, 36, flip=True), CropBox(0, 0, 40, 52), CropBox(2, 2, 24, 24)]
)
def test_compact_views_finished_equal_finished_views(box: CropBox, grayscale: bool) -> None:
    """apply_view(compact) + collate + finish_batch == apply_view, per modality, for a
    downscale with a flip, a full-frame squash and an unresized crop (24 px)."""
    rng = np.random.default_rng(0)
    norm = Normalization()
    samples = [_arrays(rng) for _ in range(3)]
    flags = [grayscale, False, grayscale]
    full = [apply_view(a, box, 24, norm, g) for a, g in zip(samples, flags, strict=True)]
    compact = [apply_view(a, box, 24, norm, g, compact=True) for a, g in zip(samples, flags, strict=True)]  # fmt: skip
    for sample in compact:
        assert {k: v.dtype for k, v in sample.items()} == {
            "iframe": torch.uint8, "mv": torch.float32, "residual": torch.uint8, "rgb": torch.uint8,
        }  # fmt: skip
    batch = collate([{**s, GRAYSCALE: g} for s, g in zip(compact, flags, strict=True)])
    grayscale_flags = batch.pop(GRAYSCALE)
    finished = finish_batch(batch, norm, grayscale_flags)
    for key in full[0]:
        expected = torch.stack([f[key] for f in full])
        assert finished[key].dtype == torch.float32
        assert torch.equal(finished[key], expected), key
    assert finished["mv"] is batch["mv"]  # finished in the worker: passed on as it is


def test_the_hook_converts_normalises_and_drops_the_flag(synthetic_root: Path) -> None:
    """A hand-made uint8 batch through the datamodule's hook: float32 (x / 255 - mean) / std
    per channel, luma for the flagged sample only, MVs and labels untouched, no
    ``grayscale`` key left; an empty batch stays the empty marker."""
    spec = replace(SPECS["coviar-tiny"], grayscale_p=0.5)
    dm = CompressedVideoDataModule(spec, root=synthetic_root, dataset_options=OPTIONS,
                                   transport="uint8")  # fmt: skip
    norm = spec.normalization
    iframe = (
        torch.tensor([10, 200, 90], dtype=torch.uint8).view(1, 1, 3, 1, 1).repeat(2, 1, 1, 2, 2)
    )
    residual = torch.full((2, 1, 3, 2, 2), 128, dtype=torch.uint8)
    mv = torch.randn(2, 1, 2, 2, 2)
    batch = {"iframe": iframe, "residual": residual, "mv": mv, "label": torch.tensor([1, 2]),
             GRAYSCALE: torch.tensor([False, True]), "skipped": torch.tensor(0)}  # fmt: skip
    out = dm.on_after_batch_transfer(batch, 0)
    assert set(out) == {"iframe", "residual", "mv", "label"}
    assert out["mv"] is mv and out["label"].tolist() == [1, 2]
    mean, std = torch.tensor(norm.rgb_mean).view(3, 1, 1), torch.tensor(norm.rgb_std).view(3, 1, 1)
    plain = (torch.tensor([10.0, 200.0, 90.0]).view(3, 1, 1) / 255 - mean) / std
    gray = 0.299 * 10 + 0.587 * 200 + 0.114 * 90
    torch.testing.assert_close(out["iframe"][0, 0], plain.expand(3, 2, 2))
    torch.testing.assert_close(out["iframe"][1, 0], ((gray / 255 - mean) / std).expand(3, 2, 2))
    r_mean = torch.tensor(norm.residual_mean).view(3, 1, 1)
    r_std = torch.tensor(norm.residual_std).view(3, 1, 1)
    torch.testing.assert_close(
        out["residual"][0, 0], ((128 / 255 - r_mean) / r_std).expand(3, 2, 2)
    )
    assert out["residual"][1].equal(out["residual"][0])  # residuals are never grayscale
    assert all(out[k].dtype == torch.float32 for k in ("iframe", "residual"))
    empty = dm.on_after_batch_transfer(
        {EMPTY: True, "skipped": torch.tensor(2), "skipped_videos": []}, 0
    )
    assert empty == {EMPTY: True} and dm.empty_batches == 1
    float_dm = CompressedVideoDataModule(spec, root=synthetic_root, dataset_options=OPTIONS)
    untouched = {"iframe": iframe, "label": torch.tensor([1, 2])}
    assert float_dm.on_after_batch_transfer(dict(untouched), 0)["iframe"] is iframe  # float32 mode


def test_an_unknown_transport_is_refused() -> None:
    with pytest.raises(ValueError, match="transport 'float16'"):
        CompressedVideoDataModule(SPECS["coviar-tiny"], transport="float16")


# --------------------------------------------------------------------------- every method


def _pairs(a: CompressedVideoDataModule, b: CompressedVideoDataModule, epochs: int = 2):
    """(float32 batch, uint8 batch as served) of the training loader over ``epochs`` epochs
    and of the test loader, the first two batches of each."""
    for train in (True, False):
        la = a.train_dataloader() if train else a.test_dataloader()
        lb = b.train_dataloader() if train else b.test_dataloader()
        for epoch in range(epochs if train else 1):
            if train:
                la.sampler.set_epoch(epoch)
                lb.sampler.set_epoch(epoch)
            for i, pair in enumerate(zip(la, lb, strict=True)):
                yield pair
                if i == 1:
                    break


@pytest.mark.parametrize("name", sorted(SPECS))
def test_uint8_batches_finished_by_the_hook_equal_float32_batches(
    synthetic_root: Path, name: str
) -> None:
    spec = SPECS[name]
    a, b = _module(synthetic_root, spec, "float32"), _module(synthetic_root, spec, "uint8")
    flags: list[bool] = []
    for x, y in _pairs(a, b):
        for key in PICTURES:
            if key in y:
                assert y[key].dtype == torch.uint8, key  # what crossed from the workers
        flags += y[GRAYSCALE].tolist() if GRAYSCALE in y else []
        x, y = a.on_after_batch_transfer(x, 0), b.on_after_batch_transfer(y, 0)
        assert (
            set(x)
            == set(y)
            == {m.value for m in spec.modalities} | {"label", "video_index", "view"}
        )
        for key in x:
            assert x[key].dtype == y[key].dtype and torch.equal(x[key], y[key]), (name, key)
    if spec.grayscale_p > 0:
        assert any(flags) if spec.grayscale_p < 1 else all(flags)  # luma was exercised
        assert spec.grayscale_p == 1 or not all(flags)
    else:
        assert flags == []  # no flag travels for a spec without grayscale


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(_preset_specs("paper")))
def test_paper_specs_uint8_batches_equal_float32(
    tmp_path_factory: pytest.TempPathFactory, name: str
) -> None:
    """The paper presets' specs (224 px, their full position counts and test views) on
    paper-shaped videos (340x256, 96 frames)."""
    spec = _preset_specs("paper")[name]
    root = tmp_path_factory.getbasetemp() / "synthetic-paper"
    options = {"num_classes": 3, "videos_per_class": 2, "frames": 96, "size": [256, 340]}
    a = _module(root, spec, "float32", options)
    b = _module(root, spec, "uint8", options)
    for x, y in _pairs(a, b, epochs=3):
        x, y = a.on_after_batch_transfer(x, 0), b.on_after_batch_transfer(y, 0)
        assert set(x) == set(y) and all(torch.equal(x[k], y[k]) for k in x), name


def test_uint8_batches_from_worker_processes_equal_float32(synthetic_root: Path) -> None:
    """Through a worker process and shared memory, pinned (as a GPU run loads)."""
    spec = SPECS["always-gray"]
    a = _module(synthetic_root, spec, "float32")
    b = _module(synthetic_root, spec, "uint8", num_workers=1, pin_memory=torch.cuda.is_available())
    for x, y in _pairs(a, b, epochs=1):
        x, y = a.on_after_batch_transfer(x, 0), b.on_after_batch_transfer(y, 0)
        assert all(torch.equal(x[k], y[k]) for k in x)


# --------------------------------------------------------------------------- commands


def _print_config(*flags: str, capsys) -> dict:
    assert main(["run", "--method", "iframe", "--print-config", "--json", *flags]) == 0
    return json.loads(capsys.readouterr().out)


def test_transport_defaults_and_flag(capsys) -> None:
    assert rs.default_transport(rs.Machine("cpu", 1, 1, 2)) == "float32"
    assert rs.default_transport(rs.Machine("gpu", 1, 1, 16, 80.0)) == "uint8"
    assert _print_config("--accelerator", "cpu", capsys=capsys)["transport"] == "float32"
    assert _print_config("--accelerator", "gpu", capsys=capsys)["transport"] == "uint8"
    shown = _print_config("--accelerator", "gpu", "--transport", "float32", capsys=capsys)
    assert shown["transport"] == "float32"
    with pytest.raises(SystemExit) as refused:  # argparse's one-line error
        main(["run", "--method", "iframe", "--print-config", "--transport", "int8"])
    assert refused.value.code == 2
    assert "--transport: invalid choice" in capsys.readouterr().err


def test_a_uint8_run_is_the_float32_run(synthetic_root: Path, tmp_path: Path, capsys) -> None:
    """The same run id (the transport changes no number), the same test scores and the same
    trained weights; the record says the transport. (Lightning calls the hook: an iframe
    model fed uint8 would not even run.)"""
    records = {}
    for transport in ("float32", "uint8"):
        argv = ["run", "--method", "iframe", "--accelerator", "cpu", "--epochs", "1"]
        argv += ["--batch-size", "4", "--no-progress", "--root", str(synthetic_root), "--json"]
        argv += ["--config-dir", str(tmp_path / "no-configs"), "--transport", transport]
        argv += ["--work-dir", str(tmp_path / transport), "--output", str(tmp_path / "records")]
        argv += [f"--dataset-option={k}={v}" for k, v in OPTIONS.items() if k != "size"]
        assert main([*argv, "--dataset-option=size=[64,80]"]) == 0
        records[transport] = json.loads(capsys.readouterr().out)
    a, b = records["float32"], records["uint8"]
    assert (a["transport"], b["transport"]) == ("float32", "uint8")
    assert a["run_id"] == b["run_id"] and a["identity"] == b["identity"]
    assert a["metrics"] == b["metrics"]
    wa = torch.load(a["checkpoint"], weights_only=False)["state_dict"]
    wb = torch.load(b["checkpoint"], weights_only=False)["state_dict"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_bench_loader_times_both_transports_and_their_ceilings(
    synthetic_root: Path, capsys
) -> None:
    argv = ["bench", "loader", "--workers", "1", "--method", "coviar", "--preset", "tiny"]
    argv += ["--root", str(synthetic_root), "--batch", "2", "--batches", "1", "--json"]
    argv += ["--transport", "float32,uint8", "--ceiling", "--target-rate", "1e-6"]
    argv += [f"--dataset-option={k}={v}" for k, v in OPTIONS.items() if k != "size"]
    assert main([*argv, "--dataset-option=size=[64,80]", "--no-progress"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    rows = {r["transport"]: r for r in report["results"]}
    assert set(rows) == {"float32", "uint8"}
    assert report["workers_needed"] == 1  # the first transport's
    assert report["workers_needed_by_transport"] == {"float32": 1, "uint8": 1}
    spec = SPECS["coviar-tiny"]
    assert set(spec.modalities) == {Modality.IFRAME, Modality.MV, Modality.RESIDUAL}
    t, s = spec.sampling.num_positions, spec.size  # coviar: one I-frame per P position
    pixels = t * s * s  # per sample: iframe and residual 3 channels, mv 2 float32 channels
    tail = 3 * 8 / 1e6  # label, video_index, view: int64 each
    assert rows["float32"]["mb_per_video"] == pytest.approx((3 + 3 + 2) * 4 * pixels / 1e6 + tail)
    assert rows["uint8"]["mb_per_video"] == pytest.approx((3 + 3 + 2 * 4) * pixels / 1e6 + tail)
    for r in rows.values():
        assert r["ceiling"]["videos_per_s"] > 0
        assert r["ceiling"]["sample_mb"] == pytest.approx(r["mb_per_video"] - tail, abs=1e-3)
    bad = ["bench", "loader", "--workers", "1", "--method", "coviar", "--transport", "float16"]
    assert main(bad) == 2
    assert "--transport 'float16'" in capsys.readouterr().err
