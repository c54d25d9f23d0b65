"""A small, fast recurrent embedder."""

from __future__ import annotations

import torch
from torch import nn

from clusterlight.nets.base import Backbone


class LSTMEmbedder(Backbone, name="lstm"):
    """log-mel [B, n_mels, T] -> embedding [B, embed_dim]: input norm, LSTM, mean+max pooling over time,
    linear."""

    def __init__(
        self,
        n_mels: int = 64,
        hidden: int = 128,
        layers: int = 2,
        embed_dim: int = 64,
        dropout: float = 0.1,
        bidirectional: bool = False,
    ) -> None:
        super().__init__(n_mels, embed_dim)
        self.norm = nn.BatchNorm1d(n_mels)
        self.lstm = nn.LSTM(
            n_mels,
            hidden,
            layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
            bidirectional=bidirectional,
        )
        width = hidden * (2 if bidirectional else 1)
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * width, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.norm(x).transpose(1, 2))
        return self.proj(torch.cat([h.mean(1), h.amax(1)], dim=1))
