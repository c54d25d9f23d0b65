"""Built-in synthetic rare-sound-event dataset: no download, deterministic by seed.

Four classes in the spirit of the target domain. ``background`` is made of several
distinct sub-types so that the large class has internal structure for clustering to find;
events are mixed into a random background at a random onset and SNR.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from clusterlight.data.atomic import atomic_folder
from clusterlight.data.records import Clip
from clusterlight.data.sources import ClipSource, ManifestSource
from clusterlight.labels import BACKGROUND

CLASSES = ("dog_bark", "baby_cry", "gunshot", BACKGROUND)
BACKGROUND_TYPES = ("hum", "traffic", "rain", "babble", "music")
DEFAULT_SNR_DB = (-16.0, -4.0)
DEFAULT_COUNTS = {
    "train": {"dog_bark": 180, "baby_cry": 90, "gunshot": 90, BACKGROUND: 480},
    "val": {"dog_bark": 30, "baby_cry": 30, "gunshot": 30, BACKGROUND: 120},
    "test": {"dog_bark": 80, "baby_cry": 80, "gunshot": 80, BACKGROUND: 320},
}


def _colored_noise(rng: np.random.Generator, n: int, sr: int, shape) -> np.ndarray:
    """Gaussian noise whose magnitude spectrum is ``shape(freqs_hz)``, unit RMS."""
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    x = np.fft.irfft(spec * shape(freqs), n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _harmonics(phase: np.ndarray, weights) -> np.ndarray:
    return sum(w * np.sin((h + 1) * phase) for h, w in enumerate(weights))


def _slow_envelope(rng: np.random.Generator, n: int, sr: int, rate_hz: float, depth: float) -> np.ndarray:
    t = np.arange(n) / sr
    return 1.0 + depth * np.sin(2 * np.pi * rate_hz * t + rng.uniform(0, 2 * np.pi))


def background(rng: np.random.Generator, kind: str, n: int, sr: int) -> np.ndarray:
    """One background recording of sub-type ``kind``, unit RMS."""
    t = np.arange(n) / sr
    if kind == "hum":
        f0 = rng.choice([50.0, 60.0]) * rng.uniform(0.98, 1.02)
        x = _harmonics(2 * np.pi * f0 * t, rng.uniform(0.2, 1.0, 6)) + 0.3 * _colored_noise(
            rng, n, sr, lambda f: 1 / np.maximum(f, 20)
        )
    elif kind == "traffic":
        x = _colored_noise(
            rng, n, sr, lambda f: 1 / np.maximum(f, 30) ** rng.uniform(0.8, 1.4)
        ) * _slow_envelope(rng, n, sr, rng.uniform(0.1, 0.6), 0.6)
    elif kind == "rain":
        x = _colored_noise(rng, n, sr, lambda f: (f > rng.uniform(800, 2500)).astype(float) + 0.05)
        drops = rng.random(n) < rng.uniform(2e-4, 1e-3)
        x = x + 4 * np.convolve(drops * rng.standard_normal(n), np.exp(-np.arange(64) / 8.0), mode="same")
    elif kind == "babble":
        x = np.zeros(n)
        for _ in range(rng.integers(2, 5)):
            f0 = rng.uniform(90, 240) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
            syllables = np.clip(np.sin(2 * np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 6.3)), 0, None) ** 2
            x += syllables * _harmonics(2 * np.pi * np.cumsum(f0) / sr, rng.uniform(0.1, 1.0, 5))
    elif kind == "music":
        x = np.zeros(n)
        note = int(sr * rng.uniform(0.15, 0.5))
        for start in range(0, n, note):
            f = 220.0 * 2 ** (rng.integers(-12, 13) / 12)
            seg = t[: min(note, n - start)]
            x[start : start + len(seg)] += np.exp(-seg * rng.uniform(2, 8)) * _harmonics(
                2 * np.pi * f * seg, rng.uniform(0.1, 1.0, 5)
            )
    else:
        raise ValueError(f"unknown background type {kind!r}; expected one of {BACKGROUND_TYPES}")
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def event(rng: np.random.Generator, label: str, sr: int) -> np.ndarray:
    """One foreground event of class ``label`` (variable length), unit peak."""
    if label == "dog_bark":
        parts = []
        for _ in range(rng.integers(1, 4)):
            dur = rng.uniform(0.08, 0.25)
            t = np.arange(int(dur * sr)) / sr
            f0 = rng.uniform(300, 700) * (1 - 0.4 * t / dur)
            env = (1 - np.exp(-t / 0.005)) * np.exp(-t / (dur / 3))
            voiced = _harmonics(2 * np.pi * np.cumsum(f0) / sr, rng.uniform(0.3, 1.0, 6))
            parts += [
                env * (voiced + 0.5 * rng.standard_normal(len(t))),
                np.zeros(int(rng.uniform(0.05, 0.25) * sr)),
            ]
        x = np.concatenate(parts)
    elif label == "baby_cry":
        parts = []
        for _ in range(rng.integers(1, 3)):
            dur = rng.uniform(0.5, 1.2)
            t = np.arange(int(dur * sr)) / sr
            wander = np.cumsum(rng.standard_normal(len(t))) / np.sqrt(sr) * 40
            f0 = rng.uniform(350, 550) + 60 * np.sin(np.pi * t / dur) + wander
            env = np.sin(np.pi * t / dur) ** 0.5
            parts += [
                env * _harmonics(2 * np.pi * np.cumsum(f0) / sr, rng.uniform(0.2, 1.0, 8)),
                np.zeros(int(0.1 * sr)),
            ]
        x = np.concatenate(parts)
    elif label == "gunshot":
        t = np.arange(int(rng.uniform(0.4, 0.9) * sr)) / sr
        tail = _colored_noise(rng, len(t), sr, lambda f: 1 / np.maximum(f, 100) ** 0.5)
        x = (
            np.exp(-t / rng.uniform(0.004, 0.015)) * rng.standard_normal(len(t))
            + 0.3 * np.exp(-t / rng.uniform(0.1, 0.3)) * tail
        )
    else:
        raise ValueError(f"unknown event class {label!r}; expected one of {CLASSES[:-1]}")
    return x / (np.max(np.abs(x)) + 1e-12)


def synth_clip(
    rng: np.random.Generator, label: str, sr: int, duration: float, snr_db: tuple[float, float]
) -> np.ndarray:
    """A clip of ``label``: a random background, plus the event at a random onset and SNR."""
    n = int(round(sr * duration))
    x = background(rng, BACKGROUND_TYPES[rng.integers(len(BACKGROUND_TYPES))], n, sr)
    if label != BACKGROUND:
        ev = event(rng, label, sr)[:n]
        onset = rng.integers(0, n - len(ev) + 1)
        active = np.abs(ev) > 0.05
        ev_rms = np.sqrt(np.mean(ev[active] ** 2)) if active.any() else 1.0
        gain = 10 ** (rng.uniform(*snr_db) / 20) / ev_rms
        x[onset : onset + len(ev)] += gain * ev
    return (0.5 * x / (np.max(np.abs(x)) + 1e-12)).astype(np.float32)


def _clip_rng(seed: int, split: str, label: str, i: int) -> np.random.Generator:
    key = int(hashlib.sha1(f"{split}/{label}/{i}".encode()).hexdigest()[:8], 16)
    return np.random.default_rng([seed, key])


def _write_clip(job: tuple) -> None:
    path, seed, split, label, i, sample_rate, duration, snr_db = job
    sf.write(
        path,
        synth_clip(_clip_rng(seed, split, label, i), label, sample_rate, duration, snr_db),
        sample_rate,
        subtype="PCM_16",
    )


def generate(
    out_dir: str | Path,
    counts: dict[str, dict[str, int]] | None = None,
    seed: int = 0,
    sample_rate: int = 16000,
    duration: float = 2.0,
    snr_db: tuple[float, float] = DEFAULT_SNR_DB,
    workers: int | None = None,
) -> Path:
    """Write the dataset as WAV files plus ``manifest.csv`` (``path,label,split,group``) into ``out_dir``.

    Written into a temporary folder first and moved into place, so an interrupted run
    never leaves a half-written dataset behind. Returns the manifest path.
    """
    counts = counts or DEFAULT_COUNTS
    out_dir = Path(out_dir)
    with atomic_folder(out_dir, "manifest.csv") as tmp:
        rows, jobs = [], []
        for split, per_class in counts.items():
            for label, n in per_class.items():
                if label not in CLASSES:
                    raise ValueError(f"synthetic counts name class {label!r}; expected one of {CLASSES}")
                (tmp / split / label).mkdir(parents=True, exist_ok=True)
                for i in range(n):
                    rel = f"{split}/{label}/{label}_{i:05d}.wav"
                    jobs.append((tmp / rel, seed, split, label, i, sample_rate, duration, tuple(snr_db)))
                    rows.append(
                        {"path": rel, "label": label, "split": split, "group": f"{split}-{label}-{i}"}
                    )
        workers = workers or min(os.cpu_count() or 1, 8)
        if workers > 1 and len(jobs) > 200:
            with ProcessPoolExecutor(workers) as pool:
                list(pool.map(_write_clip, jobs, chunksize=32))
        else:
            for job in jobs:
                _write_clip(job)
        with (tmp / "manifest.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["path", "label", "split", "group"])
            writer.writeheader()
            writer.writerows(rows)
    return out_dir / "manifest.csv"


class SyntheticSource(ClipSource):
    """The built-in dataset, generated on first use into ``root`` (default: a folder under ``.cache``).

    The folder name carries a hash of the generation settings, so changing them makes a new dataset
    and an existing one is reused as is.
    """

    def __init__(
        self,
        root: str = ".cache/synth",
        counts: dict[str, dict[str, int]] | None = None,
        seed: int = 0,
        sample_rate: int = 16000,
        duration: float = 2.0,
        snr_db: tuple[float, float] = DEFAULT_SNR_DB,
    ) -> None:
        self.settings: dict[str, Any] = dict(  # generate's keyword arguments, JSON-hashed below
            counts=counts or DEFAULT_COUNTS,
            seed=seed,
            sample_rate=sample_rate,
            duration=duration,
            snr_db=list(snr_db),
        )
        digest = hashlib.sha1(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:10]
        self.root = Path(root).expanduser() / f"synth-{digest}"

    def clips(self) -> list[Clip]:
        if not (self.root / "manifest.csv").is_file():
            generate(self.root, **self.settings)
        return ManifestSource(str(self.root), fold_column="split").clips()
