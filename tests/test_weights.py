"""Weight manifests, published checkpoint layouts and the rule against silent random starts.

Every published layout is built here offline from random init at tiny scale (nothing is
downloaded), read through the path a run uses, and its tensors are compared with the
model's after loading.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import methods  # noqa: F401  (registers the methods)
from cvbench.cli import main
from methods.cvpt import CVPT, VideoViT, to_videomae_format
from methods.manifest import (
    check_checkpoint,
    check_starting_points,
    manifest,
    target_module,
    weights_off,
)
from methods.meaci import MEACINet
from methods.registry import create_method, get_method, list_methods
from methods.weights import (
    EXPLICIT_NONE,
    LAYOUTS,
    StartingPointError,
    WeightsError,
    fit,
    read_checkpoint,
)

CLASSES = ["a", "b", "c"]


def build(name: str, preset: str = "tiny", **overrides):
    torch.manual_seed(0)
    return create_method(name, preset, num_classes=3, class_names=CLASSES, overrides=overrides)


def randomised(state: dict[str, torch.Tensor], seed: int = 1) -> dict[str, torch.Tensor]:
    """Other values than a fresh init, so a load that did nothing is caught."""
    g = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone()
        for k, v in state.items()
    }


def assert_loaded(module: nn.Module, state: dict[str, torch.Tensor], prefix: str = "") -> int:
    own = module.state_dict()
    n = 0
    for key, value in state.items():
        if key.startswith(prefix) and key[len(prefix) :] in own:
            torch.testing.assert_close(own[key[len(prefix) :]], value)
            n += 1
    assert n > 0
    return n


# --------------------------------------------------------------------------- the manifest


@pytest.mark.parametrize("name", list_methods())
def test_every_pretrained_option_has_a_manifest_entry(name: str) -> None:
    entry = get_method(name)
    config = entry.make_config("paper")
    options = {
        f.name
        for f in dataclasses.fields(config)
        if f.name.startswith("pretrained") or f.name.endswith("_pretrained")
    }
    assert options, name
    assert options == {c.option for c in entry.weights}
    for c in entry.weights:
        assert c.layout in LAYOUTS
        assert c.name and c.publisher and c.source and c.serves


def test_the_papers_starting_points() -> None:
    rows = {(r["method"], r["option"]): r for r in manifest() if r["paper_start"]}
    assert "OpenAI" in rows["tcar", "pretrained"]["publisher"]
    assert "BIKE" in rows["tcar", "pretrained_visual"]["name"]
    assert "VideoMAE" in rows["cvpt", "pretrained"]["name"]
    assert "I3D" in rows["meaci", "rgb_pretrained"]["name"]
    assert "Chinese-CLIP" in rows["tpclip", "pretrained_cn"]["name"]
    assert "ResNet-152" in rows["coviar", "pretrained_iframe"]["name"]
    assert "ResNet-18" in rows["coviar", "pretrained_mv"]["name"]
    assert ("stm", "pretrained") not in rows  # the paper trains from scratch


# --------------------------------------------------------------------------- layouts


def _scripted(state: dict[str, torch.Tensor]) -> torch.jit.ScriptModule:
    """A TorchScript archive whose state dict is ``state`` (as OpenAI's ``ViT-B-16.pt``)."""

    class Holder(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    root = Holder()
    for key, value in state.items():
        *path, leaf = key.split(".")
        module = root
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, Holder())
            module = getattr(module, part)
        if value.is_floating_point():
            module.register_parameter(leaf, nn.Parameter(value.clone(), requires_grad=False))
        else:
            module.register_buffer(leaf, value.clone())
    return torch.jit.script(root)


def test_openai_torchscript_archive_loads_into_tcar(tmp_path: Path) -> None:
    clip = get_method("tcar").make_config("tiny").clip.build()
    state = randomised(clip.state_dict())
    archive = {**state, "input_resolution": torch.tensor(64), "vocab_size": torch.tensor(49408)}
    path = tmp_path / "ViT-B-16.bin"  # the name says nothing: the structure does
    _scripted(archive).save(str(path))
    assert read_checkpoint(path).layout == "openai-torchscript"
    model = build("tcar", pretrained=str(path))
    assert model.pretrained[0]["layout"] == "openai-torchscript"
    for encoder in model.net.encoders.values():
        assert_loaded(encoder, state, "visual.")
    torch.testing.assert_close(model.net.text.text_projection, state["text_projection"])


def test_open_clip_state_dict_loads_into_tpclip(tmp_path: Path) -> None:
    ref = build("tpclip")
    state = randomised(ref.net.clip.state_dict())
    path = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(state, path)
    assert read_checkpoint(path).layout == "open_clip"
    model = build("tpclip", pretrained=str(path))
    assert_loaded(model.net.clip, state)


def test_bike_checkpoint_fills_visual_towers_and_temporal_transformers(tmp_path: Path) -> None:
    clip = get_method("tcar").make_config("tiny").clip.build()
    visual = randomised(clip.state_dict())
    ref = build("tcar")
    temporal = randomised(ref.net.temporal["spatial"].state_dict(), seed=2)
    renames = (
        ("blocks.", "transformer.resblocks."),
        ("position.", "frame_position_embeddings."),
        (".mlp.0.", ".mlp.c_fc."),
        (".mlp.2.", ".mlp.c_proj."),
    )
    bike_head = {}
    for key, value in temporal.items():
        for ours, bikes in renames:
            key = key.replace(ours, bikes)
        bike_head[f"module.{key}"] = value
    path = tmp_path / "k400-vitb-16-f8x224.pt"
    torch.save(
        {
            "epoch": 29,
            "model_state_dict": {f"module.{k}": v for k, v in visual.items()},
            "fusion_model_state_dict": bike_head,
        },
        path,
    )
    assert read_checkpoint(path).layout == "bike"
    model = build("tcar", pretrained_visual=str(path))
    for encoder in model.net.encoders.values():
        assert_loaded(encoder, visual, "visual.")
    for stream in ("spatial", "motion"):  # same width: both take BIKE's tensors
        assert_loaded(model.net.temporal[stream], temporal)
    assert model.pretrained[-1]["part"] == "temporal transformers"


def _videomae_backbone(config) -> VideoViT:
    return VideoViT(
        config.embed_dim,
        config.depth,
        config.num_heads,
        config.mlp_ratio,
        config.patch_size,
        config.tubelet,
        config.ln_eps,
    )


@pytest.mark.parametrize("kind", ["finetune", "pretrain"])
def test_videomae_files_with_their_args_namespace(kind: str, tmp_path: Path) -> None:
    config = get_method("cvpt").make_config("tiny")
    source = randomised(_videomae_backbone(config).state_dict())
    with torch.no_grad():  # VideoMAE has no key bias: q_bias / v_bias only
        for key in [k for k in source if k.endswith("attn.qkv.bias")]:
            source[key][config.embed_dim : 2 * config.embed_dim] = 0.0
    state = to_videomae_format(dict(source))
    if kind == "pretrain":
        state = {f"encoder.{k}": v for k, v in state.items() if not k.startswith("fc_norm")}
        state["encoder.norm.weight"] = source["fc_norm.weight"]
        state["encoder.norm.bias"] = source["fc_norm.bias"]
        state["decoder.norm.weight"] = torch.ones(4)
    args = argparse.Namespace(model="vit_base_patch16_224", batch_size=8)
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": state, "args": args, "epoch": 1599}, path)
    assert read_checkpoint(path).layout == "videomae"
    pretraining = "self-supervised" if kind == "pretrain" else "supervised"
    chosen = dataclasses.replace(config, pretrained=str(path), pretraining=pretraining)
    model = CVPT(chosen, 3, CLASSES)
    assert model.pretrained[0]["layout"] == "videomae"
    assert model.pretrained[0]["pretraining"] in (pretraining, "not told apart by its keys")
    assert_loaded(model.net.backbone, source)


def test_other_pickled_globals_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.ones(1)}, "extra": argparse.ArgumentParser}, path)
    with pytest.raises(WeightsError, match="weights-only"):
        read_checkpoint(path)
    path = tmp_path / "namespace_elsewhere.pth"
    torch.save({"weights": torch.ones(1), "args": argparse.Namespace(a=1)}, path)
    with pytest.raises(WeightsError, match="outside VideoMAE"):
        read_checkpoint(path)


