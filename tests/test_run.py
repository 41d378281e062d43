"""`cvbench run` settings, K-shot runs, `cvbench test --checkpoint`, `--method all`, resume.

Config layers (configs/<method>/<dataset>.yaml, --config, flags) and their errors; the
K-shot draw; a checkpoint of a tiny run evaluated again to the same numbers; every
registered method rebuilt from a checkpoint; a run killed after its epoch-1 checkpoint
and resumed ends with the same weights and numbers as an uninterrupted one.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

import methods  # noqa: F401  (registers every method)
from cvbench.cli import build_parser, main
from cvbench.commands.run import build_spec
from cvbench.configs import CONFIGS_DIR, resolve
from cvbench.run import RunSpec, read_checkpoint, rebuild_method, train_and_test
from datamodules.datasets import VideoItem, VideoList
from datamodules.fewshot import FewShotError, few_shot
from methods.config import ConfigError, apply_overrides
from methods.registry import create_method, get_method, list_methods
from tests.test_methods import dummy_batch

OPTIONS = {"num_classes": 3, "videos_per_class": 4, "frames": 24, "size": [64, 80]}
DATASETS = ("synthetic", "ucf101", "hmdb51")  # every method has a config file for each


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synthetic")


def _dataset_args(root: Path) -> list[str]:
    out = ["--root", str(root)]
    for key, value in OPTIONS.items():
        out += ["--dataset-option", f"{key}={value}"]
    return out


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize("method", list_methods())
def test_every_method_has_commented_configs_that_resolve(method: str) -> None:
    entry = get_method(method)
    for dataset in DATASETS:
        path = CONFIGS_DIR / method / f"{dataset}.yaml"
        assert path.is_file(), path
        assert path.read_text().startswith("#"), f"{path}: say where the values come from"
        settings = resolve(method, dataset)
        assert settings.files == (f"configs/{method}/{dataset}.yaml",)
        assert settings.preset == ("tiny" if dataset == "synthetic" else "paper")
        entry.make_config(settings.preset, settings.config)
        apply_overrides(entry.module.default_optim(), settings.optim)


def test_config_layers_override_in_order(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    _write(
        configs / "iframe" / "synthetic.yaml",
        {
            "preset": "tiny",
            "epochs": 3,
            "batch_size": 4,
            "optim": {"lr": 0.1, "weight_decay": 0.5},
            "config": {"dropout": 0.3, "segments": 2},
            "dataset_options": {"num_classes": 3},
        },
    )
    extra = _write(
        tmp_path / "extra.yaml",
        {"epochs": 5, "optim": {"lr": 0.2}, "config": {"dropout": 0.4}, "test_batch_size": 7},
    )
    parser = build_parser()

    def spec(*flags: str) -> RunSpec:
        args = parser.parse_args(
            ["run", "--method", "iframe", "--config-dir", str(configs), *flags]
        )
        return build_spec(args, "iframe")

    base = spec()
    assert (base.preset, base.epochs, base.batch_size) == ("tiny", 3, 4)
    assert base.optim == {"lr": 0.1, "weight_decay": 0.5}
    assert base.config_files == (str(configs / "iframe" / "synthetic.yaml"),)

    layered = spec("--config", str(extra))
    assert (layered.epochs, layered.batch_size, layered.test_batch_size) == (5, 4, 7)
    assert layered.optim == {"lr": 0.2, "weight_decay": 0.5}  # merged key by key
    assert layered.overrides == {"dropout": 0.4, "segments": 2}
    assert layered.dataset_options == {"num_classes": 3}
    assert layered.config_files == (*base.config_files, str(extra))

    flags = spec(
        "--config",
        str(extra),
        "--epochs",
        "9",
        "--lr",
        "0.3",
        "--batch-size",
        "2",
        "--set",
        "dropout=0.5",
        "--preset",
        "paper",
        "--dataset-option",
        "num_classes=4",
    )
    assert (flags.preset, flags.epochs, flags.batch_size) == ("paper", 9, 2)
    assert flags.optim == {"lr": 0.3, "weight_decay": 0.5}
    assert flags.overrides == {"dropout": 0.5, "segments": 2}
    assert flags.dataset_options == {"num_classes": 4}


def test_without_config_files_the_method_defaults_apply(tmp_path: Path) -> None:
    for method in list_methods():
        optim = get_method(method).module.default_optim()
        synthetic = resolve(method, "synthetic", config_dir=tmp_path)
        real = resolve(method, "ucf101", config_dir=tmp_path)
        assert (synthetic.preset, real.preset) == ("tiny", "paper")
        assert synthetic.epochs == real.epochs == optim.epochs
        assert synthetic.batch_size == 8 and synthetic.files == ()


@pytest.mark.parametrize(
    ("content", "names"),
    [
        ({"epochs": "ten"}, ["epochs"]),
        ({"batch_size": 0}, ["batch_size"]),
        ({"dropout": 0.1}, ["dropout", "config:"]),  # a method field at the top level
        ({"config": {"no_such_field": 1}}, ["no_such_field"]),
        ({"config": {"dropout": "high"}}, ["dropout"]),
        ({"optim": {"lr": "fast"}}, ["lr"]),
        ({"optim": {"optimizer": "lamb"}}, ["optimizer"]),
        ({"preset": "huge"}, ["preset", "huge"]),
        ({"config": [1, 2]}, ["config"]),
        ({"dataset_options": "many"}, ["dataset_options"]),
    ],
)
def test_config_errors_name_the_key_and_the_file(
    tmp_path: Path, content: dict, names: list[str]
) -> None:
    bad = _write(tmp_path / "bad.yaml", content)
    with pytest.raises(ConfigError) as error:
        resolve("iframe", "synthetic", bad, config_dir=tmp_path)
    for text in (str(bad), *names):
        assert text in str(error.value)
    # the same file as the default config of the method and dataset
    default = _write(tmp_path / "tree" / "iframe" / "synthetic.yaml", content)
    with pytest.raises(ConfigError, match=str(default)):
        resolve("iframe", "synthetic", config_dir=tmp_path / "tree")


def test_a_file_that_is_not_a_mapping_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=str(bad)):
        resolve("iframe", "synthetic", bad, config_dir=tmp_path)


# --------------------------------------------------------------------------- K-shot


def _videos(counts: dict[str, int]) -> VideoList:
    items = [
        VideoItem(Path(f"/v/{name}/{i}.avi"), label, f"{name}/{i}.avi")
        for label, (name, n) in enumerate(counts.items())
        for i in range(n)
    ]
    return VideoList("toy", 1, "train", tuple(counts), tuple(items))


def test_few_shot_keeps_k_per_class_whatever_the_file_order() -> None:
    videos = _videos({"a": 9, "b": 5, "c": 12})
    picked = few_shot(videos, 4, seed=0)
    assert [sum(item.label == c for item in picked.items) for c in range(3)] == [4, 4, 4]
    assert picked.classes == videos.classes and picked.subset == "train"
    shuffled = list(videos.items)
    random.Random(1).shuffle(shuffled)
    again = few_shot(VideoList("toy", 1, "train", videos.classes, tuple(shuffled)), 4, seed=0)
    assert again.items == picked.items  # same videos, same order
    assert few_shot(videos, 4, seed=1).items != picked.items
    # a class's draw depends on its own videos only
    fewer = _videos({"a": 9, "b": 4, "c": 12})
    keep_a = [i for i in few_shot(fewer, 4, seed=0).items if i.label == 0]
    assert keep_a == [i for i in picked.items if i.label == 0]


def test_few_shot_names_a_class_with_fewer_than_k_videos() -> None:
    with pytest.raises(FewShotError, match="class 'b' has 5 videos, fewer than shots=8"):
        few_shot(_videos({"a": 9, "b": 5, "c": 12}), 8, seed=0)


# --------------------------------------------------------------------------- runs


def _run(root: Path, tmp_path: Path, capsys, *extra: str) -> dict:
    args = [
        "run",
        "--method",
        "iframe",
        "--config-dir",
        str(tmp_path / "no-configs"),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--no-progress",
        *_dataset_args(root),
        "--work-dir",
        str(tmp_path / "work"),
        "--output",
        str(tmp_path / "records"),
        "--json",
        *extra,
    ]
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


def test_k_shot_run_then_checkpoint_evaluated_again(
    synthetic_root: Path, tmp_path: Path, capsys
) -> None:
    config = _write(tmp_path / "run.yaml", {"config": {"dropout": 0.1}})
    record = _run(synthetic_root, tmp_path, capsys, "--shots", "2", "--config", str(config))
    assert record["kind"] == "run" and record["shots"] == 2 and record["shot_seed"] == 0
    assert "-k2-seed0-" in record["run_id"]
    assert record["config_files"] == [str(config)] and record["config"]["dropout"] == 0.1
    assert record["data"]["train_videos"] == 3 * 2  # K per class
    assert record["data"]["test_videos"] == 3 and record["metrics"]["test_videos"] == 3
    stored = json.loads((tmp_path / "records" / record["record_file"]).read_text())
    assert stored["shots"] == 2

    # the checkpoint alone rebuilds the method: the same test, the same numbers
    checkpoint = Path(record["checkpoint"])
    again = _evaluate(checkpoint, tmp_path / "eval", capsys)
    assert again["metrics"] == record["metrics"]
    assert again["kind"] == "run" and again["evaluated_from"] == str(checkpoint)
    assert again["run_id"].startswith(f"{record['run_id']}-eval-synthetic-s1-")
    assert again["trained_run_id"] == record["run_id"] and again["shots"] == 2
    assert again["config"] == record["config"] and again["epochs"] == 1
    assert again["timings"]["train_s"] is None
    assert (tmp_path / "eval" / again["record_file"]).is_file()

    # a checkpoint without the cvbench entry: the registry name from the class name
    state = torch.load(checkpoint, weights_only=True)
    del state["cvbench"]
    bare = tmp_path / "bare.ckpt"
    torch.save(state, bare)
    assert read_checkpoint(bare)[0] == "iframe"
    extra = [*_dataset_args(synthetic_root), "--dataset", "synthetic"]
    assert _evaluate(bare, tmp_path / "eval", capsys, *extra)["metrics"] == record["metrics"]


def _evaluate(checkpoint: str | Path, output: Path, capsys, *extra: str) -> dict:
    args = ["test", "--checkpoint", str(checkpoint), "--output", str(output), "--no-progress"]
    assert main([*args, "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_test_names_a_missing_or_foreign_checkpoint(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "missing.ckpt"
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    unknown = tmp_path / "unknown.ckpt"
    hparams = {"method": "NoSuchModule", "config": {}, "num_classes": 1}
    torch.save({"state_dict": {}, "hyper_parameters": {**hparams, "class_names": ["a"]}}, unknown)
    for path, cause in (
        (missing, "checkpoint not found"),
        (foreign, "not a cvbench checkpoint"),
        (garbage, "not a readable checkpoint"),
        (unknown, "not a cvbench checkpoint"),
    ):
        assert main(["test", "--checkpoint", str(path), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and cause in err, err


@pytest.mark.parametrize("method", list_methods())
def test_every_method_is_rebuilt_from_its_checkpoint(method: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_method(method, "tiny", num_classes=3, class_names=["a b", "c d", "e f"])
    path = tmp_path / "method.ckpt"
    hparams = dict(model.hparams)
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams}, path)
    name, checkpoint = read_checkpoint(path)  # found through the class name
    assert name == method
    torch.manual_seed(1)  # other initial weights: the checkpoint's must replace them
    rebuilt = rebuild_method(name, checkpoint)
    batch = dummy_batch(model.data_spec)
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key
    # outputs agree to float rounding: features a method derives from loaded weights
    # (tpclip's frozen text features) are recomputed, in another order than at init
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(batch), model.eval()(batch))


def test_method_all_runs_each_with_its_configs_and_reports_failures(monkeypatch, capsys) -> None:
    import cvbench.commands.run as command

    seen: list[RunSpec] = []

    def fake(spec: RunSpec) -> dict:
        seen.append(spec)
        if spec.method == "cvpt":
            raise RuntimeError("out of memory")
        return {
            "run_id": f"{spec.method}-id",
            "method": spec.method,
            "preset": spec.preset,
            "dataset": spec.dataset,
            "split": spec.split,
            "metrics": {
                "top1": 0.5,
                "top5": 1.0,
                "mean_class": 0.5,
                "test_videos": 2,
                "views_per_video": 1.0,
            },
            "tunable_params": 1,
            "total_params": 2,
            "timings": {"train_s": 1.0},
        }

    monkeypatch.setattr(command, "train_and_test", fake)
    assert main(["run", "--method", "all", "--epochs", "1"]) == 1
    out = capsys.readouterr()
    assert [s.method for s in seen] == list_methods()
    for spec in seen:  # each method's own config file, the flags on top
        assert spec.config_files == (f"configs/{spec.method}/synthetic.yaml",)
        assert spec.epochs == 1 and spec.preset == "tiny"
    assert "cvpt: FAILED: RuntimeError: out of memory" in out.err
    assert f"{len(list_methods()) - 1} of {len(list_methods())} methods done" in out.out
    assert "failed: cvpt" in out.out
    assert out.out.count("record: ") == len(list_methods()) - 1


# --------------------------------------------------------------------------- faults


class _Kill(L.Callback):
    """Kill the run when epoch 2 starts, after the epoch-1 checkpoint was written."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == 2:
            raise RuntimeError("killed after the epoch-1 checkpoint")


