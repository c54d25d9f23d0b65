"""The clip record every source produces and every later stage consumes."""

from __future__ import annotations

from dataclasses import dataclass


class DataError(ValueError):
    """Bad input: names the file or field and what was expected."""


@dataclass(frozen=True)
class Clip:
    """One audio file with its label and optional fold/split and group (source recording)."""

    path: str
    label: str
    fold: str | None = None
    group: str | None = None
