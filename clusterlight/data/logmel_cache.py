"""The log-mel feature cache: each clip's log-mel spectrogram computed once per audio and front-end setting,
memory-mapped by every later run (``data.feature_cache: true``).

Training then skips the STFT and mel filters of every batch: the model's front end
(:class:`~clusterlight.features.LogMel`) takes the cached log-mel and applies only its time pooling and
SpecAugment. The cache is keyed, written and verified like the waveform cache
(:mod:`clusterlight.data.audio`), in the same checksummed array store
(:mod:`clusterlight.data.array_store`): its key covers the decoded waveforms' checksums (so the files, sizes,
modification times and sample rate behind them), the front end's mel filterbank and STFT settings, the
window length and the padding; the folder is written under a temporary name and renamed into place;
``meta.json`` records each array's shape, dtype, byte size and checksum; ``verify`` is ``size`` or
``full`` (also the checksums and finite values); a cache failing its check is logged, moved aside and
rebuilt.

What is stored, per clip: the log-mel frames ``[frames, n_mels]`` of its *extended* waveform, in which
every window the crop/pad rule (:mod:`clusterlight.data.cropping`) can cut is one contiguous stretch:

- a clip at least as long as the window: the clip itself;
- a shorter clip with ``loop`` padding: the clip repeated to its length plus the window's;
- a shorter clip with ``zero`` padding: the clip between (window - clip) zeros on each side.

A window starting at sample ``p`` of the extended waveform is frames ``round(p / hop)`` onwards. That is
the log-mel of the cut waveform (what the waveform path computes) exactly when the clip is as long as the
window. Otherwise two things differ: the frames within ``n_fft / 2`` samples of a window edge see the
neighbouring samples instead of a reflection, and the crop offset (random in training, centred in
evaluation) is rounded to a frame: by at most ``hop / 2`` samples (5 ms at the defaults), or up to
``hop - 1`` for a window at the very end of a clip whose length is not a multiple of the hop
(:meth:`LogMelStore.first_frame`). ``noise`` padding draws fresh noise per crop, and waveform
augmentations (``data.mixing``) mix waveforms: those keep the waveform path.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clusterlight.data.array_store import (
    CacheProblem,
    all_finite,
    check_checksums,
    check_offsets,
    check_verify,
    load_checked_array,
    open_or_build,
    opens,
    read_meta,
    write_store,
)
from clusterlight.data.audio import WaveformStore
from clusterlight.data.records import DataError
from clusterlight.features import LOG_OFFSET

log = logging.getLogger(__name__)
FEATURE_VERSION = 1  # part of the cache key: bump when the stored values change
META_FORMAT = 1
ARRAYS = ("logmel.npy", "offsets.npy")
FEATURE_PADDING = ("loop", "zero")


def extended_wave(wave: np.ndarray, n: int, padding: str) -> np.ndarray:
    """The samples every window of ``n`` samples of ``wave`` is cut from (see the module docstring)."""
    m = len(wave)
    if m >= n:
        return wave
    if padding == "loop":
        return np.resize(wave, m + n)  # np.resize repeats the clip
    gap = np.zeros(n - m, dtype=wave.dtype)
    return np.concatenate([gap, wave, gap])


def window_start(m: int, n: int, padding: str, offset: int) -> int:
    """Where the window at crop ``offset`` (:func:`~clusterlight.data.cropping.crop_offset`) of a clip of
    ``m`` samples starts in its extended waveform."""
    if m >= n:
        return min(max(offset, 0), m - n)
    if padding == "loop":
        return offset % m
    return (n - m) - min(max(offset, 0), n - m)


def frontend_key(frontend) -> dict:
    """What the stored log-mel depends on in a :class:`~clusterlight.features.LogMel` (not its pooling or
    SpecAugment, which run after the cache)."""
    spec = frontend.mel.spectrogram
    fb = frontend.mel.mel_scale.fb.detach().cpu().numpy().astype(np.float32)
    window = spec.window.detach().cpu().numpy().astype(np.float32)
    return {
        "sample_rate": int(frontend.sample_rate),
        "n_fft": int(spec.n_fft),
        "win_length": int(spec.win_length),
        "hop_length": int(spec.hop_length),
        "center": bool(spec.center),
        "pad_mode": str(spec.pad_mode),
        "power": float(spec.power),
        "normalized": bool(spec.normalized),
        "log_offset": LOG_OFFSET,
        "filterbank": hashlib.blake2b(fb.tobytes(), digest_size=16).hexdigest(),
        "window": hashlib.blake2b(window.tobytes(), digest_size=16).hexdigest(),
    }


@dataclass
class LogMelStore:
    """Ragged cached log-mel: clip (store row) ``i`` is ``frames[offsets[i]:offsets[i+1]]``, each frame
    ``n_mels`` values; a window of ``n_samples`` is ``window_frames`` frames. ``key`` is the cache key
    (:func:`cache_key`) it was opened with."""

    frames: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray  # samples of each clip (the waveform store's)
    n_samples: int
    padding: str
    hop_length: int
    key: str

    @property
    def window_frames(self) -> int:
        return self.n_samples // self.hop_length + 1

    def first_frame(self, row: int, offset: int) -> int:
        """The frame of clip ``row``'s extended waveform where its window at crop ``offset`` starts: the
        nearest to the window's first sample (within ``hop / 2``), or the last one the clip has room for
        (within ``hop - 1``, at the very end of a clip)."""
        start = window_start(int(self.lengths[row]), self.n_samples, self.padding, offset)
        n_frames = int(self.offsets[row + 1] - self.offsets[row])
        return min((start + self.hop_length // 2) // self.hop_length, n_frames - self.window_frames)

    def window(self, row: int, offset: int) -> np.ndarray:
        """Log-mel ``[n_mels, window_frames]`` of clip ``row``'s window at crop ``offset``."""
        f = int(self.offsets[row]) + self.first_frame(row, offset)
        return np.ascontiguousarray(self.frames[f : f + self.window_frames].T, dtype=np.float32)


