"""Decoded waveforms held on the training device, cropped and padded there by index arithmetic.

With ``data.waveforms_on_device: true`` the DataLoader carries only ``(row, start)`` per clip;
the DataModule turns them into fixed-length waveforms on the device, so no audio crosses the
host-device link after the first copy. The crop/pad rule is :func:`clusterlight.data.audio.fit_length`'s
(``loop`` and ``zero`` padding), so both paths give identical batches.
"""

from __future__ import annotations

import numpy as np
import torch

from clusterlight.data.audio import WaveformStore
from clusterlight.data.records import DataError

RESIDENT_PADDING = ("loop", "zero")


class ResidentWaveforms:
    """The store's ragged waveforms as one device tensor, plus each clip's offset and length."""

    def __init__(self, store: WaveformStore, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.waves = torch.from_numpy(np.array(store.waves, dtype=np.float32)).to(
            self.device
        )  # one read of the memory map
        self.offsets = torch.from_numpy(store.offsets[:-1]).to(self.device)
        self.lengths = torch.from_numpy(store.lengths()).to(self.device)

    @property
    def nbytes(self) -> int:
        return self.waves.numel() * self.waves.element_size()

    def crop(self, rows: torch.Tensor, starts: torch.Tensor, n: int, padding: str) -> torch.Tensor:
        """Waveforms [B, n] of clips ``rows`` (store rows), cropped or padded from ``starts`` as ``fit_length`` does."""
        if padding not in RESIDENT_PADDING:
            raise DataError(f"data.waveforms_on_device supports padding {RESIDENT_PADDING}, got {padding!r}")
        rows, starts = rows.to(self.device), starts.to(self.device)
        m = self.lengths[rows].unsqueeze(1)
        start = starts.unsqueeze(1)
        t = torch.arange(n, device=self.device).unsqueeze(0)
        longer = m >= n
        crop_at = torch.minimum(start.clamp(min=0), (m - n).clamp(min=0))  # clips >= n samples
        if padding == "loop":
            pos = torch.where(longer, crop_at + t, (start % m + t) % m)
            return self.waves[self.offsets[rows].unsqueeze(1) + pos]
        place_at = torch.minimum(
            start.clamp(min=0), (n - m).clamp(min=0)
        )  # zero padding: clip placed at start
        pos = torch.where(longer, crop_at + t, t - place_at)
        inside = longer | ((pos >= 0) & (pos < m))
        values = self.waves[self.offsets[rows].unsqueeze(1) + pos.clamp(min=0).minimum(m - 1)]
        return values * inside
