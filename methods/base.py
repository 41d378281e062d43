"""One LightningModule base for every method: metrics, optimisation, multi-view testing.

A method subclass supplies its network (``forward(batch) -> logits``), its loss when it is
not plain cross-entropy (``training_loss``), its data needs (``data_spec``), the
parameters it trains (everything with ``requires_grad``; frozen parts are registered with
``freeze``) and, optionally, per-group learning rates (``param_groups``) — declared by the
method on module objects, never by matching parameter names.

Metrics (torchmetrics): top-1 and top-5 *overall* accuracy (micro, what the papers
report) and *mean-class* accuracy (the mean of per-class accuracy over the classes that
have at least one target, labelled as such). At test time every (video, view) is scored
exactly once, whatever the number of processes, and the softmax scores are averaged per
``video_index`` before the metrics (:func:`aggregate_views`), so test accuracy is per
video, as in the papers, and 1 and N processes give the same per-video scores.

Empty batches (every sample failed to read: ``datamodules.contract.is_empty``) are
skipped by every step. In training, one process skips the optimisation step (Lightning
skips a step whose ``training_step`` returns None, also inside gradient accumulation:
the other batches' gradients are kept). Under DDP a rank may not skip alone: the others
would wait in the gradient all-reduce for ever (Lightning refuses None there), so the
rank returns a zero loss that touches every trainable parameter (:meth:`BaseMethod.
_empty_loss`): all ranks all-reduce, this one adds zero gradients, and the step is the
others' gradients averaged over all ranks (scaled by (world - 1) / world for that step).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import lightning as L
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from datamodules.contract import DataSpec, is_empty
from methods.config import to_dict


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and schedule; a method's ``default_optim`` gives its paper's values."""

    optimizer: Literal["adamw", "sgd"] = (
        "adamw"  # torch.optim.AdamW or SGD (momentum, nesterov off)
    )
    lr: float = 1e-3  # base learning rate (groups scale it by their lr_scale)
    weight_decay: float = 1e-4  # decoupled for AdamW, L2 for SGD
    momentum: float = 0.9  # SGD only
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW only
    schedule: Literal["cosine", "step", "constant"] = "cosine"  # after the warm-up
    warmup_epochs: float = 0.0  # linear warm-up from 0, in epochs (fractions allowed)
    milestones: tuple[int, ...] = ()  # "step": epochs at which the lr is multiplied by gamma
    gamma: float = 0.1  # "step": factor at each milestone
    epochs: int = 10  # schedule length in epochs (the Trainer's max_epochs by default)


@dataclass
class ParamGroup:
    """A set of parameters with its own learning-rate scale (declared by the method)."""

    name: str
    params: list[nn.Parameter] = field(default_factory=list)
    lr_scale: float = 1.0
    weight_decay: float | None = None  # None: the optimiser's


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class MeanClassAccuracy(MulticlassAccuracy):
    """Mean over the classes present in the targets (at least one sample) of per-class
    top-1 accuracy.

    torchmetrics' ``average="macro"`` drops a class only when it has neither targets nor
    predictions, so a class with no test video that some video is wrongly assigned to
    counts as 0 and lowers the mean; here it is left out, as a class absent from the test
    set has no accuracy to average.
    """

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        super().__init__(num_classes, top_k=1, average=None, **kwargs)

    def compute(self) -> torch.Tensor:
        per_class = super().compute()  # (C,) tp / (tp + fn), 0 where a class has no target
        present = (self.tp + self.fn) > 0  # (C,) the label support, synced like the rest
        if not present.any():
            return per_class.new_zeros(())
        return per_class[present].mean()


def _accuracy_metrics(num_classes: int, sync_on_compute: bool = True) -> nn.ModuleDict:
    """``sync_on_compute`` False where every rank already holds all the inputs (testing)."""
    kw = {"sync_on_compute": sync_on_compute}
    return nn.ModuleDict(
        {
            "top1": MulticlassAccuracy(num_classes, top_k=1, average="micro", **kw),
            "top5": MulticlassAccuracy(
                num_classes, top_k=min(5, num_classes), average="micro", **kw
            ),
            "mean_class": MeanClassAccuracy(num_classes, **kw),
        }
    )


