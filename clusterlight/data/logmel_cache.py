"""The log-mel feature cache: each clip's log-mel spectrogram computed once per audio and front-end setting,
memory-mapped by every later run (``data.feature_cache: true``).

Training then skips the STFT and mel filters of every batch: the model's front end
(:class:`~clusterlight.features.LogMel`) takes the cached log-mel and applies only its time pooling and
SpecAugment. The cache is keyed, written and verified like the waveform cache
(:mod:`clusterlight.data.audio`), in shards of 256 clips (store rows), each a checksummed array store
(:mod:`clusterlight.data.array_store`: ``logmel.npy`` and ``offsets.npy``), plus ``index.json`` written last
(:mod:`clusterlight.data.shard_build`): its key covers the decoded waveforms' checksums (so the files, sizes,
modification times, sample rate and cache dtype behind them), the front end's mel filterbank and STFT
settings, the window length, the padding and the stored dtype; the build resumes from its finished shards
and the folder appears only when complete; ``verify`` is ``size`` or ``full`` (also the checksums and finite
values, shard by shard in parallel); a damaged shard is rebuilt alone, any other problem rebuilds the cache,
with a warning.

The frames are stored as float32, or as float16 when the waveform cache is not float32
(:func:`~clusterlight.data.sample_codec.feature_dtype`: relative error ``<= 2**-11``), and read back as
float32.

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clusterlight.data.array_store import (
    CacheProblem,
    all_finite,
    check_checksums,
    check_offsets,
    check_verify,
    load_checked_array,
    opens,
    read_meta,
    write_store,
)
from clusterlight.data.audio import CLIPS_PER_SHARD, WaveformStore
from clusterlight.data.records import DataError
from clusterlight.data.sample_codec import feature_dtype
from clusterlight.data.shard_build import build_sharded, partial_folder, shard_name, shard_ranges
from clusterlight.data.shard_open import (
    check_shards_fully,
    open_indexed_shards,
    open_or_build_sharded,
    read_index,
    read_shard_meta,
)
from clusterlight.features import LOG_OFFSET

log = logging.getLogger(__name__)
FEATURE_VERSION = 2  # part of the cache key: bump when the stored values or the layout change
INDEX_FORMAT = 1
SHARD_FORMAT = 1
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
    """Sharded cached log-mel: clip (store row) ``i`` is frames ``offsets[i]:offsets[i+1]`` of the shards
    laid end to end, each frame ``n_mels`` values; a window of ``n_samples`` is ``window_frames`` frames.
    ``key`` is the cache key (:func:`cache_key`) it was opened with."""

    shards: list[np.ndarray]
    offsets: np.ndarray
    lengths: np.ndarray  # samples of each clip (the waveform store's)
    n_samples: int
    padding: str
    hop_length: int
    key: str
    shard_start: np.ndarray = field(init=False)
    shard_of: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.shard_start = np.concatenate([[0], np.cumsum([len(s) for s in self.shards])]).astype(np.int64)
        shard_of = np.searchsorted(self.shard_start, self.offsets[:-1], side="right") - 1
        self.shard_of = np.minimum(shard_of, max(len(self.shards) - 1, 0))

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
        s = int(self.shard_of[row])
        f = int(self.offsets[row] - self.shard_start[s]) + self.first_frame(row, offset)
        return np.ascontiguousarray(self.shards[s][f : f + self.window_frames].T, dtype=np.float32)


def cache_key(store: WaveformStore, frontend, n_samples: int, padding: str, dtype: str = "float32") -> str:
    blob = json.dumps(
        {
            "v": FEATURE_VERSION,
            "waves": store.digest,
            "frontend": frontend_key(frontend),
            "n_samples": n_samples,
            "padding": padding,
            "dtype": dtype,
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
    cache_dtype: str = "float32",
    workers: int = 1,
    clips_per_shard: int = CLIPS_PER_SHARD,
) -> LogMelStore:
    """Compute the log-mel of every clip of ``store`` once into the cache (or reuse it) and return the
    memory-mapped store; ``frontend`` is the model's :class:`~clusterlight.features.LogMel`, ``cache_dtype``
    the waveform cache's (it sets the stored dtype), ``workers`` the processes of ``verify: full``."""
    if padding not in FEATURE_PADDING:
        raise DataError(f"the log-mel feature cache supports padding {FEATURE_PADDING}, got {padding!r}")
    check_verify(verify)
    if not store.digest:
        raise DataError("the log-mel feature cache needs a waveform store opened from its cache")
    dtype = feature_dtype(cache_dtype)
    key = cache_key(store, frontend, n_samples, padding, dtype)
    folder = Path(cache_dir).expanduser() / f"logmel-{key}"
    cache = LogMelCache(folder, key, store, frontend, n_samples, padding, dtype, clips_per_shard, workers)
    return open_or_build_sharded(folder, "log-mel feature cache", cache.open, cache.build, verify, log)


def _index_ok(index: dict) -> bool:
    return isinstance(index["key"], str) and isinstance(index["n"], int)


def _shard_fields_ok(meta: dict) -> bool:
    return isinstance(meta["key"], str)


def logmel_shard_problem(folder: str) -> str | None:
    """What ``verify: full`` finds wrong with a log-mel shard (checksums, finite values), or ``None``."""
    path = Path(folder)
    try:
        meta = read_meta(path, SHARD_FORMAT, ARRAYS, _shard_fields_ok)
        check_checksums(path, meta, ARRAYS)
        frames = np.load(path / "logmel.npy", mmap_mode="r")
    except (CacheProblem, ValueError, OSError) as e:
        return str(e)
    if not all_finite(frames.reshape(-1)):
        return "logmel.npy holds NaN or infinite values"
    return None