def test_huggingface_videomae_directory_loads_into_cvpt(tmp_path: Path) -> None:
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    config = get_method("cvpt").make_config("tiny")
    hf = VideoMAEForVideoClassification(  # the fine-tuned Kinetics model's class
        VideoMAEConfig(
            image_size=config.size,
            patch_size=config.patch_size,
            num_frames=config.gops,
            tubelet_size=config.tubelet,
            hidden_size=config.embed_dim,
            num_hidden_layers=config.depth,
            num_attention_heads=config.num_heads,
            intermediate_size=int(config.embed_dim * config.mlp_ratio),
            layer_norm_eps=config.ln_eps,
            num_labels=5,
        )
    )
    hf.save_pretrained(str(tmp_path / "videomae-hf"))
    assert read_checkpoint(tmp_path / "videomae-hf").layout == "huggingface"
    model = CVPT(dataclasses.replace(config, pretrained=str(tmp_path / "videomae-hf")), 3, CLASSES)
    assert model.pretrained[0]["layout"] == "huggingface"
    ours = model.net.backbone.state_dict()
    hf_state = hf.state_dict()
    torch.testing.assert_close(
        ours["patch_embed.proj.weight"],
        hf_state["videomae.embeddings.patch_embeddings.projection.weight"],
    )
    torch.testing.assert_close(
        ours["blocks.0.mlp.fc1.weight"],
        hf_state["videomae.encoder.layer.0.intermediate.dense.weight"],
    )


