"""Run folders: which checkpoint ``--ckpt_path last`` / ``best`` means for a new process.

Lightning resolves ``last`` and ``best`` from the checkpoint callback of the running process.
A new ``clusterlight fit --ckpt_path last`` (after a crash) or ``clusterlight test --ckpt_path
best`` (after a fit) has a fresh callback whose folder is a new ``version_N``: there is nothing
to find. Here the newest run folder of the configured logger that holds checkpoints is found,
the logger is pointed back at it (so a resumed fit keeps logging into the same folder and
metrics file), and the concrete checkpoint path is returned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from clusterlight.checkpoints import load_checkpoint

LAST = ModelCheckpoint.CHECKPOINT_NAME_LAST + ModelCheckpoint.FILE_EXTENSION  # last.ckpt


def _versioned_run(trainer: Trainer) -> tuple[Path, Any] | None:
    """(checkpoint folder, logger) of the newest ``version_N`` of a CSV/TensorBoard logger with
    checkpoints, or None."""
    logger = trainer.logger
    if logger is None or not hasattr(logger, "_version") or not hasattr(logger, "root_dir"):
        return None
    if logger.root_dir is None:  # a logger without a folder has no version_N folders
        return None
    runs = [d for d in Path(logger.root_dir).glob("version_*") if any((d / "checkpoints").glob("*.ckpt"))]
    runs = [d for d in runs if d.name.removeprefix("version_").isdigit()]
    if not runs:
        return None
    newest = max(runs, key=lambda d: int(d.name.removeprefix("version_")))
    return newest / "checkpoints", logger


def log_into_run_of(trainer: Trainer, checkpoint: str | Path) -> None:
    """Point a CSV/TensorBoard logger at the ``version_N`` folder that holds ``checkpoint``, e.g.
    for the validation after a ``ddp_spawn`` fit, whose workers chose the version (the main process
    would otherwise open a new one)."""
    logger, run = trainer.logger, Path(checkpoint).parent.parent
    if logger is not None and hasattr(logger, "_version") and run.name.removeprefix("version_").isdigit():
        logger._version = int(run.name.removeprefix("version_"))


def checkpoint_folder(trainer: Trainer) -> Path | None:
    """Where this trainer's earlier run keeps its checkpoints (pointing the logger at that run)."""
    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint) and callback.dirpath:
        return Path(callback.dirpath)
    found = _versioned_run(trainer)
    if found is not None:
        folder, logger = found
        logger._version = int(folder.parent.name.removeprefix("version_"))  # log into the same run
        return folder
    if trainer.logger is None:
        return Path(trainer.default_root_dir) / "checkpoints"
    # other loggers (W&B): the newest last.ckpt under the logger's folder
    candidates = sorted(Path(trainer.logger.save_dir or trainer.default_root_dir).rglob(LAST))
    return max(candidates, key=lambda p: p.stat().st_mtime).parent if candidates else None


def best_in(folder: Path) -> Path | None:
    """The best checkpoint of a run: the one ``last.ckpt``'s ModelCheckpoint state names, else the
    only ``best-*`` file."""
    last = folder / LAST
    if last.is_file():
        state = load_checkpoint(last)  # weights_only, allow-listed
        for key, value in state.get("callbacks", {}).items():
            path = (
                value.get("best_model_path")
                if key.startswith(("ModelCheckpoint", "BestAndLastCheckpoint"))
                else None
            )
            if path and Path(path).is_file():
                return Path(path)
    best = sorted(folder.glob("best*.ckpt"))
    return best[0] if len(best) == 1 else None


def resolve(trainer: Trainer, which: str) -> Path | None:
    """The checkpoint ``which`` (``"last"`` or ``"best"``) of the newest earlier run, or None."""
    folder = checkpoint_folder(trainer)
    if folder is None or not folder.is_dir():
        return None
    if which == "last":
        return folder / LAST if (folder / LAST).is_file() else None
    return best_in(folder)


def selected_checkpoint(output_dir: str | Path, method: str, seed: int, stage: str) -> Path:
    """The checkpoint an experiment (:func:`~clusterlight.experiment.run_experiment`) selected for
    ``(method, seed)``: the best by validation macro error in the newest ``version_N`` of the method's
    ``stage`` (its last one) under ``output_dir``."""
    stage_dir = Path(output_dir) / f"seed{seed}" / method / stage
    folders = sorted(
        (p for p in stage_dir.glob("**/version_*/checkpoints") if p.parent.name[8:].isdigit()),
        key=lambda p: int(p.parent.name[8:]),
    )
    found = best_in(folders[-1]) if folders else None
    if found is None:
        raise FileNotFoundError(f"no selected checkpoint for {method}, seed {seed} under {stage_dir}")
    return found
