"""How waveform samples are stored in the cache (``data.cache_dtype``) and read back as float32.

Round-trip rules (``x`` a decoded float32 sample, ``y`` what :func:`decode_samples` returns):

- ``float32`` (default): ``y == x`` exactly.
- ``int16``: stored ``q = round(x * 32768)`` (round half to even) clipped to ``[-32768, 32767]``, read
  ``y = q / 32768``. Exact for 16-bit PCM decoded at its native rate (soundfile reads sample ``k`` as
  ``k / 32768``); otherwise ``|y - x| <= 2**-16``. Values outside ``[-1, 32767/32768]`` clip to that
  range; clipped samples are counted and their clips named in a warning.
- ``float16``: ``y = float32(float16(x))`` (round to nearest even): relative error ``<= 2**-11`` for
  ``|x| >= 2**-14``, absolute error ``<= 2**-25`` below. Values beyond ``±65504`` (never audio in
  ``[-1, 1]``) clip to it and are counted like int16's.

Half the bytes of float32 either way; the log-mel feature cache stores float16 whenever
``cache_dtype`` is not ``float32``.
"""

from __future__ import annotations

import numpy as np

from clusterlight.data.records import DataError

CACHE_DTYPES = ("float32", "float16", "int16")
INT16_SCALE = 32768.0
FLOAT16_MAX = float(np.finfo(np.float16).max)


def check_cache_dtype(dtype: str) -> None:
    if dtype not in CACHE_DTYPES:
        raise DataError(f"data.cache_dtype must be one of {CACHE_DTYPES}, got {dtype!r}")


def encode_samples(x: np.ndarray, dtype: str) -> tuple[np.ndarray, int]:
    """``x`` (float32) as stored in ``dtype``, and how many samples were clipped."""
    if dtype == "float32":
        return np.asarray(x, dtype=np.float32), 0
    if dtype == "int16":
        q = np.round(np.asarray(x, dtype=np.float32) * np.float32(INT16_SCALE))
        clipped = int(np.count_nonzero((q < -32768) | (q > 32767)))
        return np.clip(q, -32768, 32767).astype(np.int16), clipped
    if dtype == "float16":
        clipped = int(np.count_nonzero(np.abs(x) > FLOAT16_MAX))
        return np.clip(x, -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16), clipped
    raise DataError(f"cache dtype must be one of {CACHE_DTYPES}, got {dtype!r}")


def decode_samples(stored: np.ndarray) -> np.ndarray:
    """Stored samples back as float32 (see the round-trip rules in the module docstring)."""
    if stored.dtype == np.int16:
        return stored.astype(np.float32) * np.float32(1.0 / INT16_SCALE)
    return np.asarray(stored, dtype=np.float32)


def feature_dtype(cache_dtype: str) -> str:
    """The log-mel cache's dtype for a waveform ``cache_dtype``: float16 unless float32."""
    return "float32" if cache_dtype == "float32" else "float16"
