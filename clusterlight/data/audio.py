"""Decoding, resampling and fixing clips to a length; the decoded-waveform cache.

Audio is decoded once into a ragged float32 array on disk (``waves.npy`` plus
``offsets.npy``), memory-mapped by every later run. The cache key covers the file list
(paths, sizes, modification times) and the sample rate, and the folder is written under
a temporary name and renamed into place, so a crash never leaves a half-written cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from clusterlight.data.atomic import atomic_folder
from clusterlight.data.records import Clip, DataError

log = logging.getLogger(__name__)
CACHE_VERSION = 2


def decode(path: str, sample_rate: int) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sample_rate``; raise :class:`DataError` naming the file."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"audio file {path} does not exist")
    if p.stat().st_size == 0:
        raise DataError(f"audio file {path} is empty (0 bytes)")
    try:
        wave, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types for corrupt input
        raise DataError(f"audio file {path} could not be decoded: {e}") from e
    if wave.shape[0] == 0:
        raise DataError(f"audio file {path} has no samples")
    mono = wave.mean(axis=1)
    if not np.isfinite(mono).all():
        raise DataError(f"audio file {path} contains NaN or infinite samples")
    if sr != sample_rate:
        mono = AF.resample(torch.from_numpy(mono), sr, sample_rate).numpy()
    return mono


@dataclass
class WaveformStore:
    """Ragged decoded waveforms: clip ``i`` is ``waves[offsets[i]:offsets[i+1]]``."""

    waves: np.ndarray
    offsets: np.ndarray
    clips: list[Clip]
    skipped: list[str]

    def __len__(self) -> int:
        return len(self.clips)

    def wave(self, i: int) -> np.ndarray:
        return np.asarray(self.waves[self.offsets[i] : self.offsets[i + 1]], dtype=np.float32)

    def length(self, i: int) -> int:
        return int(self.offsets[i + 1] - self.offsets[i])

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def cache_key(clips: list[Clip], sample_rate: int, on_bad_file: str) -> str:
    items = []
    for c in clips:
        try:
            st = os.stat(c.path)
            items.append([c.path, st.st_size, st.st_mtime_ns])
        except OSError:
            items.append([c.path, None, None])
    blob = json.dumps({"v": CACHE_VERSION, "sr": sample_rate, "bad": on_bad_file, "files": items})
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def load_waveforms(
    clips: list[Clip], sample_rate: int, cache_dir: str | Path, on_bad_file: str = "error"
) -> WaveformStore:
    """Decode ``clips`` once into the cache (or reuse it) and return the memory-mapped store.

    ``on_bad_file="skip"`` drops files that fail to decode, logging how many and which;
    the store's ``clips`` then lists only the kept ones.
    """
    if on_bad_file not in ("error", "skip"):
        raise DataError(f"on_bad_file must be 'error' or 'skip', got {on_bad_file!r}")
    folder = Path(cache_dir).expanduser() / f"waves-{cache_key(clips, sample_rate, on_bad_file)}"
    if not (folder / "meta.json").is_file():
        _build_cache(clips, sample_rate, folder, on_bad_file)
    meta = json.loads((folder / "meta.json").read_text())
    skipped = set(meta["skipped"])
    kept = [c for c in clips if c.path not in skipped]
    if skipped:
        log.warning("skipped %d unreadable audio file(s): %s", len(skipped), ", ".join(sorted(skipped)[:20]))
    return WaveformStore(
        waves=np.load(folder / "waves.npy", mmap_mode="r"),
        offsets=np.load(folder / "offsets.npy"),
        clips=kept,
        skipped=sorted(skipped),
    )


def _build_cache(clips: list[Clip], sample_rate: int, folder: Path, on_bad_file: str) -> None:
    log.info("decoding %d audio files into %s", len(clips), folder)
    waves, skipped = [], []
    for c in clips:
        try:
            waves.append(decode(c.path, sample_rate))
        except DataError as e:
            if on_bad_file == "error":
                raise
            log.warning("skipping %s", e)
            skipped.append(c.path)
    if not waves:
        raise DataError("no audio file could be decoded: every clip was skipped")
    offsets = np.concatenate([[0], np.cumsum([len(w) for w in waves])]).astype(np.int64)
    with atomic_folder(folder, "meta.json") as tmp:
        np.save(tmp / "waves.npy", np.concatenate(waves))
        np.save(tmp / "offsets.npy", offsets)
        (tmp / "meta.json").write_text(
            json.dumps({"sample_rate": sample_rate, "n": len(waves), "skipped": skipped})
        )
