"""The decoded-waveform cache: every clip decoded (:mod:`clusterlight.data.decode`) once.

Audio is decoded once into a ragged float32 array on disk (``waves.npy`` plus
``offsets.npy``), memory-mapped by every later run. The cache key covers the file list
(paths, sizes, modification times) and the sample rate, and the folder is written under
a temporary name and renamed into place, so a crash never leaves a half-written cache.

``meta.json`` records, for each array, its shape, dtype, byte size and blake2b checksum, and for
each audio file its byte size and blake2b checksum, all computed when the cache is written.
Opening a cache checks it (``verify``):

- ``"size"`` (default; reads only ``meta.json``, the array headers and ``offsets.npy``): meta.json
  is valid JSON of this format, both arrays exist with the recorded byte size, shape and dtype, the
  offsets are consistent (start at 0, increase, end at the length of ``waves.npy``, one per kept clip
  plus one) and list the same files. It does not read the waveforms, so it does not catch a
  ``waves.npy`` overwritten with garbage of the same size, nor NaN/infinite values in it, nor an
  audio file changed without changing its size or modification time.
- ``"full"``: all of ``"size"``, plus the checksums of both arrays, every waveform value finite,
  and every audio file re-read and compared with its recorded checksum (which catches audio
  rewritten with the same size and modification time). It reads the whole cache and every
  audio file once.

The folder is a checksummed array store (:mod:`clusterlight.data.array_store`, like the log-mel cache).
A cache that fails its check is logged (a warning naming the folder and what was wrong), moved
aside in one rename, and rebuilt atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clusterlight.data.array_store import (
    CacheProblem,
    all_finite,
    check_checksums,
    check_offsets,
    check_verify,
    file_digest,
    load_checked_array,
    open_or_build,
    opens,
    read_meta,
    write_store,
)
from clusterlight.data.decode import decode
from clusterlight.data.records import Clip, DataError

log = logging.getLogger(__name__)
CACHE_VERSION = 2  # part of the cache key: bump when the decoded values change
META_FORMAT = 3  # meta.json layout: an older layout is rebuilt in place
ARRAYS = ("waves.npy", "offsets.npy")
LIST_MAX = 10  # paths named in one message


def _listing(paths: list[str], n: int = LIST_MAX) -> str:
    more = f" (+{len(paths) - n} more)" if len(paths) > n else ""
    return ", ".join(paths[:n]) + more


@dataclass
class WaveformStore:
    """Ragged decoded waveforms: clip ``i`` is ``waves[offsets[i]:offsets[i+1]]``.

    ``silent`` and ``short`` name the kept clips that are all zeros or shorter than the minimum
    length the store was opened with (warned about, not dropped). ``digest`` names the cached
    content (the recorded checksums of both arrays): caches derived from it (the log-mel feature
    cache) carry it in their key.
    """

    waves: np.ndarray
    offsets: np.ndarray
    clips: list[Clip]
    skipped: list[str]
    silent: list[str] = field(default_factory=list)
    short: list[str] = field(default_factory=list)
    digest: str = ""

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
    clips: list[Clip],
    sample_rate: int,
    cache_dir: str | Path,
    on_bad_file: str = "error",
    verify: str = "size",
    min_clip_seconds: float = 0.05,
) -> WaveformStore:
    """Decode ``clips`` once into the cache (or reuse it) and return the memory-mapped store.

    ``on_bad_file="skip"`` drops files that fail to decode, logging how many and which;
    the store's ``clips`` then lists only the kept ones. ``verify`` is how an existing cache is
    checked before use (``"size"`` or ``"full"``, see the module docstring); one that fails is
    rebuilt, with a warning. Clips that are all zeros or shorter than ``min_clip_seconds`` are
    counted and named in one warning (they are kept).
    """
    if on_bad_file not in ("error", "skip"):
        raise DataError(f"on_bad_file must be 'error' or 'skip', got {on_bad_file!r}")
    check_verify(verify)
    folder = Path(cache_dir).expanduser() / f"waves-{cache_key(clips, sample_rate, on_bad_file)}"
    store = open_or_build(
        folder,
        "waveform cache",
        lambda f, v: open_cache(f, clips, sample_rate, v),
        lambda: _build_cache(clips, sample_rate, folder, on_bad_file),
        verify,
        log,
    )
    if store.skipped:
        log.warning(
            "skipped %d unreadable audio file(s): %s", len(store.skipped), ", ".join(store.skipped[:20])
        )
    min_len = min_clip_seconds * sample_rate
    store.short = [c.path for c, n in zip(store.clips, store.lengths()) if n < min_len]
    _warn_suspicious(store, min_clip_seconds)
    return store


def _warn_suspicious(store: WaveformStore, min_clip_seconds: float) -> None:
    """One warning counting and naming the kept clips that are all zeros or too short."""
    if not (store.silent or store.short):
        return
    parts = []
    if store.silent:
        parts.append(f"{len(store.silent)} clip(s) are all zeros: {_listing(store.silent)}")
    if store.short:
        parts.append(
            f"{len(store.short)} clip(s) are shorter than min_clip_seconds={min_clip_seconds:g}: "
            f"{_listing(store.short)}"
        )
    log.warning("suspicious audio (kept): %s", "; ".join(parts))


def _fields_ok(meta: dict) -> bool:
    return (
        isinstance(meta["sample_rate"], int)
        and all(isinstance(s, str) for s in meta["skipped"])
        and all(isinstance(s, str) for s in meta["silent"])
        and all(isinstance(f["path"], str) for f in meta["files"])
    )


def open_cache(folder: Path, clips: list[Clip], sample_rate: int, verify: str = "size") -> WaveformStore:
    """The store in ``folder``, checked as ``verify`` says; raises :class:`CacheProblem` saying what is
    wrong."""
    meta = read_meta(
        folder, META_FORMAT, ARRAYS, _fields_ok, "written by an older version, without checksums"
    )
    if meta["sample_rate"] != sample_rate:
        raise CacheProblem(f"meta.json records sample rate {meta['sample_rate']}, expected {sample_rate}")
    if [f["path"] for f in meta["files"]] != [c.path for c in clips]:
        raise CacheProblem("meta.json lists other audio files than the data set")
    skipped = set(meta["skipped"])
    kept = [c for c in clips if c.path not in skipped]
    if meta["n"] != len(kept):
        raise CacheProblem(f"meta.json records {meta['n']} clips, the data set keeps {len(kept)}")
    waves = load_checked_array(folder, "waves.npy", meta["arrays"]["waves.npy"], mmap=True)
    offsets = load_checked_array(folder, "offsets.npy", meta["arrays"]["offsets.npy"], mmap=False)
    if waves.ndim != 1 or waves.dtype != np.float32 or offsets.ndim != 1 or offsets.dtype != np.int64:
        raise CacheProblem("waves.npy must be 1-D float32 and offsets.npy 1-D int64")
    check_offsets(offsets, len(kept), len(waves))
    if verify == "full":
        check_checksums(folder, meta, ARRAYS)
        if not all_finite(waves):
            raise CacheProblem("waves.npy holds NaN or infinite values")
        changed = []
        for f in meta["files"]:
            try:
                digest = file_digest(f["path"])
            except OSError:
                digest = None
            if digest != f.get("blake2b"):
                changed.append(f["path"])
        if changed:
            raise CacheProblem(
                f"{len(changed)} audio file(s) changed since the cache was written (their size and "
                f"modification time did not): {_listing(changed)}"
            )
    return WaveformStore(
        waves=waves,
        offsets=offsets,
        clips=kept,
        skipped=sorted(skipped),
        silent=[s for s in meta["silent"] if s not in skipped],
        digest="-".join(meta["arrays"][name]["blake2b"] for name in ARRAYS),
    )


def _build_cache(clips: list[Clip], sample_rate: int, folder: Path, on_bad_file: str) -> None:
    if on_bad_file == "error":
        missing = [c.path for c in clips if not Path(c.path).is_file()]
        if missing:
            more = f" ({len(missing)} files missing: {_listing(missing)})" if len(missing) > 1 else ""
            raise DataError(f"audio file {missing[0]} does not exist{more}")
    log.info("decoding %d audio files into %s", len(clips), folder)
    waves, skipped, silent, files = [], [], [], []
    for c in clips:
        try:
            digest = file_digest(c.path)  # before decoding: the bytes the cache was made from
        except OSError:
            digest = None
        files.append({"path": c.path, "blake2b": digest})
        try:
            wave = decode(c.path, sample_rate)
        except DataError as e:
            if on_bad_file == "error":
                raise
            log.warning("skipping %s", e)
            skipped.append(c.path)
            continue
        waves.append(wave)
        if not wave.any():
            silent.append(c.path)
    if not waves:
        raise DataError("no audio file could be decoded: every clip was skipped")
    offsets = np.concatenate([[0], np.cumsum([len(w) for w in waves])]).astype(np.int64)
    write_store(
        folder,
        lambda: {"waves.npy": np.concatenate(waves).astype(np.float32, copy=False), "offsets.npy": offsets},
        lambda arrays: {
            "format": META_FORMAT,
            "sample_rate": sample_rate,
            "n": len(waves),
            "skipped": skipped,
            "silent": silent,
            "arrays": arrays,
            "files": files,
        },
        opens(lambda p: open_cache(p, clips, sample_rate, "size")),
    )
