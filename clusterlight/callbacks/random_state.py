"""Every random state in the checkpoint, so a resumed run draws what the uninterrupted one draws."""

from __future__ import annotations

import random
from typing import cast

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from clusterlight import distributed


def capture() -> dict:
    """Python's, numpy's, torch's (and CUDA's) global random states, as plain lists and tensors (no
    numpy objects, so a checkpoint stays loadable with ``weights_only=True``)."""
    version, keys, gauss = random.getstate()
    # the legacy tuple (get_state's default, legacy=True, for the MT19937 generator np.random uses)
    legacy = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    kind, np_keys, pos, has_gauss, cached = legacy
    state = {
        "python": [version, list(keys), gauss],
        "numpy": [kind, torch.from_numpy(np_keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict) -> None:
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    kind, np_keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np_keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RandomState(Callback):
    """Saves each rank's random states with every checkpoint and restores them when training resumes.

    Restored at ``on_train_start``, after the sanity check (whose loaders draw seeds), so the
    first resumed epoch starts from exactly the states the interrupted run had when it wrote the
    checkpoint: dropout, random crops, mixing and loader seeds then repeat bit for bit (samplers
    are seeded per epoch by themselves). Each rank gets its own states back under DDP.
    """

    def __init__(self) -> None:
        self._pending: list[dict] | None = None

    def state_dict(self) -> dict:
        return {"ranks": distributed.all_gather_objects(capture())}  # every rank saves: no deadlock

    def load_state_dict(self, state: dict) -> None:
        self._pending = state.get("ranks")

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._pending:
            rank = trainer.global_rank
            if len(self._pending) != trainer.world_size:
                rank = 0  # resumed on another number of processes: same states as before for rank 0
            restore(self._pending[rank])
            self._pending = None
