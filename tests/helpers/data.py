"""Tiny data: the synthetic dataset's counts and classes, tone and noise WAVs, fold manifests, datamodules."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

TINY_COUNTS = {
    "train": {"dog_bark": 24, "baby_cry": 24, "gunshot": 24, "background": 48},
    "val": {"dog_bark": 6, "baby_cry": 6, "gunshot": 6, "background": 12},
    "test": {"dog_bark": 6, "baby_cry": 6, "gunshot": 6, "background": 12},
}
CLASSES = ["dog_bark", "baby_cry", "gunshot", "background"]
GROUPS_PER_FOLD = {"dog_bark": 8, "car_horn": 6, "background": 16}  # groups of 1-3 clips each


def write_tone(
    path: Path, sr: int = 8000, seconds: float = 0.5, freq: float = 440.0, channels: int = 1
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t)
    sf.write(path, np.stack([x] * channels, axis=1) if channels > 1 else x, sr)
    return path


def tiny_datamodule(root: Path, cache: Path, **overrides):
    from clusterlight.data import AudioDataModule, SyntheticSource

    kwargs = dict(
        source=SyntheticSource(
            root=str(root), counts=TINY_COUNTS, sample_rate=8000, duration=1.0, snr_db=(6.0, 12.0)
        ),
        classes=CLASSES,
        sample_rate=8000,
        duration=1.0,
        batch_size=16,
        cache_dir=str(cache),
    )
    kwargs.update(overrides)
    return AudioDataModule(**kwargs)


def ragged_datamodule(root, cache, **kwargs):
    """Clips of 0.3-1.7 s of noise (shorter and longer than the 1 s clip length), two classes."""
    from clusterlight.data import AudioDataModule, FolderSource

    rng = np.random.default_rng(0)
    for k in range(24):
        path = root / ("a" if k % 3 else "b") / f"{k}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(
            path,
            rng.uniform(-0.5, 0.5, int(8000 * (0.3 + 0.06 * k))).astype(np.float32),
            8000,
            subtype="FLOAT",
        )
    return AudioDataModule(
        source=FolderSource(str(root)),
        sample_rate=8000,
        duration=1.0,
        batch_size=6,
        cache_dir=str(cache),
        **kwargs,
    )


def write_fold_manifest(root: Path, groups_per_fold: dict[str, int] = GROUPS_PER_FOLD) -> Path:
    """Tiny WAVs and ``labels.csv`` (path,label,fold,source_id) in fold1 and fold2, ``groups_per_fold[label]``
    source recordings of 1-3 clips per label and fold."""
    rows = []
    for fold in ("fold1", "fold2"):
        for label, n_groups in groups_per_fold.items():
            for g in range(n_groups):
                source = f"{fold}-{label}-{g}"
                for k in range(1 + g % 3):
                    path = f"{label}/{source}-{k}.wav"
                    write_tone(root / path, seconds=0.1, freq=200.0 + 37 * (len(rows) % 50))
                    rows.append({"path": path, "label": label, "fold": fold, "source_id": source})
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "fold", "source_id"])
        writer.writeheader()
        writer.writerows(rows)
    return root
