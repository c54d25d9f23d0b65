"""Tiny models and trainers: a small log-mel front end and LSTM, a batch-norm-free backbone, a quiet CPU
trainer."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from clusterlight.nets import Backbone


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


class MeanPoolEmbedder(Backbone):
    """A backbone without batch norm or dropout: the same output in train and eval mode."""

    def __init__(self) -> None:
        super().__init__(n_mels=32, embed_dim=16)
        self.proj = nn.Linear(32, 16)

    def forward(self, x):
        return self.proj(x.mean(2))