@dataclass
class VideoScores:
    """Per-video test scores: the views' softmax scores averaged per video."""

    video_index: torch.Tensor  # (V,) ascending, each test video with a scored view once
    labels: torch.Tensor  # (V,)
    scores: torch.Tensor  # (V, num_classes) mean softmax score over the video's views
    views: torch.Tensor  # (V,) distinct views averaged


def aggregate_views(
    video_index: torch.Tensor,  # (N,) one row per scored view, in any order
    view: torch.Tensor,  # (N,)
    labels: torch.Tensor,  # (N,)
    scores: torch.Tensor,  # (N, num_classes) softmax scores
) -> VideoScores:
    """Average the views' scores per video, each (video, view) once, independent of order.

    Rows repeating a (video, view) pair are dropped (the first one in the given order is
    kept): under DDP Lightning's ``DistributedSampler`` pads the test set to a multiple of
    the world size with repeats of its first samples. Dropping them after the gather,
    rather than swapping in an unpadded sampler, keeps every rank running the same number
    of test batches (ranks stay in step for the gather and for any synced logging) and
    serves whatever sampler the Trainer or a user puts on the test loader; the cost is at
    most world size - 1 views scored twice.

    The rows are sorted by (video, view) and each video's sum is taken view by view in
    ascending order with elementwise additions, so the result depends only on the set of
    rows: 1 and N processes give bit-identical per-video scores.
    """
    num_classes = scores.shape[-1]
    if len(video_index) == 0:
        empty = video_index.new_zeros(0)
        return VideoScores(empty, labels.new_zeros(0), scores.new_zeros(0, num_classes), empty)
    key = video_index * (int(view.max()) + 1) + view  # (N,) orders by (video, view)
    key, order = torch.sort(key, stable=True)
    first = torch.ones_like(key, dtype=torch.bool)
    first[1:] = key[1:] != key[:-1]
    rows = order[first]  # (M,) each (video, view) once, sorted
    video_index, labels, scores = video_index[rows], labels[rows], scores[rows]
    videos, inverse, counts = torch.unique_consecutive(
        video_index, return_inverse=True, return_counts=True
    )  # (V,), (M,), (V,)
    starts = torch.cumsum(counts, 0) - counts  # (V,) each video's first row
    slot = torch.arange(len(rows), device=rows.device) - starts[inverse]  # (M,) view rank
    summed = scores.new_zeros(len(videos), num_classes)
    for k in range(int(counts.max())):
        at = slot == k  # at most one row per video: no two additions race or reorder
        summed[inverse[at]] += scores[at]
    video_labels = labels.new_empty(len(videos))
    video_labels[inverse] = labels
    return VideoScores(videos, video_labels, summed / counts[:, None], counts)