def test_imagenet_resnet_loads_into_iframe_and_by_structure_from_safetensors(
    tmp_path: Path,
) -> None:
    import timm
    from safetensors.torch import save_file

    config = get_method("iframe").make_config("tiny")
    net = timm.create_model(config.backbone, pretrained=False, num_classes=1000)
    state = randomised(net.state_dict())
    path = tmp_path / "resnet.pth"  # safetensors inside, whatever the suffix says
    save_file(state, str(path))
    assert read_checkpoint(path).layout == "safetensors"
    model = build("iframe", pretrained=str(path))
    assert assert_loaded(model.net.backbone, state) == len(model.net.backbone.state_dict())


def test_imagenet_resnet50_is_inflated_into_meaci_i3d(tmp_path: Path) -> None:
    config = get_method("meaci").make_config("tiny")
    rgb = MEACINet(config, num_classes=3).rgb.state_dict()
    back = {"conv1.conv.": "conv1.", "conv1.bn.": "bn1.", "downsample.conv.": "downsample.0.",
            "downsample.bn.": "downsample.1."}  # fmt: skip
    two_d = {}
    for key, value in randomised(rgb).items():
        name = key
        for i3d, tv in back.items():
            name = name.replace(i3d, tv)
        if name.startswith("layer"):
            for n in (1, 2, 3):
                name = name.replace(f".conv{n}.conv.", f".conv{n}.").replace(
                    f".conv{n}.bn.", f".bn{n}."
                )
        two_d[name] = value[:, :, 0] if value.dim() == 5 else value  # (O, I, kh, kw)
    two_d["fc.weight"] = torch.zeros(1000, 8)
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(two_d, path)
    assert read_checkpoint(path).layout == "timm-resnet"
    model = build("meaci", rgb_pretrained=str(path))
    record = model.pretrained[0]
    assert any("inflated" in step for step in record["conversion"])
    own = model.net.rgb.state_dict()
    t = own["conv1.conv.weight"].shape[2]
    torch.testing.assert_close(
        own["conv1.conv.weight"], two_d["conv1.weight"].unsqueeze(2).repeat(1, 1, t, 1, 1) / t
    )
    torch.testing.assert_close(own["conv1.bn.weight"], two_d["bn1.weight"])


def test_timm_vit_fills_the_stm_transformer(tmp_path: Path) -> None:
    from timm.models.vision_transformer import VisionTransformer

    config = get_method("stm").make_config("tiny")
    vit = VisionTransformer(
        img_size=32,
        patch_size=16,
        embed_dim=config.dim,
        depth=config.depth,
        num_heads=config.heads,
        mlp_ratio=config.mlp_ratio,
        qkv_bias=True,
    )
    state = randomised(vit.state_dict())
    path = tmp_path / "vit.pth"
    torch.save(state, path)
    assert read_checkpoint(path).layout == "timm-vit"
    model = build("stm", pretrained=str(path))
    loaded = {k: v for k, v in state.items() if k.startswith(("blocks.", "norm."))}
    assert assert_loaded(model.net, loaded) == len(loaded)


