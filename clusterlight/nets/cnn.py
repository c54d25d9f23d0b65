"""A VGG-style convolutional embedder."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from clusterlight.nets.base import Backbone


def _block(c_in: int, c_out: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(
        *layers, nn.MaxPool2d(2, ceil_mode=True)
    )  # ceil_mode: never shrinks a short input to nothing


class CNNEmbedder(Backbone, name="cnn"):
    """log-mel [B, n_mels, T] -> embedding [B, embed_dim]: VGG blocks (``convs_per_block`` 3x3 convs + 2x2
    pool), mean over frequency, mean+max over time, linear.

    ``channels_last`` stores the activations as NHWC, which cuDNN (under mixed precision) and
    oneDNN often run faster; how much depends on the network and the device
    (``benchmarks/results/method_research.md`` has a CPU timing).
    """

    def __init__(
        self,
        n_mels: int = 64,
        channels: Sequence[int] = (32, 64, 128, 128),
        embed_dim: int = 128,
        dropout: float = 0.2,
        convs_per_block: int = 2,
        channels_last: bool = False,
    ) -> None:
        super().__init__(n_mels, embed_dim)
        self.channels_last = channels_last
        self.norm = nn.BatchNorm2d(1)
        widths = [1, *channels]
        self.blocks = nn.Sequential(*(_block(a, b, convs_per_block) for a, b in zip(widths[:-1], widths[1:])))
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * widths[-1], embed_dim))
        if channels_last:
            # Module.to takes memory_format at run time; torch's typed overloads leave it out
            self.blocks.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x.unsqueeze(1))
        if self.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        h = self.blocks(h).mean(2)
        return self.proj(torch.cat([h.mean(2), h.amax(2)], dim=1))
