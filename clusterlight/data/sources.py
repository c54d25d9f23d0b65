"""Dataset layouts read into lists of :class:`Clip`. Only metadata is read here, never audio."""

from __future__ import annotations

import csv
from pathlib import Path

from clusterlight.data.records import Clip, DataError

AUDIO_SUFFIXES = (".wav", ".ogg", ".flac", ".mp3", ".aiff", ".aif")


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
    ``root``."""

    def __init__(
        self,
        root: str,
        manifest: str = "manifest.csv",
        path_column: str = "path",
        label_column: str = "label",
        fold_column: str | None = "fold",
        group_column: str | None = "group",
    ) -> None:
        self.root = Path(root).expanduser()
        self.manifest = self.root / manifest
        self.path_column, self.label_column = path_column, label_column
        self.fold_column, self.group_column = fold_column, group_column

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
        return out


class UrbanSound8KSource(ClipSource):
    """The original UrbanSound8K layout: ``metadata/UrbanSound8K.csv`` and ``audio/foldN/``."""

    def __init__(self, root: str) -> None:
        self.root = Path(root).expanduser()

    def clips(self) -> list[Clip]:
        meta = self.root / "metadata" / "UrbanSound8K.csv"
        rows = _read_csv(meta, ["slice_file_name", "fsID", "fold", "class"])
        return [
            Clip(
                path=str(self.root / "audio" / f"fold{r['fold']}" / r["slice_file_name"]),
                label=r["class"],
                fold=r["fold"],
                group=r["fsID"],
            )
            for r in rows
        ]


class ESC50Source(ClipSource):
    """The ESC-50 layout: ``meta/esc50.csv`` and ``audio/``."""

    def __init__(self, root: str) -> None:
        self.root = Path(root).expanduser()

    def clips(self) -> list[Clip]:
        meta = self.root / "meta" / "esc50.csv"
        rows = _read_csv(meta, ["filename", "fold", "category", "src_file"])
        return [
            Clip(
                path=str(self.root / "audio" / r["filename"]),
                label=r["category"],
                fold=r["fold"],
                group=r["src_file"],
            )
            for r in rows
        ]


class FolderSource(ClipSource):
    """One sub-folder per class; every audio file below it is a clip of that class."""

    def __init__(self, root: str) -> None:
        self.root = Path(root).expanduser()

    def clips(self) -> list[Clip]:
        if not self.root.is_dir():
            raise DataError(f"folder dataset root {self.root} is not a directory")
        out = []
        for class_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            files = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
            out.extend(Clip(path=str(p), label=class_dir.name) for p in files)
        if not out:
            raise DataError(
                f"folder dataset {self.root} has no audio files ({', '.join(AUDIO_SUFFIXES)}) "
                "in class sub-folders"
            )
        return out