def test_a_killed_run_resumes_to_the_same_weights_and_numbers(
    synthetic_root: Path, tmp_path: Path
) -> None:
    def spec(work: str, resume: bool = False) -> RunSpec:
        return RunSpec(
            method="iframe",
            root=str(synthetic_root),
            dataset_options=OPTIONS,
            overrides={"dropout": 0.5},  # dropout draws: the RNG must not depend on history
            epochs=3,
            batch_size=2,
            limit_train_batches=2,
            work_dir=str(tmp_path / work),
            output=str(tmp_path / work / "records"),
            resume=resume,
            progress=False,
        )

    straight = train_and_test(spec("straight"))
    with pytest.raises(RuntimeError, match="killed"):
        train_and_test(spec("killed"), callbacks=[_Kill()])
    last = Path(spec("killed").work_dir) / straight["run_id"] / "checkpoints" / "last.ckpt"
    interrupted = torch.load(last, weights_only=True)
    assert interrupted["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"] == 2
    resumed = train_and_test(spec("killed", resume=True))
    logs = sorted(p.name for p in (last.parent.parent / "logs").iterdir())
    assert logs == ["version_0", "version_1"]  # the killed attempt's logs are kept

    assert resumed["run_id"] == straight["run_id"]
    assert resumed["metrics"] == straight["metrics"]
    a = torch.load(straight["checkpoint"], weights_only=True)
    b = torch.load(resumed["checkpoint"], weights_only=True)
    assert a["global_step"] == b["global_step"] == 3 * 2
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for sa, sb in zip(
        a["optimizer_states"][0]["state"].values(),
        b["optimizer_states"][0]["state"].values(),
        strict=True,
    ):
        for k in sa:
            assert torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])), k


