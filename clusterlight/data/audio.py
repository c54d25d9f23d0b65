"""The decoded-waveform cache: every clip decoded (:mod:`clusterlight.data.decode`) once, in shards.

Audio is decoded once into a sharded cache folder ``waves-<key>/`` under ``cache_dir``, memory-mapped by
every later run. The key covers the file list (paths, sizes, modification times), the sample rate,
``on_bad_file``, ``cache_dtype`` and the shard size. The folder holds ``shard-00000/``, ``shard-00001/``, ...
(:mod:`clusterlight.data.waveform_shards`; shard ``s`` holds the files at positions ``[256 s, 256 s + 256)``
of the file list) and ``index.json``, written last. Shards are decoded by ``decode_workers`` processes and
are the same bytes whatever their number; a killed build resumes from its finished shards
(:mod:`clusterlight.data.shard_build`). Peak memory while building is a few shards, not the data set.

Samples are stored as ``cache_dtype`` (``float32``, ``float16`` or ``int16``) and read back as float32, with
the round-trip rules of :mod:`clusterlight.data.sample_codec`.

Opening a cache checks it (``verify``, :mod:`clusterlight.data.shard_open`):

- ``"size"`` (default; reads ``index.json``, each shard's ``meta.json``, array headers and offsets): every
  shard exists with the recorded byte sizes, shapes and dtypes, its offsets are consistent and it lists the
  same files. It does not read the waveforms, so it does not catch a ``waves.npy`` overwritten with garbage
  of the same size, nor NaN/infinite values in it, nor an audio file changed without changing its size or
  modification time.
- ``"full"``: all of ``"size"``, plus, shard by shard in ``decode_workers`` processes, the checksums of the
  arrays, every waveform value finite, and every audio file re-read and compared with its recorded
  checksum. It reads the whole cache and every audio file once.

A damaged shard is named in a warning and rebuilt alone; any other problem (``index.json``) is logged, the
folder moved aside in one rename, and the cache rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clusterlight.data.array_store import CacheProblem, check_verify, opens, read_meta
from clusterlight.data.records import Clip, DataError
from clusterlight.data.sample_codec import check_cache_dtype, decode_samples
from clusterlight.data.shard_build import build_sharded, partial_folder, shard_name, shard_ranges
from clusterlight.data.shard_open import (
    check_shards_fully,
    open_indexed_shards,
    open_or_build_sharded,
    read_index,
    read_shard_meta,
)
from clusterlight.data.waveform_shards import (
    ARRAYS,
    SHARD_FORMAT,
    OpenShard,
    ShardSettings,
    listing,
    open_shard,
    shard_problem,
    write_shard,
)

log = logging.getLogger(__name__)
CACHE_VERSION = 3  # part of the cache key: bump when the decoded values or the layout change
INDEX_FORMAT = 1
CLIPS_PER_SHARD = 256


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class WaveformStore:
    """Sharded decoded waveforms: clip ``i`` is samples ``offsets[i]:offsets[i+1]`` of the shards laid end
    to end (``offsets`` int64, one per clip plus one), read back as float32 by :meth:`wave`.

    ``silent`` and ``short`` name the kept clips that are all zeros or shorter than the minimum length the
    store was opened with (warned about, not dropped); ``clipped`` counts the samples ``cache_dtype``
    clipped, per clip. ``digest`` names the cached content (the recorded checksums of every shard's arrays):
    caches derived from it (the log-mel feature cache) carry it in their key.
    """

    shards: list[np.ndarray]
    offsets: np.ndarray
    clips: list[Clip]
    skipped: list[str]
    silent: list[str] = field(default_factory=list)
    short: list[str] = field(default_factory=list)
    digest: str = ""
    clipped: dict[str, int] = field(default_factory=dict)
    folder: Path | None = None

    def __post_init__(self) -> None:
        sizes = [len(s) for s in self.shards]
        self.shard_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.shard_of = np.searchsorted(self.shard_start, self.offsets[:-1], side="right") - 1
        self.shard_of = np.minimum(self.shard_of, max(len(self.shards) - 1, 0))  # clips at a shard's end

    def __len__(self) -> int:
        return len(self.clips)

    def wave(self, i: int) -> np.ndarray:
        s = int(self.shard_of[i])
        start = int(self.offsets[i] - self.shard_start[s])
        return decode_samples(self.shards[s][start : start + self.length(i)])

    def length(self, i: int) -> int:
        return int(self.offsets[i + 1] - self.offsets[i])

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def nbytes(self) -> int:
        """Bytes of stored samples (in the cache dtype)."""
        return sum(s.nbytes for s in self.shards)

    def all_waves(self) -> np.ndarray:
        """Every clip's float32 samples in one array (``offsets`` index it): reads the whole cache."""
        if not self.shards:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate([decode_samples(s) for s in self.shards])


def cache_key(
    clips: list[Clip],
    sample_rate: int,
    on_bad_file: str,
    cache_dtype: str = "float32",
    clips_per_shard: int = CLIPS_PER_SHARD,
) -> str:
    items = []
    for c in clips:
        try:
            st = os.stat(c.path)
            items.append([c.path, st.st_size, st.st_mtime_ns])
        except OSError:
            items.append([c.path, None, None])
    settings = {"v": CACHE_VERSION, "sr": sample_rate, "bad": on_bad_file, "dtype": cache_dtype}
    blob = json.dumps({**settings, "shard": clips_per_shard, "files": items})
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def load_waveforms(
    clips: list[Clip],
    sample_rate: int,
    cache_dir: str | Path,
    on_bad_file: str = "error",
    verify: str = "size",
    min_clip_seconds: float = 0.05,
    decode_workers: int | None = None,
    cache_dtype: str = "float32",
    clips_per_shard: int = CLIPS_PER_SHARD,
) -> WaveformStore:
    """Decode ``clips`` once into the cache (or reuse it) and return the memory-mapped store.

    ``on_bad_file="skip"`` drops files that fail to decode, logging how many and which; the store's
    ``clips`` then lists only the kept ones. ``verify`` is how an existing cache is checked before use
    (``"size"`` or ``"full"``, see the module docstring); a damaged shard is rebuilt alone, any other
    problem rebuilds the cache, with a warning. ``decode_workers`` processes decode and verify (default: the
    usable cores). Clips that are all zeros or shorter than ``min_clip_seconds`` are counted and named in
    one warning (they are kept), as are clips whose samples ``cache_dtype`` clipped.
    """
    if on_bad_file not in ("error", "skip"):
        raise DataError(f"on_bad_file must be 'error' or 'skip', got {on_bad_file!r}")
    check_verify(verify)
    check_cache_dtype(cache_dtype)
    workers = decode_workers or usable_cores()
    settings = ShardSettings(sample_rate, on_bad_file, cache_dtype)
    key = cache_key(clips, sample_rate, on_bad_file, cache_dtype, clips_per_shard)
    folder = Path(cache_dir).expanduser() / f"waves-{key}"
    cache = WaveformCache(folder, clips, settings, clips_per_shard, workers)
    store = open_or_build_sharded(folder, "waveform cache", cache.open, cache.build, verify, log)
    if store.skipped:
        log.warning(
            "skipped %d unreadable audio file(s): %s", len(store.skipped), ", ".join(store.skipped[:20])
        )
    min_len = min_clip_seconds * sample_rate
    store.short = [c.path for c, n in zip(store.clips, store.lengths()) if n < min_len]
    _warn_suspicious(store, min_clip_seconds, cache_dtype)
    return store


def _warn_suspicious(store: WaveformStore, min_clip_seconds: float, cache_dtype: str) -> None:
    """One warning counting and naming the kept clips that are all zeros, too short or clipped."""
    parts = []
    if store.silent:
        parts.append(f"{len(store.silent)} clip(s) are all zeros: {listing(store.silent)}")
    if store.short:
        parts.append(
            f"{len(store.short)} clip(s) are shorter than min_clip_seconds={min_clip_seconds:g}: "
            f"{listing(store.short)}"
        )
    if store.clipped:
        parts.append(
            f"{sum(store.clipped.values())} sample(s) of {len(store.clipped)} clip(s) were clipped to the "
            f"range of cache_dtype {cache_dtype}: {listing(sorted(store.clipped))}"
        )
    if parts:
        log.warning("suspicious audio (kept): %s", "; ".join(parts))


def _index_ok(index: dict) -> bool:
    return all(isinstance(index[k], int) for k in ("sample_rate", "clips_per_shard", "files", "n")) and (
        isinstance(index["dtype"], str)
    )


def _shard_fields_ok(meta: dict) -> bool:
    return isinstance(meta["files"], list)


@dataclass
class WaveformCache:
    """One waveform cache folder: how to open it and how to build (or resume, or repair) it."""

    folder: Path
    clips: list[Clip]
    settings: ShardSettings
    per_shard: int
    workers: int

    def __post_init__(self) -> None:
        self.ranges = shard_ranges(len(self.clips), self.per_shard)
        self.paths = [c.path for c in self.clips]

    def shard_paths(self, i: int) -> list[str]:
        start, stop = self.ranges[i]
        return self.paths[start:stop]

    def open(self, folder: Path, verify: str = "size") -> WaveformStore:
        """The store in ``folder``, checked as ``verify`` says; raises :class:`CacheProblem` (or
        :class:`~clusterlight.data.shard_open.DamagedShards`) saying what is wrong."""
        index = read_index(folder, INDEX_FORMAT, _index_ok)
        expected = (self.settings.sample_rate, self.settings.cache_dtype, self.per_shard, len(self.clips))
        found = (index["sample_rate"], index["dtype"], index["clips_per_shard"], index["files"])
        if found != expected:
            raise CacheProblem(
                f"index.json records (sample rate, dtype, shard size, files) {found}, expected {expected}"
            )
        names, shards = open_indexed_shards(index, len(self.ranges), lambda r: self._open_shard(folder, r))
        if verify == "full":
            args = [(str(folder / n), self.shard_paths(i), self.settings) for i, n in enumerate(names)]
            check_shards_fully(names, shard_problem, args, self.workers, "waveform cache")
        return self._store(folder, shards, index)

    def _open_shard(self, folder: Path, record: dict) -> OpenShard:
        read_shard_meta(folder, record, SHARD_FORMAT, ARRAYS, _shard_fields_ok)
        return open_shard(folder / record["name"], self.shard_paths(int(record["name"][6:])), self.settings)

    def _store(self, folder: Path, shards: list[OpenShard], index: dict) -> WaveformStore:
        skipped = {p for s in shards for p in s.meta["skipped"]}
        lengths = np.concatenate([np.diff(s.offsets) for s in shards]) if shards else np.zeros(0, np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        if len(offsets) - 1 != index["n"]:
            raise CacheProblem(f"index.json records {index['n']} clips, the shards hold {len(offsets) - 1}")
        digest = json.dumps([s["arrays"][a]["blake2b"] for s in index["shards"] for a in ARRAYS])
        return WaveformStore(
            shards=[s.waves for s in shards],
            offsets=offsets,
            clips=[c for c in self.clips if c.path not in skipped],
            skipped=sorted(skipped),
            silent=[p for s in shards for p in s.meta["silent"]],
            digest=hashlib.blake2b(digest.encode(), digest_size=16).hexdigest(),
            clipped={p: n for s in shards for p, n in s.meta["clipped"].items()},
            folder=folder,
        )

    def build(self, reuse: tuple[Path, Sequence[str]] | None) -> None:
        """Decode the missing shards (all, or those of a partial build, or ``reuse``'s damaged ones) and
        publish the cache."""
        if self.settings.on_bad_file == "error":
            missing = [p for p in self.paths if not Path(p).is_file()]
            if missing:
                more = f" ({len(missing)} files missing: {listing(missing)})" if len(missing) > 1 else ""
                raise DataError(f"audio file {missing[0]} does not exist{more}")
        log.info("decoding %d audio files into %s (%d workers)", len(self.clips), self.folder, self.workers)
        partial = partial_folder(self.folder)
        keep = None
        if reuse is not None:
            keep = (
                reuse[0],
                [shard_name(i) for i in range(len(self.ranges)) if shard_name(i) not in reuse[1]],
            )
        build_sharded(
            self.folder,
            len(self.ranges),
            self._shard_whole,
            write_shard,
            lambda i: (str(partial / shard_name(i)), self.shard_paths(i), self.settings),
            lambda i: self._report_skips(partial / shard_name(i)),
            self._write_index,
            opens(self.open),
            self.workers,
            lambda i: len(self.shard_paths(i)),
            f"decoding audio into {self.folder.name}",
            keep,
        )

    def _shard_whole(self, i: int) -> bool:
        """Whether shard ``i`` of the partial build is whole (published, and of these files)."""
        path = partial_folder(self.folder) / shard_name(i)
        return opens(lambda p: open_shard(p, self.shard_paths(i), self.settings))(path)

    def _report_skips(self, shard: Path) -> None:
        meta = json.loads((shard / "meta.json").read_text())
        for reason in meta["skip_reasons"]:
            log.warning("skipping %s", reason)

    def _write_index(self, partial: Path) -> None:
        metas = [
            read_meta(partial / shard_name(i), SHARD_FORMAT, ARRAYS, _shard_fields_ok)
            for i in range(len(self.ranges))
        ]
        n = sum(m["n"] for m in metas)
        if n == 0:
            raise DataError("no audio file could be decoded: every clip was skipped")
        index = {
            "format": INDEX_FORMAT,
            "sample_rate": self.settings.sample_rate,
            "dtype": self.settings.cache_dtype,
            "clips_per_shard": self.per_shard,
            "files": len(self.clips),
            "n": n,
            "shards": [
                {"name": shard_name(i), "n": m["n"], "arrays": m["arrays"]} for i, m in enumerate(metas)
            ],
        }
        (partial / "index.json").write_text(json.dumps(index))
