"""Building a sharded cache: shards published one by one in ``<folder>.partial/``, resumed after a crash.

A sharded cache folder holds shard folders ``shard-00000``, ``shard-00001``, ... (each a checksummed array
store, :mod:`clusterlight.data.array_store`) and ``index.json``, written last. Shard ``s`` holds the items
at positions ``[s * per_shard, (s + 1) * per_shard)`` of the cache's item list, so its content depends on
the position only, never on timing or the number of workers.

The build runs in ``<folder>.partial/`` beside the cache, under an exclusive ``fcntl.flock`` on
``<folder>.partial/.lock`` (a second process waits, then finds the cache finished). Each shard is written
under a temporary name and renamed into ``.partial/`` when whole, so a build killed at any moment (SIGKILL
included) leaves only whole shards; run again, it keeps them and writes the missing ones. When all are
there, ``index.json`` is written and ``.partial/`` is renamed to the cache folder in one step: readers never
see a half-built cache.

Shards are written by ``workers`` processes (``spawn`` start method) or, with one worker or one shard to
write, in this process. The environment variable ``CLUSTERLIGHT_CACHE_KILL_AFTER_SHARDS=k`` makes the
building process SIGKILL itself after ``k`` shards are published: a hook for tests and benchmarks of
resuming.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from clusterlight.data.atomic import move_aside
from clusterlight.progress import progress

log = logging.getLogger(__name__)
INDEX = "index.json"
LOCK = ".lock"
KILL_AFTER_ENV = "CLUSTERLIGHT_CACHE_KILL_AFTER_SHARDS"


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def shard_ranges(n_items: int, per_shard: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each shard over ``n_items`` items, ``per_shard`` at most in each."""
    return [(s, min(s + per_shard, n_items)) for s in range(0, n_items, per_shard)]


def partial_folder(folder: Path) -> Path:
    return folder.with_name(folder.name + ".partial")


@contextmanager
def build_lock(partial: Path, folder: Path, is_complete: Callable[[Path], bool]) -> Iterator[bool]:
    """Hold the lock of ``partial`` and yield ``True``; yield ``False`` when ``folder`` is (or, after the
    wait, was made) complete by another process: then there is nothing to build."""
    while True:
        if folder.exists() and is_complete(folder):
            yield False
            return
        partial.mkdir(parents=True, exist_ok=True)
        fd = os.open(partial / LOCK, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                ours = os.fstat(fd).st_ino == os.stat(partial / LOCK).st_ino
            except FileNotFoundError:  # the holder published the cache: that lock file moved with it
                ours = False
            if ours:
                yield True
                return
        finally:
            os.close(fd)


def link_shards(source: Path, partial: Path, names: Sequence[str]) -> None:
    """Hard-link (or, where links fail, copy) the whole shards ``names`` of ``source`` into ``partial``."""
    for name in names:
        if (partial / name).exists() or not (source / name).is_dir():
            continue
        tmp = partial / f".tmp-link-{name}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source / name, tmp, copy_function=_link_or_copy)
        os.replace(tmp, partial / name)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def exit_with_parent(parent: int) -> None:
    """In a worker: exit as soon as the process that started it is gone (a SIGKILLed build leaves no
    workers behind)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _kill_after() -> int:
    try:
        return int(os.environ.get(KILL_AFTER_ENV, "0"))
    except ValueError:
        return 0


def _published(done: int, kill_after: int) -> None:
    if kill_after and done >= kill_after:
        os.kill(os.getpid(), signal.SIGKILL)


def write_shards(
    todo: Sequence[int],
    write_shard: Callable[..., object],
    shard_args: Callable[[int], tuple],
    after_shard: Callable[[int], None],
    workers: int,
) -> None:
    """Run ``write_shard(*shard_args(i))`` for each shard ``i`` of ``todo`` (in ``workers`` spawned
    processes, or here; ``write_shard`` module-level, its arguments small), then ``after_shard(i)`` here,
    in ``todo`` order (so the first failing shard in order raises)."""
    kill_after = _kill_after()
    if workers <= 1 or len(todo) <= 1:
        for k, i in enumerate(todo):
            write_shard(*shard_args(i))
            after_shard(i)
            _published(k + 1, kill_after)
        return
    pool = ProcessPoolExecutor(
        min(workers, len(todo)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    )
    futures: list[Future] = []
    try:
        futures = [pool.submit(write_shard, *shard_args(i)) for i in todo]
        for k, (i, future) in enumerate(zip(todo, futures)):
            future.result()
            after_shard(i)
            _published(k + 1, kill_after)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def build_sharded(
    folder: Path,
    n_shards: int,
    shard_ok: Callable[[int], bool],
    write_shard: Callable[..., object],
    shard_args: Callable[[int], tuple],
    after_shard: Callable[[int], None],
    write_index: Callable[[Path], None],
    is_complete: Callable[[Path], bool],
    workers: int,
    items_per_shard: Callable[[int], int],
    what: str,
    reuse: tuple[Path, Sequence[str]] | None = None,
) -> None:
    """Build the sharded cache ``folder`` (see the module docstring). ``write_shard(*shard_args(i))``
    publishes shard ``i`` in ``partial_folder(folder)``; ``shard_ok(i)`` says whether the one there is whole;
    ``write_index(partial)`` writes ``index.json`` once all are. ``reuse = (old folder, names)``: shards
    of a damaged cache to keep (linked, not rebuilt)."""
    partial = partial_folder(folder)
    with build_lock(partial, folder, is_complete) as must_build:
        if not must_build:
            return
        for stale in partial.glob(".tmp-*"):  # left by a killed build: we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        if reuse is not None:
            link_shards(reuse[0], partial, reuse[1])
        todo = [i for i in range(n_shards) if not shard_ok(i)]
        if len(todo) < n_shards:
            log.info("%s: %d of %d shards already built in %s", what, n_shards - len(todo), n_shards, partial)
        counter = progress(total=sum(items_per_shard(i) for i in todo), desc=what, unit="files")
        with counter:

            def finished(i: int) -> None:
                after_shard(i)
                counter.update(items_per_shard(i))

            write_shards(todo, write_shard, shard_args, finished, workers)
        write_index(partial)
        publish(partial, folder, is_complete)


def publish(partial: Path, folder: Path, is_complete: Callable[[Path], bool]) -> None:
    """Rename the finished ``partial`` to ``folder`` (an unfinished ``folder`` there is moved aside first)."""
    aside = None
    if folder.exists():
        if is_complete(folder):
            shutil.rmtree(partial, ignore_errors=True)
            return
        aside = move_aside(folder)
    try:
        os.replace(partial, folder)
        (folder / LOCK).unlink(missing_ok=True)
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
