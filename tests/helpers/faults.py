"""Faults put into a run by callbacks, importable by a ``clusterlight`` process (class path
``helpers.faults.NaNBatch``)."""

from __future__ import annotations

from lightning.pytorch import Callback


class NaNBatch(Callback):
    """Puts a NaN into the training batch's waveforms at the given global steps (on one rank, or all)."""

    def __init__(self, steps=(10,), rank: int | None = None) -> None:
        self.steps, self.rank = set(steps), rank

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step in self.steps and self.rank in (None, trainer.global_rank):
            batch["wave"][0, :100] = float("nan")


class NaNGradient(Callback):
    """Makes the gradient of one parameter NaN at one global step (the loss stays finite)."""

    def __init__(self, name: str, step: int) -> None:
        self.name, self.step = name, step

    def on_after_backward(self, trainer, pl_module) -> None:
        if trainer.global_step == self.step:
            dict(pl_module.named_parameters())[self.name].grad[0] = float("nan")
