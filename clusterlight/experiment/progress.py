"""What ``clusterlight experiment`` prints while it trains: one line per stage start and end and per epoch,
with the elapsed time and an ETA for the whole experiment; Lightning's own output quiet unless verbose."""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass

from lightning.pytorch.callbacks import Callback

# Lightning's info lines ("GPU available", "Restoring states ...", the LitLogger tip, "Seed set to ...") and
# clusterlight's own rank_zero_info lines (clips and clusters per class) go through these loggers.
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")


@contextlib.contextmanager
def lightning_output(verbose: bool) -> Iterator[None]:
    """Unless ``verbose``: Lightning's loggers at WARNING (warnings stay visible) and W&B's console
    output silenced (``WANDB_SILENT``, unless set already), both restored on exit."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    silent = os.environ.get("WANDB_SILENT")
    try:
        for lg in loggers:
            lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
        if silent is None:
            os.environ["WANDB_SILENT"] = "true"
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        if silent is None:
            os.environ.pop("WANDB_SILENT", None)


def quiet_trainer(config: dict) -> dict:
    """``config`` without the progress bar and model summary (display only: the run hash never sees it)."""
    trainer = {**config.get("trainer", {}), "enable_progress_bar": False, "enable_model_summary": False}
    return {**config, "trainer": trainer}


def duration(seconds: float) -> str:
    """``0.4s``, ``42s``, ``3m05s``, ``1h02m``."""
    if seconds < 9.95:
        return f"{max(seconds, 0.0):.1f}s"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def epochs_text(epochs: int | None) -> str:
    return "" if epochs is None else f"{epochs} epoch{'' if epochs == 1 else 's'} | "


@dataclass
class PlannedStage:
    """One stage of one (method, seed) the experiment will train."""

    method: str
    seed: int
    seed_index: int  # 1-based position of the seed in the experiment's seeds
    n_seeds: int
    stage: str
    stage_index: int  # 1-based position of the stage in the method
    n_stages: int
    epochs: int | None  # planned training epochs (max_epochs); None: not bounded by epochs

    @property
    def kind(self) -> tuple[str, str]:
        """Stages of one kind (same method and stage name) take about as long per epoch."""
        return self.method, self.stage


class ExperimentProgress:
    """The experiment's plan, the time its finished stages and epochs took, and the progress lines.

    The ETA covers every planned stage still to finish: each remaining epoch at the mean epoch time of
    its kind of stage (of all finished epochs while that kind has none yet), plus, per stage, the mean
    time a stage spent outside its epochs (set-up, sanity check, test). Before the first epoch has
    finished it is "ETA unknown".
    """

    def __init__(self, name: str, plan: list[PlannedStage], printer=print, clock=time.time) -> None:
        self.name, self.plan, self.printer, self.clock = name, plan, printer, clock
        self.t0 = clock()
        self.epoch_times: dict[tuple[str, str], list[float]] = {}
        self.overheads: dict[tuple[str, str], list[float]] = {}
        self.done: set[int] = set()  # finished plan indices
        self.current: int | None = None
        self.current_epochs = 0  # epochs finished in the current stage
        self.stage_t0 = self.t0

    def tag(self, p: PlannedStage) -> str:
        return f"[experiment {self.name}] seed {p.seed} ({p.seed_index}/{p.n_seeds}) | {p.method}"

    def eta(self) -> float | None:
        every = [t for times in self.epoch_times.values() for t in times]
        if not every:
            return None
        overhead_all = [t for times in self.overheads.values() for t in times]
        left = 0.0
        for i, p in enumerate(self.plan):
            if i in self.done:
                continue
            if p.epochs is None:
                return None
            epoch = statistics.fmean(self.epoch_times.get(p.kind) or every)
            overhead = self.overheads.get(p.kind) or overhead_all
            epochs_left = p.epochs - (self.current_epochs if i == self.current else 0)
            left += max(epochs_left, 0) * epoch + (statistics.fmean(overhead) if overhead else 0.0)
        return left

    def timing(self) -> str:
        eta = self.eta()
        elapsed = duration(self.clock() - self.t0)
        return f"{elapsed} elapsed, " + ("ETA unknown" if eta is None else f"ETA {duration(eta)}")

    def _stage(self, i: int) -> str:
        p = self.plan[i]
        return f"{self.tag(p)} | stage {p.stage} ({p.stage_index}/{p.n_stages})"

    def stage_start(self, i: int) -> None:
        self.current, self.current_epochs, self.stage_t0 = i, 0, self.clock()
        epochs = self.plan[i].epochs
        self.printer(f"{self._stage(i)} | {epochs_text(epochs)}{self.timing()}", flush=True)

    def epoch_end(self, seconds: float, val_macro_err: float | None = None) -> None:
        if self.current is None:
            return
        p = self.plan[self.current]
        self.epoch_times.setdefault(p.kind, []).append(seconds)
        self.current_epochs += 1
        of = "" if p.epochs is None else f"/{p.epochs}"
        val = "" if val_macro_err is None else f", val macro error {val_macro_err:.3f}"
        self.printer(
            f"{self._stage(self.current)} | epoch {self.current_epochs}{of} ({duration(seconds)}{val}) | "
            f"{self.timing()}",
            flush=True,
        )

    def stage_end(self, i: int) -> None:
        p = self.plan[i]
        wall = self.clock() - self.stage_t0
        epochs = self.epoch_times.get(p.kind, [])[-self.current_epochs :] if self.current_epochs else []
        self.overheads.setdefault(p.kind, []).append(max(wall - sum(epochs), 0.0))
        self.done.add(i)
        self.current = None
        self.printer(f"{self._stage(i)} | done in {duration(wall)} | {self.timing()}", flush=True)

    def callback(self) -> ProgressCallback:
        return ProgressCallback(self)


class ProgressCallback(Callback):
    """Reports each training epoch (training and its validation) to an ``ExperimentProgress``, from
    global rank 0. ``run_stage`` adds it to the trainer itself, so no stage config (and no run hash)
    mentions it; it has no state and draws no random numbers."""

    def __init__(self, progress: ExperimentProgress) -> None:
        self.progress = progress
        self.epoch_t0: float | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epoch_t0 = self.progress.clock()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or self.epoch_t0 is None:
            return
        val = trainer.callback_metrics.get("val/macro_err")
        self.progress.epoch_end(self.progress.clock() - self.epoch_t0, None if val is None else float(val))
