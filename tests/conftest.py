"""Shared fixtures: tiny datasets written into temp dirs (tests never read ../shared)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("WANDB_MODE", "offline")
ROOT = Path(__file__).resolve().parents[1]
TINY_COUNTS = {
    "train": {"dog_bark": 24, "baby_cry": 24, "gunshot": 24, "background": 48},
    "val": {"dog_bark": 6, "baby_cry": 6, "gunshot": 6, "background": 12},
    "test": {"dog_bark": 6, "baby_cry": 6, "gunshot": 6, "background": 12},
}
CLASSES = ["dog_bark", "baby_cry", "gunshot", "background"]


def write_tone(
    path: Path, sr: int = 8000, seconds: float = 0.5, freq: float = 440.0, channels: int = 1
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t)
    sf.write(path, np.stack([x] * channels, axis=1) if channels > 1 else x, sr)
    return path


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A tiny synthetic dataset (8 kHz, 1 s clips, easy SNR), generated once per session."""
    return tmp_path_factory.mktemp("synth")


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


def tiny_parts(embed_dim: int = 16):
    from clusterlight.features import LogMel
    from clusterlight.nets import LSTMEmbedder

    frontend = LogMel(sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=32, time_pool=4)
    return frontend, LSTMEmbedder(n_mels=32, hidden=32, layers=1, embed_dim=embed_dim, dropout=0.0)


def tiny_trainer(tmp_path: Path, **kwargs):
    import lightning as L

    defaults = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        num_sanity_val_steps=0,
    )
    defaults.update(kwargs)
    return L.Trainer(**defaults)
