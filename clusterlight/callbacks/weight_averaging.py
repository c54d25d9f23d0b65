"""An exponential moving average of the weights for evaluation: Lightning's own, fitted to our modules."""

from __future__ import annotations

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from torch.optim.swa_utils import get_ema_avg_fn

from clusterlight.callbacks.finite_guard import step_skipped


class EMAWeights(EMAWeightAveraging):
    """Lightning's :class:`~lightning.pytorch.callbacks.EMAWeightAveraging`: after every optimiser
    step ``avg <- decay * avg + (1 - decay) * weights`` (parameters and buffers, e.g. BatchNorm
    statistics); validation runs on the averaged weights, checkpoints hold them as ``state_dict``
    (so ``test --ckpt_path best`` and ``clusterlight.load`` see them) and the trained weights as
    ``current_model_state``, from which ``fit --ckpt_path last`` resumes; after fit the module
    holds the averaged weights. ``decay`` is per step: its horizon is about ``1 / (1 - decay)`` steps.

    Changes to it, each for a behaviour of clusterlight or its trainer configs:

    - Buffers that are no model state (``persistent=False``: a loss's class counts, set by the
      module's ``setup``, after Lightning copied the module) are taken from the module at fit start;
      Lightning's callback fails on their changed shape at the first step.
    - After fit the averaged copy is dropped, so ``validate``/``test``/``predict`` with a
      ``ckpt_path`` (as ``clusterlight fit`` and ``experiment`` do after fitting) evaluate that
      checkpoint's averaged weights; Lightning's callback would restore the trained weights
      (``current_model_state``) and, in ``validate``, swap in the average of the fit's last step.
    - Loading a checkpoint outside fit is silent: its ``state_dict`` is what is meant.
    - It pickles (``ddp_spawn`` pickles the callbacks): torch's EMA function, a closure, is rebuilt
      from ``decay`` on unpickling.
    - A step :class:`~clusterlight.callbacks.FiniteGuard` skipped (``on_nonfinite="skip"``) moves no
      average, as it moves no centroid.

    The cluster centroids are the :class:`~clusterlight.callbacks.ClusterCentroids` callback's,
    not module state: never averaged nor swapped, they follow the trained weights' embeddings.
    """

    def __init__(
        self,
        decay: float = 0.999,
        update_every_n_steps: int = 1,
        update_starting_at_step: int | None = None,
        update_starting_at_epoch: int | None = None,
    ) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMAWeights.decay must be in (0, 1), got {decay}")
        if update_every_n_steps < 1:
            raise ValueError(f"EMAWeights.update_every_n_steps must be >= 1, got {update_every_n_steps}")
        super().__init__(
            decay=decay,
            update_every_n_steps=update_every_n_steps,
            update_starting_at_step=update_starting_at_step,
            update_starting_at_epoch=update_starting_at_epoch,
        )
        self.decay = decay

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_kwargs"] = {k: v for k, v in self._kwargs.items() if k != "avg_fn"}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._kwargs["avg_fn"] = get_ema_avg_fn(decay=self.decay)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        averaged = self._average_model.module
        for prefix, module in pl_module.named_modules():
            for name in module._non_persistent_buffers_set:
                buffer = module._buffers.get(name)
                if buffer is not None:
                    setattr(averaged.get_submodule(prefix), name, buffer.detach().clone())

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args, **kwargs) -> None:
        if not step_skipped(trainer):
            super().on_train_batch_end(trainer, pl_module, *args, **kwargs)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == TrainerFn.FITTING:
            self._average_model = None

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        if self._average_model is not None:  # fitting: restore both the average and the trained weights
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
