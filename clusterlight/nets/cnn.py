"""A VGG-style convolutional embedder."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, ceil_mode=True),  # never shrinks a short input to nothing
    )


class CNNEmbedder(nn.Module):
    """log-mel [B, n_mels, T] -> embedding [B, embed_dim]: VGG blocks (two 3x3 convs + 2x2 pool), mean over
    frequency, mean+max over time, linear."""

    def __init__(self, n_mels: int = 64, channels: Sequence[int] = (32, 64, 128, 128), embed_dim: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.norm = nn.BatchNorm2d(1)
        widths = [1, *channels]
        self.blocks = nn.Sequential(*(_block(a, b) for a, b in zip(widths[:-1], widths[1:])))
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * widths[-1], embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.norm(x.unsqueeze(1))).mean(2)
        return self.proj(torch.cat([h.mean(2), h.amax(2)], dim=1))
