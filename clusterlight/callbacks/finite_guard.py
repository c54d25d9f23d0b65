"""Stop (or skip) at the first non-finite loss or gradient, before it reaches the weights or a checkpoint."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from clusterlight import distributed

ON_NONFINITE = ("raise", "skip")


class NonFiniteError(RuntimeError):
    """Training produced a non-finite (NaN/inf) loss, gradient, embedding or weight and was stopped.

    ``epoch``, ``step`` (global step), ``what`` (e.g. ``"loss"``, ``"gradient of backbone.fc.weight"``)
    and ``checkpoint`` (the last good checkpoint, left as it was; ``None`` when none was written) are
    kept as attributes; the message says all of them.
    """

    def __init__(
        self,
        message: str,
        *,
        epoch: int | None = None,
        step: int | None = None,
        what: str | None = None,
        checkpoint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.epoch, self.step, self.what, self.checkpoint = epoch, step, what, checkpoint


def last_good_checkpoint(trainer: Trainer) -> str | None:
    """The newest checkpoint file this fit wrote or resumed from (``last.ckpt`` when there is one)."""
    found: list[str | None] = []
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint):
            found += [cb.last_model_path, cb.best_model_path]
    found.append(getattr(trainer, "ckpt_path", None))
    files = [Path(p) for p in found if p and Path(p).is_file()]
    return str(max(files, key=lambda p: p.stat().st_mtime)) if files else None


def checkpoint_note(trainer: Trainer) -> str:
    path = last_good_checkpoint(trainer)
    if path is None:
        return "no checkpoint was written before it"
    return f"the last good checkpoint is {path} (left intact: nothing is saved after a non-finite step)"


def max_abs(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, list[int]]:
    """Each tensor's largest absolute value (NaN if it holds a NaN) as one float32 vector, and the
    tensors' order in it: one fused ``_foreach_norm(inf)`` per (device, dtype) group, no host sync."""
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault((t.device, t.dtype), []).append(i)
    parts, order = [], []
    device = tensors[0].device
    for idx in groups.values():
        group = [tensors[i]._values() if tensors[i].is_sparse else tensors[i] for i in idx]
        parts.append(torch.stack(torch._foreach_norm(group, math.inf)).float().to(device))
        order += idx
    return (parts[0] if len(parts) == 1 else torch.cat(parts)), order


def nonfinite_names(values: torch.Tensor, names: list[str], limit: int = 3) -> str:
    """``"a (nan), b (inf) and 4 more of 12"`` for the non-finite entries of ``values`` [n] (host)."""
    bad = [(n, float(v)) for n, v in zip(names, values.tolist()) if not math.isfinite(v)]
    text = ", ".join(f"{n} ({v})" for n, v in bad[:limit])
    more = f" and {len(bad) - limit} more" if len(bad) > limit else ""
    return f"{text}{more} of {len(names)} parameters"


def flags_from(values: list[float]) -> list[int]:
    """[bad loss, bad gradients] (0/1) from the host copy of [loss, each gradient's max-abs]."""
    return [int(not math.isfinite(values[0])), int(not all(map(math.isfinite, values[1:])))]


@dataclass
class _Pending:
    """One step's check, read back on the host one step later (deferred mode)."""

    flags: torch.Tensor | None  # [2] under DDP, on the host: ranks with a bad loss, with bad gradients
    values: torch.Tensor  # [1 + P] on the host: the loss, then each gradient's max-abs
    params: list[torch.Tensor]  # the parameters whose gradients ``values[1:]`` describe
    event: torch.cuda.Event | None  # a CUDA event recorded after the copies, or None
    epoch: int
    step: int


