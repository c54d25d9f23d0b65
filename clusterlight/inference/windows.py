"""Clip-length windows of a waveform, with numpy alone (no torch), for runtimes that only have
onnxruntime (:class:`~clusterlight.inference.onnx_model.OnnxModel`).

A wave up to one clip long gives one window, padded by the evaluation case of the crop/pad rule
(:mod:`clusterlight.data.cropping`; the tests hold the two equal): ``loop`` repeats the clip from its
start, ``zero`` centres it in zeros, ``noise`` is ``zero`` plus white noise 40 dB below the clip's RMS
(drawn from ``numpy.random.default_rng(0)``, as evaluation draws it). A longer wave gives a window every
``hop`` samples from 0, the last one ending at the wave's end.
"""

from __future__ import annotations

import numpy as np

PADDING_MODES = ("loop", "noise", "zero")


def padded_window(wave: np.ndarray, n: int, padding: str) -> np.ndarray:
    """``wave`` (at most ``n`` samples) as one window of ``n`` by the evaluation padding rule."""
    if padding not in PADDING_MODES:
        raise ValueError(f"padding must be one of {PADDING_MODES}, got {padding!r}")
    m = len(wave)
    if m > n:
        raise ValueError(f"a wave of {m} samples does not fit one window of {n}")
    if m == n:
        return wave.copy()
    if m == 0:
        raise ValueError("an empty wave has no window")
    if padding == "loop":
        return wave[np.arange(n) % m]
    out = np.zeros(n, dtype=wave.dtype)
    start = (n - m) // 2
    out[start : start + m] = wave
    if padding == "noise":
        rms = float(np.sqrt(np.mean(wave.astype(np.float64) ** 2))) + 1e-8
        out = out + np.random.default_rng(0).standard_normal(n).astype(np.float32) * (rms * 0.01)
    return out


def windows(wave: np.ndarray, n: int, hop: int, padding: str) -> np.ndarray:
    """[w, n] clip-length windows of ``wave``: one padded window when it is at most ``n`` long."""
    m = len(wave)
    if m <= n:
        return padded_window(wave, n, padding)[None]
    starts = list(range(0, m - n + 1, hop))
    if starts[-1] != m - n:
        starts.append(m - n)
    return np.stack([wave[s : s + n] for s in starts])
