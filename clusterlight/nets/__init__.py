"""Backbones: ``create_backbone("lstm", embed_dim=64)``; each subclass of :class:`Backbone` registers
itself."""

from clusterlight.nets.base import Backbone, create_backbone
from clusterlight.nets.cnn import CNNEmbedder
from clusterlight.nets.lstm import LSTMEmbedder

__all__ = ["Backbone", "CNNEmbedder", "LSTMEmbedder", "create_backbone"]