class FiniteGuard(Callback):
    """Stops training at the first non-finite (NaN/inf) loss or gradient, or skips such steps.

    The loss is checked at ``on_before_backward`` and every gradient at ``on_before_optimizer_step``
    (before gradient clipping and before the optimizer step), as one fused reduction over all
    gradients (``_foreach_norm`` with ``ord=inf``, which propagates NaN), giving one device flag;
    under DDP the flag (ranks with a bad loss, ranks with bad gradients) is summed over ranks, so
    every rank takes the same decision and none waits in a collective the others left.

    ``on_nonfinite="raise"`` (default): :class:`NonFiniteError` naming the epoch, the global step,
    what was non-finite (the loss, or the gradient of which parameters) and the last good checkpoint.
    The optimizer step is not taken, and no checkpoint is written after it (Lightning's
    ``save_on_exception`` is suppressed for this error), so ``last.ckpt`` and the best checkpoint
    stay as they were; through the CLI the process exits non-zero.

    ``on_nonfinite="skip"``: the step's gradients are dropped (``param.grad = None``: the optimizer
    leaves those parameters, their moments and weight decay untouched), the buffers its forward passes
    changed (BatchNorm running statistics, which a NaN input poisons) are restored from a copy taken
    when the step began (one fused copy per step), the centroid EMA and memory bank skip the batch, and
    training goes on. Skipped steps are counted (``skipped_steps``, kept in checkpoints), logged per
    epoch as ``train/skipped_steps`` and reported in a warning when training ends.

    Host syncs: on CPU the flag is read at once (no device to wait for). On CUDA in ``raise`` mode the
    flag is copied to pinned memory without blocking and read one step later (``deferred``), when the
    copy has long finished, so no step waits for the GPU; the bad step's update has then been applied,
    but the check also runs before validation, at epoch end, before any checkpoint is written and when
    training ends, so a non-finite state still never reaches a checkpoint. ``skip`` mode must decide
    before the step and reads the flag every step (one sync per step). ``deferred`` forces either way.
    Under a ``GradScaler`` (``16-mixed``) only the loss is checked: non-finite gradients are the
    scaler's to skip.
    """

    def __init__(self, on_nonfinite: str = "raise", deferred: bool | None = None) -> None:
        if on_nonfinite not in ON_NONFINITE:
            raise ValueError(f"FiniteGuard.on_nonfinite must be one of {ON_NONFINITE}, got {on_nonfinite!r}")
        if deferred and on_nonfinite == "skip":
            raise ValueError(
                "FiniteGuard(on_nonfinite='skip') decides before each step: it cannot be deferred"
            )
        self.on_nonfinite, self.deferred = on_nonfinite, deferred
        self.skipped_steps = 0
        self.steps = 0  # optimizer steps checked in this fit
        self.skipped_this_step = False
        self._loss: torch.Tensor | None = None
        self._pending: _Pending | None = None
        self._defer = bool(deferred)
        self._window_start = True  # the next batch starts an optimizer step (gradient accumulation)
        self._saved_buffers: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None

    # --- state -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"skipped_steps": self.skipped_steps}

    def load_state_dict(self, state: dict) -> None:
        self.skipped_steps = int(state.get("skipped_steps", 0))

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        auto = self.on_nonfinite == "raise" and pl_module.device.type == "cuda"
        self._defer = auto if self.deferred is None else self.deferred
        self.steps, self._loss, self._pending, self._window_start = 0, None, None, True

    # --- the checks -----------------------------------------------------------------------------------
    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int
    ) -> None:
        self.skipped_this_step = False
        if self.on_nonfinite == "skip" and self._window_start:
            self._snapshot_buffers(pl_module)
            self._window_start = False

    def _snapshot_buffers(self, pl_module: LightningModule) -> None:
        """Keep a copy of every buffer (BatchNorm running statistics) at the start of an optimizer step,
        so a skipped step's forward passes can be undone: one fused copy, no host sync."""
        buffers = [b for b in pl_module.buffers() if b.numel()]
        if self._saved_buffers is None or len(self._saved_buffers[0]) != len(buffers):
            self._saved_buffers = (buffers, [torch.empty_like(b) for b in buffers])
        else:
            self._saved_buffers = (buffers, self._saved_buffers[1])
        if buffers:
            torch._foreach_copy_(self._saved_buffers[1], buffers)

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor) -> None:
        value = loss.detach().float().reshape(-1)[:1]
        self._loss = value if self._loss is None else self._loss + value  # NaN/inf propagate

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer) -> None:
        if self._pending is not None:
            self.resolve(trainer, pl_module)
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        device = params[0].device if params else pl_module.device
        loss = self._loss.to(device) if self._loss is not None else torch.zeros(1, device=device)
        self._loss = None
        self.steps += 1
        self._window_start = True
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            params = []  # the GradScaler skips steps with non-finite gradients itself
        grads, order = max_abs([p.grad for p in params]) if params else (loss[:0], [])
        params = [params[i] for i in order]
        values = torch.cat([loss, grads])  # the loss, then each gradient's max-abs
        flags = None  # in one process the host derives them from ``values``: fewer small ops per step
        if distributed.is_distributed():
            bad = ~torch.isfinite(values)
            flags = distributed.all_reduce_sum_(torch.stack([bad[0], bad[1:].any()]).float())
        if self._defer:
            self._pending = self._copy_to_host(flags, values, params, trainer)
            return
        host = values.tolist()  # the host reads the flag: free on CPU, one sync per step elsewhere
        counts = flags_from(host) if flags is None else [int(v) for v in flags.tolist()]
        if any(counts):
            epoch, step = trainer.current_epoch, trainer.global_step
            self._handle(trainer, pl_module, counts, torch.tensor(host), params, epoch, step, optimizer)

    def _copy_to_host(self, flags, values, params, trainer: Trainer) -> _Pending:
        event = None
        if values.is_cuda:
            host_values = torch.empty(values.shape, pin_memory=True)
            host_values.copy_(values, non_blocking=True)
            host_flags = None
            if flags is not None:
                host_flags = torch.empty(flags.shape, pin_memory=True)
                host_flags.copy_(flags, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
        else:
            host_values = values.cpu()
            host_flags = None if flags is None else flags.cpu()
        return _Pending(host_flags, host_values, params, event, trainer.current_epoch, trainer.global_step)

    def resolve(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Read the deferred check of the last step (waiting for its copy if needed); raise if it failed."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if pending.event is not None:
            pending.event.synchronize()
        counts = self._counts(pending)
        if any(counts):
            p = pending
            self._handle(trainer, pl_module, counts, p.values, p.params, p.epoch, p.step, None)

    @staticmethod
    def _counts(pending: _Pending) -> list[int]:
        if pending.flags is None:
            return flags_from(pending.values.tolist())
        return [int(v) for v in pending.flags.tolist()]

    def _handle(self, trainer, pl_module, counts, values, params, epoch, step, optimizer) -> None:
        ranks_loss, ranks_grad = counts
        names = {id(p): n for n, p in pl_module.named_parameters()}
        param_names = [names.get(id(p), f"<parameter {i}>") for i, p in enumerate(params)]
        parts, what = [], []
        if ranks_loss:
            local = not math.isfinite(float(values[0]))
            where = f" on rank {trainer.global_rank}" if local and trainer.world_size > 1 else ""
            if local:
                parts.append(f"the loss is {float(values[0])}{where}")
            else:
                parts.append(f"the loss is non-finite on {ranks_loss} other rank(s)")
            what.append("loss")
        if ranks_grad:
            parts.append("the gradient of " + nonfinite_names(values[1:], param_names))
            bad = [n for n, v in zip(param_names, values[1:].tolist()) if not math.isfinite(v)]
            what.append("gradient of " + (bad[0] if bad else "a parameter"))
        where = f"epoch {epoch}, global step {step}"
        if self.on_nonfinite == "skip" and optimizer is not None:
            self._skip(trainer, pl_module, optimizer, where, "; ".join(parts))
            return
        late = (
            ""
            if optimizer is not None
            else " (checked one step late on this device to avoid a host sync per step: that step's update "
            "was applied, but nothing was saved after it)"
        )
        taken = "the optimizer step was not taken; " if optimizer is not None else ""
        raise NonFiniteError(
            f"non-finite values at {where}: {'; '.join(parts)}{late}. Training stopped: {taken}"
            f"{checkpoint_note(trainer)}. Lower the learning rate, clip gradients "
            "(trainer.gradient_clip_val) or check the data; FiniteGuard(on_nonfinite='skip') skips such "
            "steps instead.",
            epoch=epoch,
            step=step,
            what=", ".join(what),
            checkpoint=last_good_checkpoint(trainer),
        )

    def _skip(self, trainer, pl_module, optimizer, where: str, reason: str) -> None:
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = None
        if self._saved_buffers is not None and self._saved_buffers[0]:
            torch._foreach_copy_(*self._saved_buffers)  # undo the step's BatchNorm statistics
        self.skipped_steps += 1
        self.skipped_this_step = True
        if self.skipped_steps == 1:
            rank_zero_info(f"[clusterlight] FiniteGuard: skipped the step at {where}: {reason}")

    # --- before anything is saved, and at the end ------------------------------------------------
    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.resolve(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.resolve(trainer, pl_module)
        if self.on_nonfinite == "skip":
            pl_module.log("train/skipped_steps", float(self.skipped_steps), on_epoch=True, sync_dist=True)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        self.resolve(trainer, pl_module)  # raising here stops the save before anything is written

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.resolve(trainer, pl_module)
        if self.skipped_steps:
            rank_zero_warn(
                f"FiniteGuard skipped {self.skipped_steps} optimizer step(s) with a non-finite loss or "
                f"gradient (resumed runs included; {self.steps} steps checked in this fit); logged as "
                "train/skipped_steps"
            )

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and pending.event is not None:
            pending.event.synchronize()
        if isinstance(exception, NonFiniteError) or (pending is not None and any(self._counts(pending))):
            # Lightning's ModelCheckpoint(save_on_exception=True) would save the state now: mark this
            # step as saved so it does not (the checkpoint callbacks run after this one).
            for cb in trainer.checkpoint_callbacks:
                if isinstance(cb, ModelCheckpoint) and hasattr(cb, "_last_global_step_saved"):
                    cb._last_global_step_saved = trainer.global_step


def step_skipped(trainer: Trainer | None) -> bool:
    """Whether a :class:`FiniteGuard` of ``trainer`` skipped the current training step."""
    callbacks = getattr(trainer, "callbacks", None) or []
    return any(isinstance(c, FiniteGuard) and c.skipped_this_step for c in callbacks)
