"""Writing a folder or a file all at once, so a crash never leaves a half-written dataset, cache or result.

The temporary folder and file come from ``tempfile``, which makes them owner-only (0700 / 0600); the
finished folder or file gets the permissions the process umask gives a plain ``mkdir`` / ``open``
(``0o777 & ~umask`` / ``0o666 & ~umask``), like every file written inside the folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:  # elsewhere: set and restore (briefly visible to other threads)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def move_aside(path: Path) -> Path | None:
    """Rename ``path`` to a hidden unique name beside it (one atomic step) and return the new name;
    ``None`` when ``path`` no longer exists (another process moved or replaced it first)."""
    aside = Path(tempfile.mkdtemp(prefix=f".old-{path.name}-", dir=path.parent))
    try:
        os.replace(path, aside / path.name)
    except FileNotFoundError:
        shutil.rmtree(aside, ignore_errors=True)
        return None
    return aside


@contextmanager
def atomic_folder(
    dest: Path, marker: str, is_complete: Callable[[Path], bool] | None = None
) -> Iterator[Path]:
    """Yield a temporary folder beside ``dest``; when the block succeeds, rename it to ``dest``.

    ``marker`` is a file the finished folder always has. ``is_complete(folder)`` (default: the marker
    exists) says whether an existing ``dest`` is finished: a finished one was written by a concurrent
    writer (another DDP rank) and is kept; an unfinished one is moved aside in one rename (so ``dest``
    never holds a half-deleted folder), replaced, then deleted.
    """
    complete = is_complete or (lambda p: (p / marker).is_file())
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest.parent))
    os.chmod(tmp, 0o777 & ~current_umask())
    aside = None
    try:
        yield tmp
        if dest.exists() and complete(dest):
            return
        if dest.exists():
            aside = move_aside(dest)
        try:
            os.replace(tmp, dest)
        except OSError:
            if not (dest.exists() and complete(dest)):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


@contextmanager
def atomic_file(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; when the block succeeds, rename it to ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