@dataclass
class LogMelCache:
    """One log-mel cache folder: how to open it and how to build (or resume, or repair) it."""

    folder: Path
    key: str
    store: WaveformStore
    frontend: Any  # a LogMel
    n_samples: int
    padding: str
    dtype: str
    per_shard: int
    workers: int

    def __post_init__(self) -> None:
        self.ranges = shard_ranges(len(self.store), self.per_shard)
        self.hop = int(self.frontend.mel.spectrogram.hop_length)

    @property
    def window_frames(self) -> int:
        return self.n_samples // self.hop + 1

    def open(self, folder: Path, verify: str = "size") -> LogMelStore:
        """The cached log-mel in ``folder``, checked as ``verify`` says; raises :class:`CacheProblem` saying
        what is wrong."""
        index = read_index(folder, INDEX_FORMAT, _index_ok)
        if index["key"] != self.key:
            raise CacheProblem(f"index.json records key {index['key']}, expected {self.key}")
        if index["n"] != len(self.store):
            raise CacheProblem(
                f"index.json records {index['n']} clips, the waveform store holds {len(self.store)}"
            )
        names, shards = open_indexed_shards(index, len(self.ranges), lambda r: self._open_shard(folder, r))
        if verify == "full":
            args = [(str(folder / name),) for name in names]
            check_shards_fully(names, logmel_shard_problem, args, self.workers, "log-mel feature cache")
        lengths = [np.diff(offsets) for _, offsets in shards]
        offsets = np.concatenate([[0], np.cumsum(np.concatenate(lengths))]).astype(np.int64)
        frames = [f for f, _ in shards]
        return LogMelStore(
            frames, offsets, self.store.lengths(), self.n_samples, self.padding, self.hop, self.key
        )

    def _open_shard(self, folder: Path, record: dict) -> tuple[np.ndarray, np.ndarray]:
        read_shard_meta(folder, record, SHARD_FORMAT, ARRAYS, _shard_fields_ok)
        return self._open_shard_folder(folder / record["name"], int(record["name"][6:]))

    def _open_shard_folder(self, path: Path, i: int) -> tuple[np.ndarray, np.ndarray]:
        meta = read_meta(path, SHARD_FORMAT, ARRAYS, _shard_fields_ok)
        start, stop = self.ranges[i]
        if meta["key"] != self.key or meta["n"] != stop - start:
            raise CacheProblem(
                f"meta.json records key {meta['key']} and {meta['n']} clips, expected "
                f"{self.key} and {stop - start}"
            )
        frames = load_checked_array(path, "logmel.npy", meta["arrays"]["logmel.npy"], mmap=True)
        offsets = load_checked_array(path, "offsets.npy", meta["arrays"]["offsets.npy"], mmap=False)
        if (
            frames.ndim != 2
            or str(frames.dtype) != self.dtype
            or offsets.ndim != 1
            or offsets.dtype != np.int64
        ):
            raise CacheProblem(f"logmel.npy must be 2-D {self.dtype} and offsets.npy 1-D int64")
        check_offsets(offsets, stop - start, len(frames), self.window_frames)
        return frames, offsets

    def build(self, reuse: tuple[Path, Sequence[str]] | None) -> None:
        log.info("computing the log-mel of %d clips into %s", len(self.store), self.folder)
        partial = partial_folder(self.folder)
        names = [shard_name(i) for i in range(len(self.ranges))]
        keep = None if reuse is None else (reuse[0], [n for n in names if n not in reuse[1]])
        self.frontend_cpu = copy.deepcopy(self.frontend).cpu().eval()
        build_sharded(
            self.folder,
            len(self.ranges),
            lambda i: opens(lambda p: self._open_shard_folder(p, i))(partial / shard_name(i)),
            self._write_shard,
            lambda i: (i,),
            lambda i: None,
            self._write_index,
            opens(self.open),
            1,  # in this process: the front end stays here
            lambda i: self.ranges[i][1] - self.ranges[i][0],
            f"computing log-mel into {self.folder.name}",
            keep,
        )

    @torch.no_grad()
    def _write_shard(self, i: int) -> None:
        chunks = []
        for row in range(*self.ranges[i]):
            wave = torch.tensor(extended_wave(self.store.wave(row), self.n_samples, self.padding))
            chunks.append(self.frontend_cpu.logmel(wave).T.contiguous().numpy().astype(self.dtype))
        offsets = np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).astype(np.int64)
        path = partial_folder(self.folder) / shard_name(i)
        write_store(
            path,
            lambda: {"logmel.npy": np.concatenate(chunks), "offsets.npy": offsets},
            lambda arrays: {"format": SHARD_FORMAT, "key": self.key, "n": len(chunks), "arrays": arrays},
            opens(lambda p: self._open_shard_folder(p, i)),
        )

    def _write_index(self, partial: Path) -> None:
        metas = [
            read_meta(partial / shard_name(i), SHARD_FORMAT, ARRAYS, _shard_fields_ok)
            for i in range(len(self.ranges))
        ]
        index = {
            "format": INDEX_FORMAT,
            "key": self.key,
            "n": len(self.store),
            "shards": [
                {"name": shard_name(i), "n": m["n"], "arrays": m["arrays"]} for i, m in enumerate(metas)
            ],
        }
        (partial / "index.json").write_text(json.dumps(index))
