"""Exact multi-view testing whatever the number of processes (issue 12, part 3).

Every (video, view) is scored once after the DDP gather (the sampler's padded repeats
are dropped), the per-video sums do not depend on the order the rows arrive in, and
mean-class accuracy averages over the classes that have test videos. The end-to-end
check runs the same test set on 1 process and on 2 (Lightning DDP, gloo, CPU) and asks
for bit-identical per-video scores; the module doubles as that run's script
(``python -m tests.test_distributed_eval``) because Lightning's DDP launcher starts the
second process by running the same command again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DistributedSampler

from methods.base import MeanClassAccuracy, aggregate_views

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ aggregation


def _views(videos: int, views: int, num_classes: int = 4, seed: int = 0) -> tuple:
    """One row per (video, view), video-major: (video_index, view, label, softmax scores)."""
    g = torch.Generator().manual_seed(seed)
    index = torch.arange(videos).repeat_interleave(views)
    view = torch.arange(views).repeat(videos)
    labels = index % num_classes
    scores = torch.randn(videos * views, num_classes, generator=g).softmax(dim=-1)
    return index, view, labels, scores


def _reference(index, view, labels, scores) -> dict[int, tuple[int, int, list[float]]]:
    """Per video (label, views, mean score) from distinct (video, view) pairs, in Python."""
    seen: dict[tuple[int, int], list[float]] = {}
    label_of: dict[int, int] = {}
    for i, v, y, s in zip(
        index.tolist(), view.tolist(), labels.tolist(), scores.tolist(), strict=True
    ):
        seen.setdefault((i, v), s)
        label_of[i] = y
    out = {}
    for video in sorted(label_of):
        rows = [s for (i, _), s in sorted(seen.items()) if i == video]
        mean = [sum(col) / len(rows) for col in zip(*rows, strict=True)]
        out[video] = (label_of[video], len(rows), mean)
    return out


def test_aggregate_drops_repeated_views_and_counts_the_true_views() -> None:
    index, view, labels, scores = _views(videos=3, views=5)
    # the first two rows again (what DistributedSampler pads with), and row 7 three times
    extra = torch.tensor([0, 1, 7, 7])
    rows = [t[torch.cat([torch.arange(15), extra])] for t in (index, view, labels, scores)]
    out = aggregate_views(*rows)
    ref = _reference(*rows)
    assert out.video_index.tolist() == [0, 1, 2]
    assert out.labels.tolist() == [ref[v][0] for v in range(3)]
    assert out.views.tolist() == [5, 5, 5]
    torch.testing.assert_close(out.scores, torch.tensor([ref[v][2] for v in range(3)]))
    # the same rows without the repeats give the same tensor, bit for bit
    assert torch.equal(aggregate_views(index, view, labels, scores).scores, out.scores)


def test_aggregate_is_independent_of_row_order() -> None:
    rows = _views(videos=7, views=11, num_classes=5)
    base = aggregate_views(*rows)
    for seed in range(5):
        perm = torch.randperm(len(rows[0]), generator=torch.Generator().manual_seed(seed))
        shuffled = aggregate_views(*(t[perm] for t in rows))
        assert torch.equal(shuffled.scores, base.scores)
        assert torch.equal(shuffled.video_index, base.video_index)
        assert torch.equal(shuffled.labels, base.labels)


def test_aggregate_keeps_missing_videos_and_views_out() -> None:
    index, view, labels, scores = _views(videos=4, views=3)
    keep = (index != 1) & ~((index == 3) & (view == 0))  # video 1 unread, a view of 3 skipped
    out = aggregate_views(*(t[keep] for t in (index, view, labels, scores)))
    assert out.video_index.tolist() == [0, 2, 3]
    assert out.views.tolist() == [3, 3, 2]
    torch.testing.assert_close(out.scores[2], scores[10:12].mean(dim=0))


def test_aggregate_of_nothing() -> None:
    out = aggregate_views(*(t[:0] for t in _views(videos=1, views=1, num_classes=3)))
    assert out.scores.shape == (0, 3) and len(out.video_index) == len(out.views) == 0


def test_simulated_ddp_gather_matches_one_process() -> None:
    """torch's DistributedSampler (what Lightning puts on the test loader) pads 33 views to
    a multiple of the world size; the rank-major gather then aggregates to exactly the
    one-process result, and each video keeps its true number of views."""
    rows = _views(videos=3, views=11)  # 33 views: padded for 2, 4 and 5 ranks
    one = aggregate_views(*rows)
    for world in (2, 4, 5):
        order = [
            i
            for rank in range(world)
            for i in DistributedSampler(range(33), num_replicas=world, rank=rank, shuffle=False)
        ]
        assert len(order) > 33  # padded with repeats
        gathered = aggregate_views(*(t[torch.tensor(order)] for t in rows))
        assert torch.equal(gathered.scores, one.scores)
        assert gathered.views.tolist() == [11, 11, 11]


# ------------------------------------------------------------------ mean-class


def _mean_class_reference(preds: list[int], targets: list[int]) -> float:
    """Mean over the classes with a target of the fraction of their samples predicted right."""
    classes = sorted(set(targets))
    per_class = [
        sum(p == t for p, t in zip(preds, targets, strict=True) if t == c) / targets.count(c)
        for c in classes
    ]
    return sum(per_class) / len(per_class)


def test_mean_class_leaves_out_classes_without_test_videos() -> None:
    # class 2 has no video but one video of class 0 is predicted as 2; class 3 has neither
    targets = [0, 0, 1, 1, 1]
    preds = [0, 2, 1, 1, 0]
    scores = torch.nn.functional.one_hot(torch.tensor(preds), 4).float()
    metric = MeanClassAccuracy(4)
    metric.update(scores, torch.tensor(targets))
    expected = _mean_class_reference(preds, targets)
    assert expected == (1 / 2 + 2 / 3) / 2
    assert abs(float(metric.compute()) - expected) < 1e-6
    # torchmetrics' macro average counts class 2 as 0: the bug this replaces
    from torchmetrics.classification import MulticlassAccuracy

    macro = MulticlassAccuracy(4, average="macro")
    macro.update(scores, torch.tensor(targets))
    assert abs(float(macro.compute()) - (1 / 2 + 2 / 3 + 0) / 3) < 1e-6


def test_mean_class_matches_the_reference_on_random_cases() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        n = int(torch.randint(2, 30, (1,), generator=g))
        targets = torch.randint(0, 6, (n,), generator=g)  # some of the 6 classes absent
        scores = torch.rand(n, 6, generator=g)
        metric = MeanClassAccuracy(6)
        metric.update(scores[: n // 2], targets[: n // 2])  # in two updates
        metric.update(scores[n // 2 :], targets[n // 2 :])
        expected = _mean_class_reference(scores.argmax(dim=1).tolist(), targets.tolist())
        assert abs(float(metric.compute()) - expected) < 1e-6


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_mean_class_of_nothing_is_zero() -> None:
    assert float(MeanClassAccuracy(3).compute()) == 0.0


# ------------------------------------------------------------------ end to end

# 3 test videos x 3 crops = 9 views: DistributedSampler pads 2 ranks to 10
DATASET = {"num_classes": 3, "videos_per_class": 4, "frames": 24, "size": (64, 80)}
TEST_CROPS = 3


def _test_run(devices: int, root: str, out: str) -> None:
    """Test the seeded tiny I-frame model on ``devices`` CPU processes; rank 0 writes the
    per-video scores and metrics to ``out`` (torch.save)."""
    import lightning as L

    import methods  # noqa: F401  (registers every method)
    from datamodules.datamodule import CompressedVideoDataModule
    from methods.registry import create_method

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = create_method(
        "iframe",
        "tiny",
        num_classes=DATASET["num_classes"],
        class_names=[str(c) for c in range(DATASET["num_classes"])],
        overrides={"test_crops": TEST_CROPS},
    )
    dm = CompressedVideoDataModule(
        model.data_spec,
        root=root,
        batch_size=1,  # a view's logits do not depend on which views share its batch
        dataset_options=DATASET,
        progress=False,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.test(model, datamodule=dm, verbose=False)
    if trainer.global_rank == 0:
        videos = model.test_video_scores
        torch.save(
            {
                "video_index": videos.video_index,
                "scores": videos.scores,
                "views": videos.views,
                "results": model.test_results,
                "world_size": trainer.world_size,
            },
            out,
        )


def test_one_and_two_processes_give_identical_per_video_scores(tmp_path: Path) -> None:
    """1 process in this one, 2 (DDP, gloo) in a subprocess, on 9 test views (not a
    multiple of 2). Test batches hold one view: on the CPU a convolution's last bits can
    depend on the batch it runs in, and the ranks' batches differ from one process's."""
    from datamodules.datamodule import CompressedVideoDataModule

    root = tmp_path / "syn"
    CompressedVideoDataModule(
        None, root=root, dataset_options=DATASET, progress=False
    ).prepare_data()
    _test_run(1, str(root), str(tmp_path / "one.pt"))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.test_distributed_eval",
            str(root),
            str(tmp_path / "two.pt"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    one = torch.load(tmp_path / "one.pt")
    two = torch.load(tmp_path / "two.pt")
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert torch.equal(one["video_index"], two["video_index"])
    assert one["views"].tolist() == two["views"].tolist() == [TEST_CROPS] * 3
    assert torch.equal(one["scores"], two["scores"])
    assert one["results"] == two["results"]
    assert two["results"]["views_per_video"] == TEST_CROPS
    assert two["results"]["videos"] == 3
    json.dumps(two["results"])  # plain numbers for the run record


if __name__ == "__main__":
    _test_run(2, sys.argv[1], sys.argv[2])
