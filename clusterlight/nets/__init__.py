"""Backbones behind a small registry: ``create_backbone("lstm", embed_dim=64)``."""

from __future__ import annotations

from torch import nn

from clusterlight.nets.cnn import CNNEmbedder
from clusterlight.nets.lstm import LSTMEmbedder

BACKBONES: dict[str, type[nn.Module]] = {"lstm": LSTMEmbedder, "cnn": CNNEmbedder}


def create_backbone(name: str, **kwargs) -> nn.Module:
    if name not in BACKBONES:
        raise KeyError(f"unknown backbone {name!r}; available: {sorted(BACKBONES)}")
    return BACKBONES[name](**kwargs)


__all__ = ["BACKBONES", "CNNEmbedder", "LSTMEmbedder", "create_backbone"]
