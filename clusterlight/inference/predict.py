"""Files to class probabilities: the same decoding, resampling and padding as training.

A file up to one clip long is scored once (padded by the training rule); a longer file is
scored over clip-length windows every ``hop_s`` seconds (the last window ends at the file's
end) and the window probabilities are averaged: the file's probability of a class is the
mean over its windows.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from clusterlight.data.decode import decode
from clusterlight.data.records import DataError
from clusterlight.data.sources import AUDIO_SUFFIXES
from clusterlight.inference.windows import windows


def audio_inputs(inputs: Iterable[str | Path], extensions: Iterable[str] = AUDIO_SUFFIXES) -> list[Path]:
    """Audio files from files, folders (recursive, by extension) and manifests (a CSV with a ``path``
    or ``file`` column, relative to the manifest's folder)."""
    suffixes = {e.lower() for e in extensions}
    out: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            out += sorted(p for p in item.rglob("*") if p.suffix.lower() in suffixes)
        elif item.suffix.lower() == ".csv":
            with item.open(newline="") as f:
                rows = list(csv.DictReader(f))
            column = next((c for c in ("path", "file", "filename") if rows and c in rows[0]), None)
            if column is None:
                raise DataError(f"manifest {item} needs a 'path' (or 'file') column")
            out += [item.parent / r[column] for r in rows]
        elif item.exists():
            out.append(item)
        else:
            raise DataError(f"input {item} is neither an audio file, a folder nor a manifest")
    return out


class Predictor:
    """Class probabilities (and embeddings) of audio files with a loaded model (:func:`clusterlight.load`)."""

    def __init__(self, model, hop_s: float | None = None, batch_size: int = 64) -> None:
        audio = model.card["audio"]
        self.model, self.class_names = model, list(model.card["class_names"])
        self.sample_rate, self.padding = int(audio["sample_rate"]), audio["padding"] or "loop"
        self.n = int(round(self.sample_rate * audio["duration"]))
        self.hop = int(round(self.sample_rate * (hop_s or audio["duration"] / 2)))
        self.batch_size = batch_size

    @torch.no_grad()
    def window_outputs(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-window class probabilities [w, classes] and embeddings [w, d] of a waveform."""
        device = next(self.model.parameters()).device
        probs, embeddings = [], []
        all_windows = windows(wave, self.n, self.hop, self.padding)
        for start in range(0, len(all_windows), self.batch_size):
            chunk = all_windows[start : start + self.batch_size]
            z = self.model.features(torch.from_numpy(np.ascontiguousarray(chunk)).to(device))
            scores = self.model.scores_from_features(z)
            probs.append(torch.softmax(scores.float(), dim=1).cpu().numpy())
            embeddings.append(torch.nn.functional.normalize(z.float(), dim=1).cpu().numpy())
        return np.concatenate(probs), np.concatenate(embeddings)

    def predict(self, paths: Iterable[str | Path]) -> Iterator[dict]:
        """One row per file: path, predicted class, per-class probability, window count, or the error."""
        for path in paths:
            try:
                wave = decode(str(path), self.sample_rate)
            except DataError as e:
                yield {"path": str(path), "error": str(e)}
                continue
            probs, embeddings = self.window_outputs(wave)
            mean = probs.mean(0)
            row = {
                "path": str(path),
                "predicted": self.class_names[int(mean.argmax())],
                "windows": len(probs),
            }
            row.update({f"prob_{c}": float(p) for c, p in zip(self.class_names, mean)})
            row["embedding"] = embeddings.mean(0)
            yield row


def predict_files(model, paths: Iterable[str | Path], hop_s: float | None = None) -> list[dict]:
    """``[{path, predicted, prob_<class>..., windows}]`` for each readable file (errors as ``error``)."""
    return [{k: v for k, v in r.items() if k != "embedding"} for r in Predictor(model, hop_s).predict(paths)]


def write_predictions(
    rows: Iterable[dict], class_names: list[str], out_csv: Path, embeddings_npy: Path | None
):
    """Write rows as they come (CSV and JSON Lines, flushed per file: an interruption keeps what was
    written); returns (written, skipped) counts."""
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    fields = ["path", "predicted", *(f"prob_{c}" for c in class_names), "windows"]
    written, skipped, kept = 0, [], []
    with out_csv.open("w", newline="") as f, out_csv.with_suffix(".jsonl").open("w") as j:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            if "error" in row:
                skipped.append(row)
                continue
            kept.append(row.pop("embedding"))
            writer.writerow(row)
            j.write(json.dumps(row) + "\n")
            f.flush()
            j.flush()
            written += 1
    if embeddings_npy is not None:
        np.save(embeddings_npy, np.stack(kept) if kept else np.zeros((0, 0), dtype=np.float32))
    return written, skipped
