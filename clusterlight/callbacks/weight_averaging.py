"""An exponential moving average of the weights for evaluation: Lightning's own, fitted to our modules."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.seed import isolate_rng
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim.swa_utils import get_ema_avg_fn

from clusterlight.callbacks.finite_guard import step_skipped
from clusterlight.trainer_attrs import datamodule_of


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
    - ``recompute_batchnorm`` (default on): before each validation, BatchNorm statistics are recomputed
      for the averaged weights, as ``torch.optim.swa_utils.update_bn`` does for SWA, by one forward pass
      over the training data (the DataModule's train loader, unmixed, no gradients, random state left
      as it was; under DDP each rank passes its shard and the statistics are averaged over ranks), and
      again at epoch and fit end if steps were averaged since. The average of running statistics
      taken under other weights does not describe the averaged weights' activations, so a network
      with BatchNorm (the CNN) evaluated on them can be far worse than its averaged weights are.
      Checkpoints hold the recomputed statistics.

    The cluster centroids are the :class:`~clusterlight.callbacks.ClusterCentroids` callback's,
    not module state: never averaged nor swapped, they follow the trained weights' embeddings.
    """

    def __init__(
        self,
        decay: float = 0.999,
        update_every_n_steps: int = 1,
        update_starting_at_step: int | None = None,
        update_starting_at_epoch: int | None = None,
        recompute_batchnorm: bool = True,
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
        self.recompute_batchnorm = recompute_batchnorm
        self._fitted_at: int | None = None  # how many steps the average held when its statistics were fitted

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_kwargs"] = {k: v for k, v in self._kwargs.items() if k != "avg_fn"}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._kwargs["avg_fn"] = get_ema_avg_fn(decay=self.decay)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.recompute_batchnorm and datamodule_of(trainer) is None and _batch_norms(pl_module):
            raise ValueError(
                "EMAWeights.recompute_batchnorm reads the training batches of a DataModule: fit with one, "
                "or set recompute_batchnorm=False to average BatchNorm statistics with the weights"
            )
        assert self._average_model is not None  # built by WeightAveraging.setup for this fit
        averaged = self._average_model.module
        for prefix, module in pl_module.named_modules():
            for name in module._non_persistent_buffers_set:
                buffer = module._buffers.get(name)
                if buffer is not None:
                    setattr(averaged.get_submodule(prefix), name, buffer.detach().clone())

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args, **kwargs) -> None:
        if not step_skipped(trainer):
            super().on_train_batch_end(trainer, pl_module, *args, **kwargs)

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_validation_epoch_start(trainer, pl_module)  # swaps the averaged weights in
        if self._average_model is not None and not trainer.sanity_checking:
            self._fit_batchnorm_statistics(trainer, pl_module)  # the swap back stores them in the average

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._refresh_average_statistics(trainer, pl_module)  # before ModelCheckpoint's epoch-end save

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._refresh_average_statistics(trainer, pl_module)
        super().on_train_end(trainer, pl_module)  # the module takes the averaged weights

    def _refresh_average_statistics(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Fit the average's BatchNorm statistics if steps were averaged since they were last fitted
        (no validation since, e.g. ``check_val_every_n_epoch`` > 1), so that every checkpoint holds them."""
        if not self.recompute_batchnorm or not _batch_norms(pl_module) or self._average_model is None:
            return
        if self._fitted_at == int(self._average_model.n_averaged):
            return
        self._swap_models(pl_module)
        self._fit_batchnorm_statistics(trainer, pl_module)
        self._swap_models(pl_module)

    def _fit_batchnorm_statistics(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Recompute the BatchNorm statistics of the weights ``pl_module`` holds (the average) over this
        rank's training batches, then average them over ranks."""
        norms = _batch_norms(pl_module)
        if not self.recompute_batchnorm or not norms:
            return
        momenta = [norm.momentum for norm in norms]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average over the pass
        was_training = pl_module.training
        pl_module.train()
        precision = trainer.precision_plugin
        # any DataModule with load_inputs (an AudioDataModule); on_fit_start refused fitting without one
        datamodule: Any = datamodule_of(trainer)
        module: Any = pl_module  # a module with features() (an AudioModule)
        with isolate_rng(), torch.no_grad(), precision.forward_context():
            for batch in datamodule.train_dataloader():
                module.features(precision.convert_input(datamodule.load_inputs(batch, pl_module.device)))
        pl_module.train(was_training)
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
            if trainer.world_size > 1:
                # track_running_stats (_batch_norms): the running statistics are there
                assert norm.running_mean is not None and norm.running_var is not None
                norm.running_mean.copy_(trainer.strategy.reduce(norm.running_mean, reduce_op="mean"))
                norm.running_var.copy_(trainer.strategy.reduce(norm.running_var, reduce_op="mean"))
        assert self._average_model is not None  # fitting: the callers checked it
        self._fitted_at = int(self._average_model.n_averaged)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == TrainerFn.FITTING:
            self._average_model, self._fitted_at = None, None

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        if self._average_model is not None:  # fitting: restore both the average and the trained weights
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


def _batch_norms(module: torch.nn.Module) -> list[_BatchNorm]:
    """The BatchNorm layers of ``module`` that keep running statistics."""
    return [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