def cache_key(store: WaveformStore, frontend, n_samples: int, padding: str) -> str:
    blob = json.dumps(
        {
            "v": FEATURE_VERSION,
            "waves": store.digest,
            "frontend": frontend_key(frontend),
            "n_samples": n_samples,
            "padding": padding,
        },
        sort_keys=True,
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def load_logmel(
    store: WaveformStore,
    frontend,
    n_samples: int,
    padding: str,
    cache_dir: str | Path,
    verify: str = "size",
) -> LogMelStore:
    """Compute the log-mel of every clip of ``store`` once into the cache (or reuse it) and return the
    memory-mapped store; ``frontend`` is the model's :class:`~clusterlight.features.LogMel`."""
    if padding not in FEATURE_PADDING:
        raise DataError(f"the log-mel feature cache supports padding {FEATURE_PADDING}, got {padding!r}")
    check_verify(verify)
    if not store.digest:
        raise DataError("the log-mel feature cache needs a waveform store opened from its cache")
    key = cache_key(store, frontend, n_samples, padding)
    folder = Path(cache_dir).expanduser() / f"logmel-{key}"
    hop = int(frontend.mel.spectrogram.hop_length)
    return open_or_build(
        folder,
        "log-mel feature cache",
        lambda f, v: open_logmel(f, key, store, n_samples, padding, hop, v),
        lambda: _build(store, frontend, n_samples, padding, folder, key),
        verify,
        log,
    )


def _fields_ok(meta: dict) -> bool:
    return isinstance(meta["key"], str)


def open_logmel(
    folder: Path, key: str, store: WaveformStore, n_samples: int, padding: str, hop: int, verify: str = "size"
) -> LogMelStore:
    """The cached log-mel in ``folder``, checked as ``verify`` says; raises :class:`CacheProblem` saying
    what is wrong."""
    meta = read_meta(folder, META_FORMAT, ARRAYS, _fields_ok)
    if meta["key"] != key:
        raise CacheProblem(f"meta.json records key {meta['key']}, expected {key}")
    if meta["n"] != len(store):
        raise CacheProblem(f"meta.json records {meta['n']} clips, the waveform store holds {len(store)}")
    frames = load_checked_array(folder, "logmel.npy", meta["arrays"]["logmel.npy"], mmap=True)
    offsets = load_checked_array(folder, "offsets.npy", meta["arrays"]["offsets.npy"], mmap=False)
    if frames.ndim != 2 or frames.dtype != np.float32 or offsets.ndim != 1 or offsets.dtype != np.int64:
        raise CacheProblem("logmel.npy must be 2-D float32 and offsets.npy 1-D int64")
    cached = LogMelStore(frames, offsets, store.lengths(), n_samples, padding, hop, key)
    check_offsets(offsets, len(store), len(frames), cached.window_frames)
    if verify == "full":
        check_checksums(folder, meta, ARRAYS)
        if not all_finite(frames.reshape(-1)):
            raise CacheProblem("logmel.npy holds NaN or infinite values")
    return cached


@torch.no_grad()
def _build(store: WaveformStore, frontend, n_samples: int, padding: str, folder: Path, key: str) -> None:
    log.info("computing the log-mel of %d clips into %s", len(store), folder)
    frontend = copy.deepcopy(frontend).cpu().eval()
    chunks = []
    for i in range(len(store)):
        wave = torch.tensor(extended_wave(store.wave(i), n_samples, padding))
        chunks.append(frontend.logmel(wave).T.contiguous().numpy())
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).astype(np.int64)
    hop = int(frontend.mel.spectrogram.hop_length)
    write_store(
        folder,
        lambda: {"logmel.npy": np.concatenate(chunks).astype(np.float32), "offsets.npy": offsets},
        lambda arrays: {"format": META_FORMAT, "key": key, "n": len(store), "arrays": arrays},
        opens(lambda p: open_logmel(p, key, store, n_samples, padding, hop, "size")),
    )
