"""Train a method a few optimiser steps in the tests: the suite's quiet one-process Trainer
(:func:`cvbench.trainer.quiet_trainer`), and which parameters moved."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from cvbench.trainer import quiet_trainer


def train_steps(
    model: L.LightningModule, datamodule: L.LightningDataModule, steps: int = 3, **options: Any
) -> tuple[L.Trainer, set[str]]:
    """Fit ``model`` on ``datamodule`` for ``steps`` optimiser steps (``options`` go to the
    Trainer, e.g. callbacks); the Trainer and the names of the parameters that changed."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = quiet_trainer(max_epochs=-1, progress=False, max_steps=steps, **options)
    trainer.fit(model, datamodule=datamodule)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    return trainer, changed
