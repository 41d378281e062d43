"""Lightning helpers shared by the benchmark run (:mod:`cvbench.run`) and the side jobs
that train something other than a benchmark run (:mod:`cvbench.pretrain`,
:mod:`cvbench.pixel_control`): a quiet one-process Trainer and a tested model's metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import lightning as L

if TYPE_CHECKING:
    from methods.base import BaseMethod


def quiet_trainer(max_epochs: int, progress: bool, **options: Any) -> L.Trainer:
    """One-process CPU Trainer with no logger, checkpoints or validation, for the side jobs
    that train something other than a benchmark run (synthetic pretraining, controls)."""
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        **options,
    )


def test_metrics(model: BaseMethod) -> dict[str, Any]:
    """A tested model's accuracies and test counts, as a record's ``metrics``."""
    results = model.test_results
    return {
        "top1": results.get("top1"),
        "top5": results.get("top5"),
        "mean_class": results.get("mean_class"),
        "test_videos": results.get("videos"),
        "views_per_video": results.get("views_per_video"),
    }
