"""Dataset layouts read into lists of :class:`Clip`. Only metadata is read here, never audio."""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path

from clusterlight.data.records import Clip, DataError

AUDIO_SUFFIXES = (".wav", ".ogg", ".flac", ".mp3", ".aiff", ".aif")
LIST_MAX = 10  # entries named in one message


def _more(n: int) -> str:
    return f"; {n - LIST_MAX} more not shown" if n > LIST_MAX else ""


def check_inside_root(clips: list[Clip], root: Path, where: Path | str) -> None:
    """Raise :class:`DataError` listing the clips whose path lies outside ``root`` (``../x.wav``,
    an absolute path elsewhere). Compared after normalising ``..`` and ``.`` (not following symlinks,
    so a link inside the root to files elsewhere stays allowed)."""
    base = os.path.normpath(os.path.abspath(root))
    outside = [
        c.path for c in clips if os.path.commonpath([base, os.path.normpath(os.path.abspath(c.path))]) != base
    ]
    if outside:
        raise DataError(
            f"{where}: {len(outside)} path(s) lie outside the dataset root {base}: "
            f"{', '.join(outside[:LIST_MAX])}{_more(len(outside))}; set allow_outside_root: true if "
            "that is intended"
        )


def check_duplicates(clips: list[Clip]) -> None:
    """Raise :class:`DataError` listing files that appear more than once (compared as resolved
    paths: the same file under two spellings or symlinks is one file), with their labels and folds."""
    rows: dict[str, list[Clip]] = defaultdict(list)
    for c in clips:
        rows[str(Path(c.path).resolve())].append(c)
    dups = [(path, cs) for path, cs in rows.items() if len(cs) > 1]
    if dups:
        shown = [
            f"{path} x{len(cs)} (labels {sorted({c.label for c in cs})}, folds "
            f"{sorted({str(c.fold) for c in cs})})"
            for path, cs in dups[:LIST_MAX]
        ]
        raise DataError(
            f"{len(dups)} audio file(s) are listed more than once (each file may appear once, with "
            f"one label, in one split): {'; '.join(shown)}{_more(len(dups))}"
        )


class ClipSource:
    """Base class: a source lists the clips of a dataset."""

    def clips(self) -> list[Clip]:
        raise NotImplementedError


def _read_csv(path: Path, required: list[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataError(f"manifest {path} does not exist")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in required if c not in columns]
        if missing:
            raise DataError(
                f"manifest {path} lacks column(s) {missing}; expected at least {required}, found {columns}"
            )
        rows = list(reader)
    if not rows:
        raise DataError(f"manifest {path} has a header but no rows")
    return rows


def _optional(row: dict[str, str], column: str | None) -> str | None:
    if column is None or row.get(column) in (None, ""):
        return None
    return row[column]


class ManifestSource(ClipSource):
    """A CSV with ``path,label`` and optional fold (or split) and group columns; paths relative to
    ``root``. A path outside ``root`` (``../x.wav``, an absolute path elsewhere) is an error unless
    ``allow_outside_root``."""

    def __init__(
        self,
        root: str,
        manifest: str = "manifest.csv",
        path_column: str = "path",
        label_column: str = "label",
        fold_column: str | None = "fold",
        group_column: str | None = "group",
        allow_outside_root: bool = False,
    ) -> None:
        self.root = Path(root).expanduser()
        self.manifest = self.root / manifest
        self.path_column, self.label_column = path_column, label_column
        self.fold_column, self.group_column = fold_column, group_column
        self.allow_outside_root = allow_outside_root

    def clips(self) -> list[Clip]:
        rows = _read_csv(self.manifest, [self.path_column, self.label_column])
        fold_column = self.fold_column
        if fold_column is not None and fold_column not in rows[0] and "split" in rows[0]:
            fold_column = "split"
        out = []
        for line, row in enumerate(rows, start=2):
            if not row[self.path_column] or not row[self.label_column]:
                raise DataError(
                    f"{self.manifest}:{line}: empty '{self.path_column}' or '{self.label_column}'"
                )
            out.append(
                Clip(
                    path=str(self.root / row[self.path_column]),
                    label=row[self.label_column],
                    fold=_optional(row, fold_column),
                    group=_optional(row, self.group_column),
                )
            )
        if not self.allow_outside_root:
            check_inside_root(out, self.root, self.manifest)
        return out


class UrbanSound8KSource(ClipSource):
    """The original UrbanSound8K layout: ``metadata/UrbanSound8K.csv`` and ``audio/foldN/``."""

    def __init__(self, root: str, allow_outside_root: bool = False) -> None:
        self.root = Path(root).expanduser()
        self.allow_outside_root = allow_outside_root

    def clips(self) -> list[Clip]:
        meta = self.root / "metadata" / "UrbanSound8K.csv"
        rows = _read_csv(meta, ["slice_file_name", "fsID", "fold", "class"])
        out = [
            Clip(
                path=str(self.root / "audio" / f"fold{r['fold']}" / r["slice_file_name"]),
                label=r["class"],
                fold=r["fold"],
                group=r["fsID"],
            )
            for r in rows
        ]
        if not self.allow_outside_root:
            check_inside_root(out, self.root, meta)
        return out


class ESC50Source(ClipSource):
    """The ESC-50 layout: ``meta/esc50.csv`` and ``audio/``."""

    def __init__(self, root: str, allow_outside_root: bool = False) -> None:
        self.root = Path(root).expanduser()
        self.allow_outside_root = allow_outside_root

    def clips(self) -> list[Clip]:
        meta = self.root / "meta" / "esc50.csv"
        rows = _read_csv(meta, ["filename", "fold", "category", "src_file"])
        out = [
            Clip(
                path=str(self.root / "audio" / r["filename"]),
                label=r["category"],
                fold=r["fold"],
                group=r["src_file"],
            )
            for r in rows
        ]
        if not self.allow_outside_root:
            check_inside_root(out, self.root, meta)
        return out


class FolderSource(ClipSource):
    """One sub-folder per class; every audio file below it is a clip of that class."""

    def __init__(self, root: str) -> None:
        self.root = Path(root).expanduser()

    def clips(self) -> list[Clip]:
        if not self.root.is_dir():
            raise DataError(f"folder dataset root {self.root} is not a directory")
        out: list[Clip] = []
        for class_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            files = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
            out.extend(Clip(path=str(p), label=class_dir.name) for p in files)
        if not out:
            raise DataError(
                f"folder dataset {self.root} has no audio files ({', '.join(AUDIO_SUFFIXES)}) "
                "in class sub-folders"
            )
        return out
