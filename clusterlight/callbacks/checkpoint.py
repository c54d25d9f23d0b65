"""The checkpoint rule every run shares: the best epoch by validation macro error, and the last epoch."""

from __future__ import annotations

import math

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn

from clusterlight.callbacks.finite_guard import NonFiniteError, checkpoint_note, max_abs, nonfinite_names


class BestAndLastCheckpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` whose ``last.ckpt`` is rewritten after every epoch, and never with a
    non-finite state.

    Lightning's own ``save_last=True`` writes ``last.ckpt`` only when a top-k checkpoint is
    written in the same step, so after a run of epochs without improvement it holds the last
    *improving* epoch, and resuming from it repeats work. Here, after Lightning's own save, the
    last checkpoint is written whenever it was not (same file, written atomically).

    Non-finite values are kept out: an epoch whose monitored value (``val/macro_err``) is NaN or
    inf is never a candidate for best (Lightning would keep it as best with score ``inf`` when no
    best exists yet), and no checkpoint is written while a weight is non-finite: that raises
    :class:`NonFiniteError` and leaves the earlier files intact. Nothing is saved on a
    ``NonFiniteError`` even with ``save_on_exception=True``.
    """

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missed(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missed(trainer)

    def _save_last_if_missed(self, trainer: Trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def check_monitor_top_k(self, trainer: Trainer, current: torch.Tensor | None = None) -> bool:
        if current is not None:
            finite = math.isfinite(float(current))
            if not trainer.strategy.reduce_boolean_decision(finite, all=True):
                rank_zero_warn(
                    f"{self.monitor} is {float(current)} at epoch {trainer.current_epoch}: this epoch is not "
                    "a candidate for the best checkpoint"
                )
                return False
        return super().check_monitor_top_k(trainer, current)

    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        module = trainer.lightning_module
        tensors = [(n, t) for n, t in module.state_dict().items() if t.is_floating_point() and t.numel()]
        if tensors:
            values, order = max_abs([t for _, t in tensors])
            finite = bool(torch.isfinite(values).all())  # once per save
            if not trainer.strategy.reduce_boolean_decision(finite, all=True):
                names = [tensors[i][0] for i in order]
                raise NonFiniteError(
                    f"refusing to write {filepath} at epoch {trainer.current_epoch}, global step "
                    f"{trainer.global_step}: the weights are non-finite "
                    f"({nonfinite_names(values.cpu(), names).replace(' parameters', ' tensors')}); "
                    f"{checkpoint_note(trainer)}",
                    epoch=trainer.current_epoch,
                    step=trainer.global_step,
                    what="weights",
                )
        super()._save_checkpoint(trainer, filepath)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if isinstance(exception, NonFiniteError):
            return  # the state at a non-finite step is never saved
        super().on_exception(trainer, pl_module, exception)