_CHILD = """
import json
import sys

import lightning as L
import torch
from cvbench.run import RunSpec, train_and_test

mode, root, work, options = sys.argv[1:5]
torch.set_num_threads(1)


class Kill(L.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 2:
            raise SystemExit(3)


spec = RunSpec(
    method="iframe", root=root, dataset_options=json.loads(options), overrides={"dropout": 0.5},
    epochs=3,
    batch_size=2, limit_train_batches=3, num_workers=2, work_dir=work,
    output=work + "/records", resume=mode == "resume", progress=False,
)
print(train_and_test(spec, callbacks=[Kill()] if mode == "kill" else [])["checkpoint"])
"""


@pytest.mark.slow
def test_a_killed_run_with_loader_workers_resumes_to_the_same_weights(
    synthetic_root: Path, tmp_path: Path
) -> None:
    """As above with 2 persistent loader workers, which draw the first keys of an epoch
    as soon as Lightning builds the iterator (each run in its own process: a forked
    worker must not inherit decoder state from earlier tests)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    root = str(Path(__file__).resolve().parent.parent)

    def child(mode: str, work: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, script, mode, synthetic_root, tmp_path / work, json.dumps(OPTIONS)],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=root,
            env={**os.environ, "PYTHONPATH": root},
        )

    straight = child("straight", "straight")
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert child("kill", "killed").returncode == 3
    resumed = child("resume", "killed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = torch.load(straight.stdout.split()[-1], weights_only=True)["state_dict"]
    b = torch.load(resumed.stdout.split()[-1], weights_only=True)["state_dict"]
    for key, value in a.items():
        assert torch.equal(value, b[key]), key