def test_lightning_checkpoint_of_a_whole_network(tmp_path: Path) -> None:
    state = randomised(build("stm").net.state_dict())
    path = tmp_path / "final.ckpt"
    torch.save(
        {
            "pytorch-lightning_version": "2.4",
            "state_dict": {f"net.{k}": v for k, v in state.items()},
        },
        path,
    )
    assert read_checkpoint(path).layout == "lightning"
    model = build("stm", pretrained=str(path))
    assert assert_loaded(model.net, state) == len(state)


def test_fit_reports_where_tensors_land() -> None:
    target = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4))
    state = {"visual.0.weight": torch.ones(3, 2), "visual.1.weight": torch.ones(5, 3)}
    state["visual.extra"] = torch.ones(1)
    fitted, report = fit(state, target)
    assert report.matched == ["0.weight"]
    assert report.mismatched == [("1.weight", [5, 3], [4, 3])]
    assert report.unexpected == ["extra"]
    assert "1.bias" in report.missing and "1.weight" not in report.missing
    assert report.landed(1) == {"0": 1}


# --------------------------------------------------------------------------- check command


def test_check_reports_matches_on_the_meta_device(tmp_path: Path, capsys) -> None:
    overrides = get_method("coviar").module.pretrained_fixture(
        get_method("coviar").make_config("tiny"), tmp_path
    )
    path = overrides["pretrained_mv"]
    code = main(["weights", "check", "--method", "coviar", "--option", "pretrained_mv", path,
                 "--preset", "tiny", "--json"])  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["layout"] == "timm-resnet" and report["built_on"] == "meta"
    assert report["unexpected"] == ["fc.bias", "fc.weight"]  # the ImageNet classifier
    assert [m[0] for m in report["mismatched"]] == [
        "conv1.0.weight"
    ]  # 2-channel MV stem (deep stem)
    assert report["matched"] > 0 and not report["missing"]


def test_check_names_cvpts_other_starting_point(tmp_path: Path, capsys) -> None:
    """A VideoMAE pre-training checkpoint fits CVPT's backbone key for key, but the paper
    preset (SL) expects the fine-tuned one: the check says a run would refuse it."""
    config = get_method("cvpt").make_config("tiny")
    fine_tuned = torch.load(
        CVPT.pretrained_fixture(config, tmp_path)["pretrained"], weights_only=True
    )["module"]
    pretrain = {f"encoder.{k}": v for k, v in fine_tuned.items() if not k.startswith("fc_norm")}
    pretrain = {k: v for k, v in pretrain.items() if not k.startswith("encoder.head")}
    pretrain["encoder.norm.weight"] = fine_tuned["fc_norm.weight"]
    pretrain["encoder.norm.bias"] = fine_tuned["fc_norm.bias"]
    pretrain["decoder.norm.weight"] = torch.ones(4)
    reports = []
    for state in (pretrain, fine_tuned):
        path = _save(state, tmp_path)
        assert main(["weights", "check", "--method", "cvpt", "--option", "pretrained", path,
                     "--preset", "tiny", "--json"]) == 0  # fmt: skip
        reports.append(json.loads(capsys.readouterr().out))
    assert reports[0]["conflicts"] == [
        "pretrained: VideoMAE's self-supervised checkpoint, the preset expects the supervised "
        "one (--preset paper_ssl)"
    ]
    assert not reports[0]["missing"] and not reports[0]["mismatched"]  # it fits key for key
    assert reports[1]["conflicts"] == []


