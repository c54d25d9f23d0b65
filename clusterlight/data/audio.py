"""Decoding, resampling and fixing clips to a length; the decoded-waveform cache.

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

A cache that fails its check is logged (a warning naming the folder and what was wrong), moved
aside in one rename, and rebuilt atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from clusterlight.data.atomic import atomic_folder, move_aside
from clusterlight.data.records import Clip, DataError

log = logging.getLogger(__name__)
CACHE_VERSION = 2  # part of the cache key: bump when the decoded values change
META_FORMAT = 3  # meta.json layout: an older layout is rebuilt in place
VERIFY_MODES = ("size", "full")
ARRAYS = ("waves.npy", "offsets.npy")
LIST_MAX = 10  # paths named in one message


def _listing(paths: list[str], n: int = LIST_MAX) -> str:
    more = f" (+{len(paths) - n} more)" if len(paths) > n else ""
    return ", ".join(paths[:n]) + more


def file_digest(path: str | Path, chunk: int = 1 << 22) -> str:
    """blake2b (256-bit) of a file's bytes, read in chunks."""
    h = hashlib.blake2b(digest_size=32)
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def _wav_declared_frames(path: Path) -> int | None:
    """Frames a RIFF/WAVE header declares (data chunk size / block align); ``None`` when not a WAV
    or the size is unknown (0 or 0xFFFFFFFF, as streaming writers leave it). libsndfile silently
    shortens a cut data chunk to what the file holds, so this is read from the header itself."""
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = 0
        for _ in range(64):
            h = f.read(8)
            if len(h) < 8:
                return None
            cid, size = h[:4], int.from_bytes(h[4:8], "little")
            if cid == b"fmt ":
                fmt = f.read(size)
                block_align = int.from_bytes(fmt[12:14], "little") if len(fmt) >= 14 else 0
                f.seek(size & 1, 1)
            elif cid == b"data":
                if block_align <= 0 or size in (0, 0xFFFFFFFF):
                    return None
                return size // block_align
            else:
                f.seek(size + (size & 1), 1)
    return None


def decode(path: str, sample_rate: int) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sample_rate``; raise :class:`DataError` naming the file.

    A file that holds fewer frames than its header declares (a cut download or copy) is an error
    naming both counts: libsndfile would return the frames present without a word.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"audio file {path} does not exist")
    if p.stat().st_size == 0:
        raise DataError(f"audio file {path} is empty (0 bytes)")
    try:
        with sf.SoundFile(path) as f:
            sr, fmt, declared = f.samplerate, f.format, f.frames
            wave = f.read(dtype="float32", always_2d=True)
        header = _wav_declared_frames(p)
    except Exception as e:  # soundfile raises several types for corrupt input
        raise DataError(f"audio file {path} could not be decoded: {e}") from e
    if wave.shape[0] == 0:
        raise DataError(f"audio file {path} has no samples")
    if fmt == "MPEG":  # an MP3's frame count is an estimate
        declared = 0
    declared = max(declared, header or 0)
    if wave.shape[0] < declared:
        raise DataError(
            f"audio file {path} is truncated: its header declares {declared} frames but only "
            f"{wave.shape[0]} could be read"
        )
    mono = wave.mean(axis=1)
    if not np.isfinite(mono).all():
        raise DataError(f"audio file {path} contains NaN or infinite samples")
    if sr != sample_rate:
        mono = AF.resample(torch.from_numpy(mono), sr, sample_rate).numpy()
        if not np.isfinite(mono).all():
            raise DataError(f"audio file {path} gives NaN or infinite samples after resampling")
    return mono


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


class CacheProblem(Exception):
    """Why a cache folder cannot be used (it is then rebuilt)."""


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
    if verify not in VERIFY_MODES:
        raise DataError(f"verify_cache must be one of {VERIFY_MODES}, got {verify!r}")
    folder = Path(cache_dir).expanduser() / f"waves-{cache_key(clips, sample_rate, on_bad_file)}"
    store = None
    seen = folder_identity(folder)
    if seen is not None:
        try:
            store = open_cache(folder, clips, sample_rate, verify)
        except CacheProblem as e:
            log.warning("waveform cache %s is unusable: %s; rebuilding it", folder, e)
            discard_folder(folder, seen)
    if store is None:
        _build_cache(clips, sample_rate, folder, on_bad_file)
        try:
            store = open_cache(folder, clips, sample_rate, "size")
        except CacheProblem as e:
            raise DataError(f"waveform cache {folder} is unusable right after it was written: {e}") from e
    if store.skipped:
        log.warning(
            "skipped %d unreadable audio file(s): %s", len(store.skipped), ", ".join(store.skipped[:20])
        )
    min_len = min_clip_seconds * sample_rate
    store.short = [c.path for c, n in zip(store.clips, store.lengths()) if n < min_len]
    if store.silent or store.short:
        parts = []
        if store.silent:
            parts.append(f"{len(store.silent)} clip(s) are all zeros: {_listing(store.silent)}")
        if store.short:
            parts.append(
                f"{len(store.short)} clip(s) are shorter than min_clip_seconds={min_clip_seconds:g}: "
                f"{_listing(store.short)}"
            )
        log.warning("suspicious audio (kept): %s", "; ".join(parts))
    return store


