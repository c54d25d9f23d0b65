"""Distances between embeddings and centroids: one definition, used by k-means and the cluster losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clusterlight.init_args import RecordsInitArgs


def normalize_embeddings(z: torch.Tensor) -> torch.Tensor:
    """``z`` [B, d] in float32, each row scaled to unit L2 norm: the space the clusters live in."""
    return F.normalize(z.float(), dim=1)


def squared_distances(z: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """``||z_i - c_k||^2`` for z [B, d], centroids [K, d] -> [B, K]; O(B K d), never negative."""
    return ((z * z).sum(1, keepdim=True) + (centroids * centroids).sum(1) - 2 * z @ centroids.T).clamp_min(0)


class Distance(RecordsInitArgs, nn.Module):
    """A distance from embeddings [B, d] to centroids [K, d] -> [B, K] (pluggable into cluster losses)."""

    def forward(self, z: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class SquaredEuclidean(Distance):
    """``||z - c||^2``; on unit vectors it is ``2 - 2 cos``, in [0, 4]."""

    def forward(self, z: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
        return squared_distances(z, centroids)


class CosineDistance(Distance):
    """``1 - cos(z, c)``, in [0, 2] (half the squared Euclidean distance on unit vectors)."""

    def forward(self, z: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
        return 1 - normalize_embeddings(z) @ normalize_embeddings(centroids).T
