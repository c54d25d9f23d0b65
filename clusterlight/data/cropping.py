"""The crop/pad rule: how a clip of any length becomes a fixed-length window, in one place.

Longer clips are cropped at an offset (clipped to the valid range). Shorter clips are padded:
``loop`` repeats the clip from the offset (a circular shift), ``zero`` places it at the offset
in digital silence (a shortcut no deployed detector sees; for comparison only), ``noise`` as
``zero`` plus white noise 40 dB below the clip's RMS. :func:`clip_positions` states the rule
as index arithmetic on tensors for the device path (:class:`~clusterlight.data.resident.ResidentWaveforms`,
a batch); :func:`fit_length` applies the same rule to one clip with slices (tested equal).
"""

from __future__ import annotations

import numpy as np
import torch

from clusterlight.data.records import DataError

PADDING_MODES = ("loop", "noise", "zero")


def crop_offset(m: int, n: int, padding: str, rng: np.random.Generator | None = None) -> int:
    """Offset of a clip of ``m`` samples in a window of ``n``: drawn from ``rng`` (training), or
    centred (evaluation; 0 for a looped short clip)."""
    looped = m < n and padding == "loop"
    if rng is None:
        return 0 if looped else abs(m - n) // 2
    return int(rng.integers(0, m if looped else abs(m - n) + 1))


def clip_positions(
    lengths: torch.Tensor, offsets: torch.Tensor, n: int, padding: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sample positions [B, n] within each clip (``lengths`` [B], ``offsets`` [B]) and which of them
    hold audio (``None``: all of them, as with ``loop``); padded positions point at sample 0."""
    m, start = lengths.unsqueeze(1), offsets.unsqueeze(1)
    t = torch.arange(n, device=lengths.device).unsqueeze(0)
    longer = m >= n
    crop_at = torch.minimum(start.clamp(min=0), (m - n).clamp(min=0))
    if padding == "loop":
        return torch.where(longer, crop_at + t, (start % m + t) % m), None
    place_at = torch.minimum(start.clamp(min=0), (n - m).clamp(min=0))
    pos = torch.where(longer, crop_at + t, t - place_at)
    inside = longer | ((pos >= 0) & (pos < m))
    return torch.where(inside, pos, torch.zeros_like(pos)), inside


def fit_length(
    wave: np.ndarray, n: int, mode: str, offset: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Crop or pad ``wave`` to ``n`` samples from ``offset`` by the rule above (``noise`` draws from
    ``rng``). The rule of :func:`clip_positions` as slices: a data loader calls this once per clip, where
    building the index tensors would cost more than the copy."""
    if mode not in PADDING_MODES:
        raise DataError(f"padding must be one of {PADDING_MODES}, got {mode!r}")
    m = len(wave)
    if m >= n:
        at = min(max(offset, 0), m - n)
        return wave[at : at + n].copy()  # its own array, never a view of the (memory-mapped) cache
    if mode == "loop":
        return np.resize(np.roll(wave, -(offset % m)), n)  # sample t is wave[(offset + t) % m]
    at = min(max(offset, 0), n - m)
    out = np.zeros(n, dtype=wave.dtype)
    out[at : at + m] = wave
    if mode == "noise":
        rms = float(np.sqrt(np.mean(wave.astype(np.float64) ** 2))) + 1e-8
        out = out + (rng or np.random.default_rng(0)).standard_normal(n).astype(np.float32) * (rms * 0.01)
    return out