def folder_identity(folder: Path) -> tuple[int, int, int] | None:
    try:
        st = folder.stat()
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, st.st_ctime_ns


def discard_folder(folder: Path, seen: tuple[int, int, int]) -> None:
    """Move the broken cache folder (as identified by ``seen``) aside in one rename, then delete it;
    a folder another process (a DDP rank) has rebuilt there meanwhile is left in place."""
    if folder_identity(folder) != seen:
        return
    aside = move_aside(folder)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _read_meta(folder: Path) -> dict:
    path = folder / "meta.json"
    if not path.is_file():
        raise CacheProblem("meta.json is missing (a partial folder)")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise CacheProblem(f"meta.json cannot be read ({e})") from e
    if not text.strip():
        raise CacheProblem("meta.json is empty")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise CacheProblem(f"meta.json is not valid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise CacheProblem("meta.json does not hold an object")
    if meta.get("format") != META_FORMAT:
        raise CacheProblem(
            f"meta.json has format {meta.get('format')!r}, expected {META_FORMAT} (written by an older "
            "version, without checksums)"
        )
    try:
        ok = (
            isinstance(meta["sample_rate"], int)
            and isinstance(meta["n"], int)
            and all(isinstance(s, str) for s in meta["skipped"])
            and all(isinstance(s, str) for s in meta["silent"])
            and all(
                isinstance(r["shape"], list)
                and isinstance(r["dtype"], str)
                and isinstance(r["bytes"], int)
                and isinstance(r["blake2b"], str)
                for r in (meta["arrays"][name] for name in ARRAYS)
            )
            and all(isinstance(f["path"], str) for f in meta["files"])
        )
    except (KeyError, TypeError) as e:
        raise CacheProblem(f"meta.json lacks or mistypes field {e}") from e
    if not ok:
        raise CacheProblem("meta.json has a field of the wrong type")
    return meta


def load_checked_array(folder: Path, name: str, record: dict, mmap: bool) -> np.ndarray:
    path = folder / name
    try:
        size = path.stat().st_size
    except OSError as e:
        raise CacheProblem(f"{name} is missing ({e.strerror})") from e
    if size != record["bytes"]:
        raise CacheProblem(
            f"{name} has {size} bytes, meta.json records {record['bytes']} (truncated or overwritten)"
        )
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise CacheProblem(f"{name} cannot be read as an array ({e})") from e
    if list(arr.shape) != record["shape"] or str(arr.dtype) != record["dtype"]:
        raise CacheProblem(
            f"{name} holds {arr.dtype}{list(arr.shape)}, meta.json records {record['dtype']}{record['shape']}"
        )
    return arr


def check_offsets(offsets: np.ndarray, n_clips: int, total: int, min_gap: int = 1) -> None:
    """Raise :class:`CacheProblem` unless ``offsets`` (of a ragged array of ``total`` rows) holds
    ``n_clips + 1`` offsets from 0 to ``total``, at least ``min_gap`` apart."""
    if (
        len(offsets) != n_clips + 1
        or offsets[0] != 0
        or offsets[-1] != total
        or (np.diff(offsets) < min_gap).any()
    ):
        raise CacheProblem(
            f"offsets.npy is inconsistent (expected {n_clips + 1} offsets from 0 to {total}, at least "
            f"{min_gap} apart)"
        )


def check_checksums(folder: Path, meta: dict, names: tuple[str, ...]) -> None:
    """Raise :class:`CacheProblem` naming the first array whose bytes differ from its recorded checksum."""
    for name in names:
        if file_digest(folder / name) != meta["arrays"][name]["blake2b"]:
            raise CacheProblem(f"{name} does not match its checksum (overwritten or corrupted)")


def save_arrays(folder: Path, arrays: dict[str, np.ndarray]) -> dict[str, dict]:
    """Save each array as ``folder/name`` and return the records ``meta.json`` keeps of them (shape, dtype,
    byte size, blake2b)."""
    records = {}
    for name, arr in arrays.items():
        np.save(folder / name, arr)
        records[name] = {
            "shape": list(arr.shape),
            "dtype": str(arr.dtype),
            "bytes": (folder / name).stat().st_size,
            "blake2b": file_digest(folder / name),
        }
    return records


def all_finite(waves: np.ndarray, chunk: int = 1 << 22) -> bool:
    return all(np.isfinite(waves[i : i + chunk]).all() for i in range(0, len(waves), chunk))


def open_cache(folder: Path, clips: list[Clip], sample_rate: int, verify: str = "size") -> WaveformStore:
    """The store in ``folder``, checked as ``verify`` says; raises :class:`CacheProblem` saying what is
    wrong."""
    meta = _read_meta(folder)
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


def _complete(folder: Path, clips: list[Clip], sample_rate: int) -> bool:
    try:
        open_cache(folder, clips, sample_rate, "size")
    except CacheProblem:
        return False
    return True


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
    with atomic_folder(folder, "meta.json", lambda p: _complete(p, clips, sample_rate)) as tmp:
        all_waves = np.concatenate(waves).astype(np.float32, copy=False)
        arrays = save_arrays(tmp, {"waves.npy": all_waves, "offsets.npy": offsets})
        meta = {
            "format": META_FORMAT,
            "sample_rate": sample_rate,
            "n": len(waves),
            "skipped": skipped,
            "silent": silent,
            "arrays": arrays,
            "files": files,
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