def test_check_and_list_on_the_command_line(tmp_path: Path, capsys) -> None:
    model = build("stm")
    state = check_checkpoint(model, "stm", "pretrained", _save(model.net.state_dict(), tmp_path))
    assert state["matched"] == len(model.net.state_dict()) and not state["missing"]
    assert main(["weights", "list", "--method", "tcar", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["option"] for r in rows} == {"pretrained", "pretrained_visual"}
    assert main(["weights", "check", "--method", "stm", "--option", "nope", "x"]) == 2
    assert "no pretrained option 'nope'" in capsys.readouterr().err


def _save(state: dict[str, torch.Tensor], directory: Path) -> str:
    torch.save(state, directory / "state.pth")
    return str(directory / "state.pth")


# --------------------------------------------------------------------------- no silent starts


def test_paper_presets_refuse_random_starts_on_real_datasets() -> None:
    with pytest.raises(StartingPointError, match="rgb_pretrained .*I3D") as error:
        check_starting_points("meaci", "paper", "ucf101", {})
    assert "--set rgb_pretrained=none" in str(error.value)
    with pytest.raises(StartingPointError, match="pretrained_visual"):
        check_starting_points("tcar", "paper", "hmdb51", {"pretrained": "/some/clip.pt"})
    # the synthetic dataset, tiny presets and a paper that trained from scratch: no refusal
    assert check_starting_points("meaci", "paper", "synthetic", {}) == {}
    assert check_starting_points("meaci", "tiny", "ucf101", {}) == {}
    assert check_starting_points("stm", "paper", "ucf101", {}) == {}
    # an explicit none runs, and says so
    overrides = check_starting_points("meaci", "paper", "ucf101", {"rgb_pretrained": "none"})
    assert overrides == {"rgb_pretrained": EXPLICIT_NONE}


def test_explicit_none_is_recorded_and_coviar_drops_the_imagenet_multipliers() -> None:
    options = weights_off("coviar", "tiny")
    model = build("coviar", **{k: EXPLICIT_NONE for k in options})
    assert {r["start"] for r in model.pretrained} == {"random (explicit)"}
    assert {r["weights"] for r in model.pretrained} == {EXPLICIT_NONE}
    paper = get_method("coviar").make_config("paper")
    lr = {"body_lr_mult": paper.body_lr_mult, "stem_lr_mult": paper.stem_lr_mult}
    model = build("coviar", **lr)  # random weights: the reference's 0.01 x would starve it
    assert [r["lr_mult"] for r in model.pretrained] == [{"body": 1.0, "stem": 1.0}] * 3
    scales = {g.name: g.lr_scale for g in model.param_groups()}
    config = model.config
    assert scales["iframe.body"] == pytest.approx(config.stream_lr_scale[0])


# a Chinese-CLIP text tower unlike the tiny preset's cn_* fields (hidden 64, 2 layers,
# 2 heads, feed-forward 128, vocabulary 1024, 64 positions)
CN_TOWER = dict(
    hidden_size=48,
    num_hidden_layers=3,
    num_attention_heads=4,
    intermediate_size=96,
    max_position_embeddings=40,
)
CN_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"向右左上下平移射箭", *"abc"]


def _chinese_clip_dir(directory: Path, projection_dim: int, text_only: bool = False) -> str:
    """A Hugging Face Chinese-CLIP directory from random init (``save_pretrained``) with
    the CN_TOWER text tower and a vocab.txt written here; ``text_only``: the text model
    saved alone (no ``text_model.`` prefix, no projection)."""
    from transformers import ChineseCLIPConfig, ChineseCLIPModel, ChineseCLIPTextModel

    text = {"vocab_size": len(CN_VOCAB), **CN_TOWER}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 2, "image_size": 32, "patch_size": 16}  # fmt: skip
    config = ChineseCLIPConfig(
        text_config=text, vision_config=vision, projection_dim=projection_dim
    )
    torch.manual_seed(0)
    model = ChineseCLIPTextModel(config.text_config) if text_only else ChineseCLIPModel(config)
    model.save_pretrained(str(directory))
    (directory / "vocab.txt").write_text("\n".join(CN_VOCAB) + "\n", encoding="utf-8")
    return str(directory)


