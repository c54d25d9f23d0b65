"""Decoded waveforms held on the training device, cropped and padded there by index arithmetic.

With ``data.waveforms_on_device: true`` the DataLoader carries only ``(row, start)`` per clip;
the DataModule turns them into fixed-length waveforms on the device, so no audio crosses the
host-device link after the first copy. The crop/pad rule is :mod:`clusterlight.data.cropping`'s
(``loop`` and ``zero`` padding), so both paths give identical batches.
"""

from __future__ import annotations

import torch

from clusterlight.data.audio import WaveformStore
from clusterlight.data.cropping import clip_positions
from clusterlight.data.records import DataError

RESIDENT_PADDING = ("loop", "zero")


class ResidentWaveforms:
    """The store's ragged waveforms as one device tensor, plus each clip's offset and length."""

    def __init__(self, store: WaveformStore, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.waves = torch.from_numpy(store.all_waves()).to(self.device)  # one read of the cache
        self.offsets = torch.from_numpy(store.offsets[:-1]).to(self.device)
        self.lengths = torch.from_numpy(store.lengths()).to(self.device)

    @property
    def nbytes(self) -> int:
        return self.waves.numel() * self.waves.element_size()

    def crop(self, rows: torch.Tensor, starts: torch.Tensor, n: int, padding: str) -> torch.Tensor:
        """Waveforms [B, n] of clips ``rows`` (store rows), cropped or padded from ``starts``."""
        if padding not in RESIDENT_PADDING:
            raise DataError(f"data.waveforms_on_device supports padding {RESIDENT_PADDING}, got {padding!r}")
        rows, starts = rows.to(self.device), starts.to(self.device)
        pos, inside = clip_positions(self.lengths[rows], starts, n, padding)
        values = self.waves[self.offsets[rows].unsqueeze(1) + pos]
        return values if inside is None else values * inside
