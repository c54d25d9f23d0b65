"""Distances from embeddings to centroids."""

from __future__ import annotations

import torch


def squared_distances(z: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """||z_i - c_k||^2 for z [B, d], centroids [K, d] -> [B, K]; O(B K d)."""
    return ((z * z).sum(1, keepdim=True) + (centroids * centroids).sum(1) - 2 * z @ centroids.T).clamp_min(0)
