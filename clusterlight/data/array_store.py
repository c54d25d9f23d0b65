"""A checksummed store of arrays in one folder: the layout both caches (decoded waveforms, log-mel) use.

A store folder holds ``.npy`` arrays and a ``meta.json`` recording, for each array, its shape, dtype, byte
size and blake2b checksum (``"arrays"``), next to a ``"format"`` number, a clip count ``"n"`` and each
cache's own fields. It is written under a temporary name and renamed into place
(:func:`~clusterlight.data.atomic.atomic_folder`), so a crash never leaves a half-written store.

Opening a store checks it as ``verify`` says: ``"size"`` reads only ``meta.json`` and the array headers
(each array exists with its recorded byte size, shape and dtype); ``"full"`` also compares each array's
bytes with its recorded checksum. What fails is a :class:`CacheProblem` saying what is wrong;
:func:`open_or_build` then logs it, moves the folder aside in one rename and builds it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from clusterlight.data.atomic import atomic_folder, move_aside
from clusterlight.data.records import DataError

VERIFY_MODES = ("size", "full")
T = TypeVar("T")


class CacheProblem(Exception):
    """Why a cache folder cannot be used (it is then rebuilt)."""


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """blake2b (256-bit) of a file's bytes, read in chunks."""
    h = hashlib.blake2b(digest_size=32)
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def check_verify(verify: str) -> None:
    if verify not in VERIFY_MODES:
        raise DataError(f"verify_cache must be one of {VERIFY_MODES}, got {verify!r}")


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


def _record_ok(record: dict) -> bool:
    return (
        isinstance(record["shape"], list)
        and isinstance(record["dtype"], str)
        and isinstance(record["bytes"], int)
        and isinstance(record["blake2b"], str)
    )


def _load_meta_json(path: Path) -> dict:
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
    return meta


def read_meta(
    folder: Path,
    meta_format: int,
    arrays: tuple[str, ...],
    fields_ok: Callable[[dict], bool],
    older: str = "",
) -> dict:
    """``folder/meta.json`` of format ``meta_format``, with an int ``"n"``, a well-typed record for each of
    ``arrays`` and the cache's own fields (``fields_ok(meta)`` is true; a missing field may raise
    ``KeyError``); raises :class:`CacheProblem` saying what is wrong. ``older`` explains a format
    mismatch."""
    meta = _load_meta_json(folder / "meta.json")
    if meta.get("format") != meta_format:
        note = f" ({older})" if older else ""
        raise CacheProblem(f"meta.json has format {meta.get('format')!r}, expected {meta_format}{note}")
    try:
        ok = (
            isinstance(meta["n"], int)
            and fields_ok(meta)
            and all(_record_ok(meta["arrays"][name]) for name in arrays)
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


def all_finite(values: np.ndarray, chunk: int = 1 << 22) -> bool:
    return all(np.isfinite(values[i : i + chunk]).all() for i in range(0, len(values), chunk))


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


def write_store(
    folder: Path,
    arrays: Callable[[], dict[str, np.ndarray]],
    meta: Callable[[dict[str, dict]], dict],
    is_complete: Callable[[Path], bool],
) -> None:
    """Write the store atomically: the arrays ``arrays()`` gives, then ``meta.json`` holding
    ``meta(records)`` (``records``: what :func:`save_arrays` returned). A finished folder already there
    (``is_complete``) is kept."""
    with atomic_folder(folder, "meta.json", is_complete) as tmp:
        records = save_arrays(tmp, arrays())
        (tmp / "meta.json").write_text(json.dumps(meta(records)))


def opens(open_store: Callable[[Path], object]) -> Callable[[Path], bool]:
    """``is_complete`` for :func:`write_store`: whether ``open_store(folder)`` raises no
    :class:`CacheProblem`."""

    def complete(folder: Path) -> bool:
        try:
            open_store(folder)
        except CacheProblem:
            return False
        return True

    return complete


def open_or_build(
    folder: Path,
    what: str,
    open_store: Callable[[Path, str], T],
    build: Callable[[], None],
    verify: str,
    log: logging.Logger,
) -> T:
    """The store ``open_store(folder, verify)`` gives; one that fails its check is logged (naming ``what``),
    moved aside and built again by ``build()``, as is a missing one. A store unusable right after it was
    built is a :class:`DataError`."""
    seen = folder_identity(folder)
    if seen is not None:
        try:
            return open_store(folder, verify)
        except CacheProblem as e:
            log.warning("%s %s is unusable: %s; rebuilding it", what, folder, e)
            discard_folder(folder, seen)
    build()
    try:
        return open_store(folder, "size")
    except CacheProblem as e:
        raise DataError(f"{what} {folder} is unusable right after it was written: {e}") from e
