"""A map-style dataset over cached waveforms: fixed-length clips, random crop in training."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from clusterlight.data.audio import WaveformStore
from clusterlight.data.cropping import crop_offset, fit_length
from clusterlight.data.logmel_cache import LogMelStore


class ClipDataset(Dataset):
    """Item ``i`` is ``{"wave": float32[n_samples], "label": int, "index": i}``.

    ``index`` is the position within this split; the DataModule maps it to a cluster id on
    the device. Training draws a random crop/shift per item (from torch's RNG, so it follows
    ``seed_everything`` and per-worker seeding); evaluation is deterministic. With
    ``with_wave=False`` an item carries the store ``row`` and crop ``start`` instead of the
    wave, for waveforms resident on the device (:mod:`clusterlight.data.resident`). With a ``logmel``
    store an item carries the window's cached log-mel (``"logmel"``, float32[n_mels, frames]) instead
    of the wave (:mod:`clusterlight.data.logmel_cache`); the crop is drawn the same way.
    """

    def __init__(
        self,
        store: WaveformStore,
        rows: np.ndarray,
        labels: np.ndarray,
        n_samples: int,
        padding: str,
        train: bool,
        with_wave: bool = True,
        logmel: LogMelStore | None = None,
    ) -> None:
        self.store, self.rows, self.labels = store, rows, labels
        self.n_samples, self.padding, self.train, self.with_wave = n_samples, padding, train, with_wave
        self.logmel = logmel

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        row = int(self.rows[i])
        n, m = self.n_samples, self.store.length(row)
        if self.train:
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ())))
            offset = crop_offset(m, n, self.padding, rng)
        else:
            rng = np.random.default_rng(i)
            offset = crop_offset(m, n, self.padding)
        item = {"label": int(self.labels[i]), "index": i}
        if not self.with_wave:
            return {**item, "row": row, "start": offset}
        if self.logmel is not None:
            return {"logmel": torch.from_numpy(self.logmel.window(row, offset)), **item}
        clip = fit_length(self.store.wave(row), n, self.padding, offset, rng)
        return {"wave": torch.from_numpy(np.asarray(clip, dtype=np.float32)), **item}
