"""A validation metric averaged over the last epochs: a checkpoint rule less noisy than one best epoch."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn


def window_mean(values: list[float], window: int) -> float:
    """The mean of the last ``window`` values (of all of them while there are fewer)."""
    last = values[-window:]
    return sum(last) / len(last)


class SmoothedMetric(Callback):
    """Logs ``<monitor>_smooth`` (by default ``val/macro_err_smooth``): the mean of ``monitor`` over
    the last ``window`` validation runs of the fit, so that ``--checkpoint.monitor
    val/macro_err_smooth`` keeps the checkpoint that ends the best window instead of the epoch
    whose few rare validation clips happened to fall right.

    It runs at validation end, after the module logged ``monitor`` and before the checkpoint
    callback reads it (Lightning runs checkpoint callbacks last; list it before an
    ``EarlyStopping`` that monitors it). The first ``window - 1`` values average what there is.
    Only fitting counts (not the sanity check, nor ``validate`` after fit); the window's values are
    kept in checkpoints, so a resumed run smooths as the uninterrupted one. Under DDP ``monitor``
    is already reduced over ranks, so every rank computes the same value.
    """

    def __init__(self, monitor: str = "val/macro_err", window: int = 3) -> None:
        if window < 1:
            raise ValueError(f"SmoothedMetric.window must be >= 1, got {window}")
        self.monitor, self.window = monitor, window
        self.values: list[float] = []

    @property
    def name(self) -> str:
        return f"{self.monitor}_smooth"

    @property
    def state_key(self) -> str:
        return self._generate_state_key(monitor=self.monitor, window=self.window)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        self.values = [*self.values, float(value)][-self.window :]
        smooth = window_mean(self.values, self.window)
        trainer.callback_metrics[self.name] = torch.tensor(smooth)
        for logger in trainer.loggers:
            logger.log_metrics({self.name: smooth}, step=trainer.global_step)

    def state_dict(self) -> dict:
        return {"values": list(self.values)}

    def load_state_dict(self, state: dict) -> None:
        self.values = [float(v) for v in state.get("values", [])]
