"""Opening a sharded cache (:mod:`clusterlight.data.shard_build`): ``index.json``, then every shard checked.

``verify="size"`` reads ``index.json``, each shard's ``meta.json`` and array headers; ``verify="full"`` also
reads every shard's bytes (checksums, finite values, the audio files' checksums for the waveform cache),
shard by shard in ``workers`` processes. A problem in ``index.json`` means the whole cache is rebuilt; a
problem in some shards (:class:`DamagedShards`) means those shards alone are rebuilt, each named in a
warning, and the others are kept.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

from clusterlight.data.array_store import CacheProblem, folder_identity, read_meta
from clusterlight.data.atomic import move_aside
from clusterlight.data.records import DataError
from clusterlight.data.shard_build import INDEX, shard_name
from clusterlight.progress import progress

T = TypeVar("T")


class DamagedShards(CacheProblem):
    """Some shards of a cache are unusable: ``shards`` maps each one's name to what is wrong."""

    def __init__(self, shards: dict[str, str]) -> None:
        self.shards = shards
        super().__init__("; ".join(f"{name}: {why}" for name, why in shards.items()))


def read_index(folder: Path, index_format: int, fields_ok: Callable[[dict], bool]) -> dict:
    """``folder/index.json`` of ``index_format`` with a well-typed ``"shards"`` list (each a ``name`` and
    an ``arrays`` record) and the cache's own fields; raises :class:`CacheProblem` saying what is wrong."""
    path = folder / INDEX
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise CacheProblem(f"{INDEX} is missing (a partial folder)") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CacheProblem(f"{INDEX} cannot be read ({e})") from e
    if not isinstance(index, dict) or index.get("format") != index_format:
        found = index.get("format") if isinstance(index, dict) else None
        raise CacheProblem(f"{INDEX} has format {found!r}, expected {index_format}")
    try:
        ok = all(isinstance(s["name"], str) and isinstance(s["arrays"], dict) for s in index["shards"])
        ok = ok and fields_ok(index)
    except (KeyError, TypeError) as e:
        raise CacheProblem(f"{INDEX} lacks or mistypes field {e}") from e
    if not ok:
        raise CacheProblem(f"{INDEX} has a field of the wrong type")
    return index


def read_shard_meta(
    folder: Path, record: dict, meta_format: int, arrays: tuple[str, ...], fields_ok: Callable[[dict], bool]
) -> dict:
    """The shard's ``meta.json`` (:func:`~clusterlight.data.array_store.read_meta`), whose array records
    must be those ``index.json`` holds for it."""
    meta = read_meta(folder / record["name"], meta_format, arrays, fields_ok)
    if meta["arrays"] != record["arrays"]:
        raise CacheProblem("its meta.json records other arrays than index.json")
    return meta


def open_indexed_shards(index: dict, count: int, open_one: Callable[[dict], T]) -> tuple[list[str], list[T]]:
    """The names of the ``count`` shards ``index.json`` must list, in order, and each opened by
    ``open_one(its index record)`` (:func:`open_shards`)."""
    names = [shard_name(i) for i in range(count)]
    if [s["name"] for s in index["shards"]] != names:
        raise CacheProblem(f"index.json lists other shards than the {len(names)} expected")
    records = index["shards"]
    return names, open_shards(names, lambda name: open_one(records[int(name[6:])]))


def open_shards(names: Sequence[str], open_one: Callable[[str], T]) -> list[T]:
    """``open_one(name)`` for every shard; the shards raising :class:`CacheProblem` are gathered into one
    :class:`DamagedShards`."""
    opened, damaged = [], {}
    for name in names:
        try:
            opened.append(open_one(name))
        except CacheProblem as e:
            damaged[name] = str(e)
    if damaged:
        raise DamagedShards(damaged)
    return opened


def check_shards_fully(
    names: Sequence[str], check: Callable[..., str | None], args: Sequence[tuple], workers: int, what: str
) -> None:
    """Run ``check(*args[k])`` (``None`` or what is wrong) for every shard ``names[k]``, in ``workers``
    spawned processes when there are several shards; raise :class:`DamagedShards` naming each failing one.
    """
    if workers > 1 and len(names) > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(names)), mp_context=context) as pool:
            futures = [pool.submit(check, *a) for a in args]
            found = [f.result() for f in progress(futures, f"verifying {what}", "shards")]
    else:
        found = [check(*a) for a in progress(args, f"verifying {what}", "shards")]
    damaged = {name: why for name, why in zip(names, found) if why is not None}
    if damaged:
        raise DamagedShards(damaged)


def open_or_build_sharded(
    folder: Path,
    what: str,
    open_store: Callable[[Path, str], T],
    build: Callable[[tuple[Path, Sequence[str]] | None], None],
    verify: str,
    log: logging.Logger,
) -> T:
    """The store ``open_store(folder, verify)`` gives. A missing one is built (``build(None)``); one with
    damaged shards has them named in warnings and rebuilt alone (``build((old folder, damaged))``); any
    other problem is logged and the whole cache rebuilt. Unusable right after building: :class:`DataError`.
    """
    seen = folder_identity(folder)
    if seen is not None:
        try:
            return open_store(folder, verify)
        except DamagedShards as e:
            for name, why in e.shards.items():
                log.warning("%s %s: %s is unusable: %s; rebuilding that shard alone", what, folder, name, why)
            damaged = sorted(e.shards)
            _rebuild_beside(folder, seen, lambda old: build((old, damaged)))
        except CacheProblem as e:
            log.warning("%s %s is unusable: %s; rebuilding it", what, folder, e)
            _rebuild_beside(folder, seen, lambda old: build(None))
    else:
        build(None)
    try:
        return open_store(folder, "size")
    except CacheProblem as e:
        raise DataError(f"{what} {folder} is unusable right after it was written: {e}") from e


def _rebuild_beside(folder: Path, seen: tuple[int, int, int], build: Callable[[Path], None]) -> None:
    """Move the broken ``folder`` aside (unless another process replaced it meanwhile), ``build(old)`` with
    ``old`` its moved copy, then delete that copy."""
    aside = move_aside(folder) if folder_identity(folder) == seen else None
    try:
        build(aside / folder.name if aside is not None else folder)
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
