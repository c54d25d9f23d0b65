"""Writing a folder all at once, so a crash never leaves a half-written dataset or cache."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_folder(dest: Path, marker: str) -> Iterator[Path]:
    """Yield a temporary folder beside ``dest``; when the block succeeds, rename it to ``dest``.

    ``marker`` is a file the finished folder always has: a ``dest`` without it is stale and
    replaced, and when a concurrent writer (another DDP rank) finished first, its copy is kept.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest.parent))
    try:
        yield tmp
        if dest.exists() and not (dest / marker).is_file():
            shutil.rmtree(dest)
        try:
            os.replace(tmp, dest)
        except OSError:
            if not (dest / marker).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


@contextmanager
def atomic_file(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; when the block succeeds, rename it to ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