class BaseMethod(L.LightningModule):
    """Shared training/testing logic; subclasses build their network in ``__init__``."""

    def __init__(
        self,
        config: Any,
        num_classes: int,
        class_names: Sequence[str],
        optim: OptimConfig | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.num_classes = num_classes
        self.class_names = list(class_names)
        self.optim_config = optim or self.default_optim()
        self._frozen: list[nn.Module] = []
        self.save_hyperparameters(
            {
                "method": type(self).__name__,
                "config": to_dict(config),
                "num_classes": num_classes,
                "class_names": self.class_names,
                "optim": to_dict(self.optim_config),
            }
        )
        self.train_metrics = _accuracy_metrics(num_classes)
        self.val_metrics = _accuracy_metrics(num_classes)
        # test scores are gathered to every rank before the metrics: no second sync
        self.test_metrics = _accuracy_metrics(num_classes, sync_on_compute=False)
        self._test_scores: list[tuple[torch.Tensor, ...]] = []
        self.test_results: dict[str, float] = {}
        self.test_video_scores: VideoScores | None = None  # the last test's, on every rank

    # ------------------------------------------------------------------ to implement

    @property
    def data_spec(self) -> DataSpec:
        """Modalities, sampling and crop size this method reads."""
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:  # (B, num_classes)
        raise NotImplementedError

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits) of a training batch; cross-entropy on ``forward`` by default."""
        logits = self(batch)
        return F.cross_entropy(logits, batch["label"]), logits

    def param_groups(self) -> list[ParamGroup]:
        """Trainable parameters by learning-rate group; one group by default."""
        return [ParamGroup("all", [p for p in self.parameters() if p.requires_grad])]

    def head_modules(self) -> list[str] | None:
        """What depends on the classes (state-dict keys or module prefixes): ``cvbench run
        --init-from`` leaves it as built when the parent's classes differ. None: not
        declared (the tensors whose leading dimension is the class count are taken)."""
        return None

    @classmethod
    def default_optim(cls) -> OptimConfig:
        return OptimConfig()

    # ------------------------------------------------------------------ frozen parts

    def freeze(self, *modules: nn.Module) -> None:
        """Freeze ``modules``: no gradients, and kept in eval mode (dropout off, BN stats fixed)."""
        for module in modules:
            module.requires_grad_(False)
            module.eval()
            self._frozen.append(module)

    def train(self, mode: bool = True) -> BaseMethod:
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self

    def parameter_counts(self) -> dict[str, int]:
        return {
            "total_params": count_parameters(self.network_modules()),
            "tunable_params": count_parameters(self.network_modules(), trainable_only=True),
        }

    def network_modules(self) -> nn.Module:
        """The network alone (metrics hold no parameters, so the module itself by default)."""
        return self

    # ------------------------------------------------------------------ steps

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        if is_empty(batch):  # no sample could be read (counted by the datamodule)
            return self._empty_loss()
        loss, logits = self.training_loss(batch)
        self._update(self.train_metrics, logits.detach(), batch["label"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["label"]))
        self.log_dict(
            {f"train/{k}": m for k, m in self.train_metrics.items()},
            on_step=False,
            on_epoch=True,
            batch_size=len(batch["label"]),
        )
        return loss

    def _empty_loss(self) -> torch.Tensor | None:
        """The training step of an empty batch: None (skip it) in one process; under DDP a
        zero that depends on every trainable parameter, so this rank still joins the
        gradient all-reduce (see the module docstring)."""
        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return None
        params = [p for p in self.parameters() if p.requires_grad]
        return sum((p.sum() * 0 for p in params), torch.zeros((), device=self.device))

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if is_empty(batch):
            return
        logits = self(batch)
        loss = F.cross_entropy(logits, batch["label"])
        self._update(self.val_metrics, logits, batch["label"])
        self.log("val/loss", loss, batch_size=len(batch["label"]))
        self.log_dict(
            {f"val/{k}": m for k, m in self.val_metrics.items()},
            prog_bar=True,
            batch_size=len(batch["label"]),
        )

    def on_test_epoch_start(self) -> None:
        self._test_scores = []

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        """Keep the views' softmax scores for :meth:`on_test_epoch_end`; return the logits
        (callbacks read them as ``outputs``), None for an empty batch."""
        if is_empty(batch):  # no view could be read: nothing to score (the gather is per epoch)
            return None
        logits = self(batch).float()
        self._test_scores.append(
            (batch["video_index"], batch["view"], batch["label"], logits.softmax(dim=-1))
        )
        return logits

    def on_test_epoch_end(self) -> None:
        """Average the views' softmax scores per video, then the video-level metrics."""
        videos = aggregate_views(*self._gather_test_scores())
        self.test_video_scores = videos
        if len(videos.labels):  # torchmetrics cannot update on nothing
            self._update(self.test_metrics, videos.scores, videos.labels)
        self.test_results = {k: float(m.compute()) for k, m in self.test_metrics.items()}
        self.test_results["videos"] = len(videos.video_index)
        self.test_results["views_per_video"] = (
            float(videos.views.float().mean()) if len(videos.views) else 0.0
        )
        for k, m in self.test_metrics.items():
            # computed on every rank from the gathered scores: identical, logged once
            self.log(f"test/{k}", m.compute(), rank_zero_only=True)
            m.reset()

    def _gather_test_scores(self) -> tuple[torch.Tensor, ...]:
        """(video_index, view, label, scores) of the views scored on every rank, rank by
        rank; padded duplicates included (:func:`aggregate_views` drops them)."""
        if self._test_scores:
            index, view, labels, scores = (
                torch.cat(t) for t in zip(*self._test_scores, strict=True)
            )
        else:
            index, view, labels = (
                torch.zeros(0, dtype=torch.long, device=self.device) for _ in range(3)
            )
            scores = torch.zeros(0, self.num_classes, device=self.device)
        if self.trainer is not None and self.trainer.world_size > 1:
            # ranks hold different numbers of views: pad to the longest, gather, unpad
            n = torch.tensor(len(index), device=self.device)
            sizes = self.all_gather(n).flatten()
            longest = int(sizes.max())
            pad = longest - len(index)
            index, view, labels = (torch.cat([t, t.new_zeros(pad)]) for t in (index, view, labels))
            scores = torch.cat([scores, scores.new_zeros(pad, self.num_classes)])
            gathered = [self.all_gather(t) for t in (index, view, labels, scores)]
            keep = [torch.arange(longest, device=self.device) < s for s in sizes]
            index, view, labels, scores = (
                torch.cat([g[r][keep[r]] for r in range(len(sizes))]) for g in gathered
            )
        return index, view, labels, scores

    @staticmethod
    def _update(metrics: nn.ModuleDict, logits: torch.Tensor, labels: torch.Tensor) -> None:
        for metric in metrics.values():
            metric.update(logits, labels)

    # ------------------------------------------------------------------ optimisation

    def trained_groups(self) -> list[ParamGroup]:
        """``param_groups`` as the optimiser gets them: trainable parameters only, empty
        groups dropped; a parameter in two groups, or a trainable one in none, is an error."""
        groups = []
        seen: set[int] = set()
        for group in self.param_groups():
            params = [p for p in group.params if p.requires_grad]
            if any(id(p) in seen for p in params):
                raise ValueError(f"parameter group {group.name!r} repeats parameters")
            seen.update(id(p) for p in params)
            if params:
                groups.append(ParamGroup(group.name, params, group.lr_scale, group.weight_decay))
        missing = [n for n, p in self.named_parameters() if p.requires_grad and id(p) not in seen]
        if missing:
            raise ValueError(f"trainable parameters in no group: {missing[:5]}")
        return groups

    def param_group_record(self) -> list[dict[str, Any]]:
        """The optimiser's groups as the run record lists them: name, lr scale, peak lr (base
        lr x scale, before warm-up and schedule), parameters, own weight decay if any."""
        cfg = self.optim_config
        return [
            {
                "name": g.name,
                "lr_scale": g.lr_scale,
                "lr": cfg.lr * g.lr_scale,
                "params": sum(p.numel() for p in g.params),
                **({"weight_decay": g.weight_decay} if g.weight_decay is not None else {}),
            }
            for g in self.trained_groups()
        ]

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.optim_config
        groups = []
        for group in self.trained_groups():
            entry = {"params": group.params, "lr": cfg.lr * group.lr_scale, "name": group.name}
            if group.weight_decay is not None:
                entry["weight_decay"] = group.weight_decay
            groups.append(entry)
        if cfg.optimizer == "sgd":
            optimizer = torch.optim.SGD(
                groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
        else:
            optimizer = torch.optim.AdamW(
                groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
            )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._lr_factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def _steps_per_epoch(self) -> int:
        trainer = self._trainer  # not self.trainer: it raises when no Trainer is attached
        if trainer is None:
            return 1
        total = trainer.estimated_stepping_batches
        epochs = max(trainer.max_epochs or 1, 1)
        return max(int(total // epochs), 1) if math.isfinite(total) else 1

    def _lr_factor(self, step: int) -> float:
        """Multiplier of the base lr at optimiser step ``step`` (warm-up, then the schedule)."""
        cfg = self.optim_config
        epoch = step / self._steps_per_epoch()
        if cfg.warmup_epochs > 0 and epoch < cfg.warmup_epochs:
            return (epoch + 1 / self._steps_per_epoch()) / cfg.warmup_epochs
        if cfg.schedule == "cosine":
            span = max(cfg.epochs - cfg.warmup_epochs, 1e-8)
            progress = min(max(epoch - cfg.warmup_epochs, 0.0) / span, 1.0)
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if cfg.schedule == "step":
            return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
        return 1.0


def trainable(modules: Iterable[nn.Module]) -> list[nn.Parameter]:
    """The trainable parameters of ``modules``, in order, each once."""
    seen: set[int] = set()
    out = []
    for module in modules:
        for p in module.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out
