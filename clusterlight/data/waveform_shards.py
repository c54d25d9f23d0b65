"""One shard of the waveform cache: its clips decoded, stored in ``cache_dtype``, and checked when opened.

A shard folder is a checksummed array store (:mod:`clusterlight.data.array_store`): ``waves.npy`` (the kept
clips' samples, one after another, in the cache dtype) and ``offsets.npy`` (int64, one per kept clip plus
one), and ``meta.json`` with the shard's files (path, blake2b of the bytes decoded), the files skipped
(``on_bad_file: skip``) with why, the silent clips, and the clipped samples per clip
(:mod:`clusterlight.data.sample_codec`). The functions here are module-level so that decoding workers
(``spawn``) can run them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clusterlight.data import decode as decoding
from clusterlight.data.array_store import (
    CacheProblem,
    all_finite,
    check_checksums,
    check_offsets,
    file_digest,
    load_checked_array,
    opens,
    read_meta,
    write_store,
)
from clusterlight.data.records import DataError
from clusterlight.data.sample_codec import encode_samples

SHARD_FORMAT = 1
ARRAYS = ("waves.npy", "offsets.npy")
LIST_MAX = 10  # paths named in one message


def listing(paths: list[str], n: int = LIST_MAX) -> str:
    more = f" (+{len(paths) - n} more)" if len(paths) > n else ""
    return ", ".join(paths[:n]) + more


@dataclass(frozen=True)
class ShardSettings:
    """What every waveform shard of one cache is built with."""

    sample_rate: int
    on_bad_file: str
    cache_dtype: str


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Resample on one thread: the same arithmetic in this process and in every worker."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _decode_all(paths: list[str], settings: ShardSettings) -> tuple[list[np.ndarray], dict]:
    waves, files, skipped, reasons, silent = [], [], [], [], []
    for path in paths:
        try:
            digest = file_digest(path)  # before decoding: the bytes the cache was made from
        except OSError:
            digest = None
        files.append({"path": path, "blake2b": digest})
        try:
            wave = decoding.decode(path, settings.sample_rate)
        except DataError as e:
            if settings.on_bad_file == "error":
                raise
            skipped.append(path)
            reasons.append(str(e))
            continue
        waves.append(wave)
        if not wave.any():
            silent.append(path)
    return waves, {"files": files, "skipped": skipped, "skip_reasons": reasons, "silent": silent}


def write_shard(folder: str, paths: list[str], settings: ShardSettings) -> None:
    """Decode ``paths`` and publish them as the shard ``folder`` (written whole, then renamed)."""
    with one_torch_thread():
        waves, fields = _decode_all(paths, settings)
    skipped = set(fields["skipped"])
    kept = [p for p in paths if p not in skipped]
    stored, clipped = [], {}
    for path, wave in zip(kept, waves):
        values, n_clipped = encode_samples(wave, settings.cache_dtype)
        stored.append(values)
        if n_clipped:
            clipped[path] = n_clipped
    del waves
    offsets = np.concatenate([[0], np.cumsum([len(w) for w in stored])]).astype(np.int64)
    empty = np.zeros(0, dtype=encode_samples(np.zeros(0, np.float32), settings.cache_dtype)[0].dtype)
    write_store(
        Path(folder),
        lambda: {"waves.npy": np.concatenate(stored) if stored else empty, "offsets.npy": offsets},
        lambda arrays: {
            "format": SHARD_FORMAT,
            "n": len(stored),
            "sample_rate": settings.sample_rate,
            "dtype": settings.cache_dtype,
            "clipped": clipped,
            "arrays": arrays,
            **fields,
        },
        opens(lambda p: open_shard(p, paths, settings, "size")),
    )


def _fields_ok(meta: dict) -> bool:
    return (
        isinstance(meta["sample_rate"], int)
        and isinstance(meta["dtype"], str)
        and all(isinstance(s, str) for s in meta["skipped"] + meta["silent"] + meta["skip_reasons"])
        and all(isinstance(f["path"], str) for f in meta["files"])
        and all(isinstance(n, int) for n in meta["clipped"].values())
    )


@dataclass
class OpenShard:
    """A shard's stored samples (memory-mapped), offsets and ``meta.json``."""

    waves: np.ndarray
    offsets: np.ndarray
    meta: dict


def open_shard(folder: Path, paths: list[str], settings: ShardSettings, verify: str = "size") -> OpenShard:
    """The shard in ``folder`` made from ``paths``, checked as ``verify`` says; raises
    :class:`CacheProblem` saying what is wrong."""
    meta = read_meta(folder, SHARD_FORMAT, ARRAYS, _fields_ok)
    if meta["sample_rate"] != settings.sample_rate or meta["dtype"] != settings.cache_dtype:
        raise CacheProblem(
            f"meta.json records sample rate {meta['sample_rate']} and dtype {meta['dtype']}, expected "
            f"{settings.sample_rate} and {settings.cache_dtype}"
        )
    if [f["path"] for f in meta["files"]] != paths:
        raise CacheProblem("meta.json lists other audio files than the data set")
    n_kept = len(paths) - len(set(meta["skipped"]))
    if meta["n"] != n_kept:
        raise CacheProblem(f"meta.json records {meta['n']} clips, the data set keeps {n_kept}")
    waves = load_checked_array(folder, "waves.npy", meta["arrays"]["waves.npy"], mmap=True)
    offsets = load_checked_array(folder, "offsets.npy", meta["arrays"]["offsets.npy"], mmap=False)
    if waves.ndim != 1 or str(waves.dtype) != settings.cache_dtype or offsets.ndim != 1:
        raise CacheProblem(f"waves.npy must be 1-D {settings.cache_dtype} and offsets.npy 1-D int64")
    if offsets.dtype != np.int64:
        raise CacheProblem("offsets.npy must be 1-D int64")
    check_offsets(offsets, n_kept, len(waves))
    if verify == "full":
        why = full_problem(folder, meta, waves)
        if why is not None:
            raise CacheProblem(why)
    return OpenShard(waves, offsets, meta)


def full_problem(folder: Path, meta: dict, waves: np.ndarray) -> str | None:
    """What ``verify: full`` finds wrong with a shard (checksums, finite values, changed audio), or None."""
    try:
        check_checksums(folder, meta, ARRAYS)
    except CacheProblem as e:
        return str(e)
    if waves.dtype.kind == "f" and not all_finite(waves):
        return "waves.npy holds NaN or infinite values"
    changed = []
    for f in meta["files"]:
        try:
            digest = file_digest(f["path"])
        except OSError:
            digest = None
        if digest != f.get("blake2b"):
            changed.append(f["path"])
    if changed:
        return (
            f"{len(changed)} audio file(s) changed since the cache was written (their size and "
            f"modification time did not): {listing(changed)}"
        )
    return None


def shard_problem(folder: str, paths: list[str], settings: ShardSettings) -> str | None:
    """``None`` when the shard passes ``verify: full``, else what is wrong (run by verifying workers)."""
    try:
        open_shard(Path(folder), paths, settings, "full")
    except CacheProblem as e:
        return str(e)
    return None