def test_check_builds_the_chinese_tower_from_the_directory_config(tmp_path: Path, capsys) -> None:
    tiny = get_method("tpclip").make_config("tiny")
    assert (tiny.cn_hidden, tiny.cn_layers, tiny.cn_vocab_size) != (48, 3, len(CN_VOCAB))
    directory = _chinese_clip_dir(tmp_path / "cn", projection_dim=tiny.embed_dim)
    # what a run builds from the directory (and loads)
    run = build("tpclip", pretrained_cn=directory).net.cn
    shapes = {k: list(v.shape) for k, v in run.state_dict().items()}
    assert shapes["encoder.embeddings.word_embeddings.weight"] == [len(CN_VOCAB), 48]

    code = main(["weights", "check", "--method", "tpclip", "--option", "pretrained_cn",
                 directory, "--preset", "tiny", "--num-classes", "3", "--json"])  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["layout"] == "huggingface" and report["target"] == "ChineseTextBranch"
    assert report["built_on"] == "meta"
    assert report["matched"] == len(shapes)  # every tensor of the run's tower
    assert not report["missing"] and not report["unexpected"] and not report["mismatched"]
    n_encoder = sum(k.startswith("encoder.") for k in shapes)
    assert report["landed"] == {"encoder": n_encoder, "projection": 1}
    assert report["conflicts"] == []
    # the tower checked against is the run's, shape for shape (not the cn_* fields')
    model = build("tpclip", **weights_off("tpclip", "tiny"))
    target = target_module(model, "tpclip", "pretrained_cn", Path(directory))
    assert {k: list(v.shape) for k, v in target.state_dict().items()} == shapes
    assert model.net.cn.encoder.config.hidden_size == tiny.cn_hidden  # the method's own: unchanged
    # the text report
    assert main(["weights", "check", "--method", "tpclip", "--option", "pretrained_cn",
                 directory, "--preset", "tiny"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert f"matched:      {len(shapes)}" in out and f"encoder: {n_encoder}" in out
    assert "a run would refuse" not in out


def test_check_says_what_a_run_refuses_in_a_chinese_clip_directory(tmp_path: Path) -> None:
    tiny = get_method("tpclip").make_config("tiny")
    model = build("tpclip", **weights_off("tpclip", "tiny"))
    # another projection width than CLIP's embedding: every key fits, the run refuses
    wide = _chinese_clip_dir(tmp_path / "wide", projection_dim=2 * tiny.embed_dim)
    report = check_checkpoint(model, "tpclip", "pretrained_cn", wide)
    assert not report["missing"] and not report["mismatched"]
    assert report["conflicts"] == ["pretrained_cn projects to 64, CLIP's embedding is 32"]
    with pytest.raises(ValueError, match="projects to 64, CLIP's embedding is 32"):
        build("tpclip", pretrained_cn=wide)
    # the text model saved alone: not Chinese-CLIP's names, no projection; refused by
    # both, by name (transformers would read it as a default-size Chinese-CLIP)
    alone = _chinese_clip_dir(tmp_path / "alone", tiny.embed_dim, text_only=True)
    for attempt in (
        lambda: build("tpclip", pretrained_cn=alone),
        lambda: check_checkpoint(model, "tpclip", "pretrained_cn", alone),
    ):
        with pytest.raises(WeightsError, match="'chinese_clip_text_model' model, not a whole"):
            attempt()
    # a whole model without its text projection
    from safetensors.torch import load_file, save_file

    bare = Path(_chinese_clip_dir(tmp_path / "bare", projection_dim=tiny.embed_dim))
    state = load_file(str(bare / "model.safetensors"))
    del state["text_projection.weight"]
    save_file(state, str(bare / "model.safetensors"), metadata={"format": "pt"})
    report = check_checkpoint(model, "tpclip", "pretrained_cn", str(bare))
    assert report["missing"] == ["projection.weight"]
    assert report["conflicts"] == ["pretrained_cn: no text_projection.weight"]
    with pytest.raises(WeightsError, match="no text_projection.weight"):
        build("tpclip", pretrained_cn=str(bare))
    # a vocab.txt longer than the embedding table: token ids the run could not embed
    longer = _chinese_clip_dir(tmp_path / "longer", projection_dim=tiny.embed_dim)
    (Path(longer) / "vocab.txt").write_text("\n".join([*CN_VOCAB, "d", "e"]) + "\n")
    report = check_checkpoint(model, "tpclip", "pretrained_cn", longer)
    assert report["conflicts"] == [
        f"pretrained_cn: vocab.txt has {len(CN_VOCAB) + 2} tokens, the text encoder's "
        f"embedding {len(CN_VOCAB)} rows"
    ]
