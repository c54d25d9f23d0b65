"""Progress of a long loop: a tqdm bar on a terminal, otherwise one log line every ``every`` seconds.

Usage::

    from clusterlight.progress import progress

    for path in progress(paths, "decoding", unit="files"):
        ...

    with progress(total=n_files, desc="decoding", unit="files") as bar:
        bar.update(256)  # 256 more done

``progress(iterable)`` iterates; ``progress(total=n)`` is a counter advanced with ``update(k)`` and closed
by ``close()`` or a ``with`` block. When stderr is not a terminal (a batch job, a log file), the bar is
replaced by lines on stderr, ``[clusterlight] desc: done/total unit (pct), rate unit/s, ETA``, at most one
per ``every`` seconds (default 30, or the ``CLUSTERLIGHT_PROGRESS_EVERY`` environment variable), and a
last one at the end of a loop that printed any: a loop shorter than ``every`` stays silent. They are
printed, not logged: Python's logging drops ``INFO`` unless the application configures it, and a batch
job's log is where these lines matter.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Sized
from typing import Any, Generic, TypeVar

T = TypeVar("T")
EVERY_ENV = "CLUSTERLIGHT_PROGRESS_EVERY"


def default_every() -> float:
    """Seconds between progress lines off a terminal: ``CLUSTERLIGHT_PROGRESS_EVERY``, else 30."""
    return float(os.environ.get(EVERY_ENV, "30"))


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class LogProgress:
    """A counter that logs ``done/total``, the rate and the ETA at most once per ``every`` seconds."""

    def __init__(self, total: int | None, desc: str, unit: str, every: float) -> None:
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.n = 0
        self.start = self.last = time.monotonic()
        self.closed = False
        self.printed_at: int | None = None  # the count the last line showed

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._print(self.line(now))

    def line(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = self.n / elapsed
        if not self.total:
            return (
                f"{self.desc}: {self.n} {self.unit}, {rate:.1f} {self.unit}/s, {_duration(elapsed)} elapsed"
            )
        eta = (self.total - self.n) / rate if rate > 0 else float("inf")
        eta_text = _duration(eta) if eta != float("inf") else "?"
        return (
            f"{self.desc}: {self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f}%), "
            f"{rate:.1f} {self.unit}/s, ETA {eta_text}"
        )

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.printed_at is not None and self.printed_at != self.n:
                self._print(self.line(time.monotonic()))

    def _print(self, line: str) -> None:
        self.printed_at = self.n
        print(f"[clusterlight] {line}", file=sys.stderr, flush=True)

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Iterating(Generic[T]):
    """An iterable that advances ``counter`` by one per item and closes it at the end."""

    def __init__(self, items: Iterable[T], counter: Any) -> None:
        self.items, self.counter = items, counter

    def __iter__(self) -> Iterator[T]:
        with self.counter:
            for item in self.items:
                yield item
                self.counter.update(1)


def progress(
    iterable: Iterable[T] | None = None,
    desc: str = "",
    unit: str = "it",
    total: int | None = None,
    every: float | None = None,
) -> Any:
    """Progress over ``iterable`` (iterate it) or over ``total`` items (call ``update(k)``, then
    ``close()``): a tqdm bar when stderr is a terminal, else a line on stderr every ``every`` seconds."""
    if total is None and isinstance(iterable, Sized):
        total = len(iterable)
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        counter: Any = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
    else:
        counter = LogProgress(total, desc, unit, default_every() if every is None else every)
    return counter if iterable is None else _Iterating(iterable, counter)
