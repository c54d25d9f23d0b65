"""Per-cluster reduction: every cluster present in the batch weighs the same."""

from __future__ import annotations

import torch


def mean_over_clusters(values: torch.Tensor, clusters: torch.Tensor, num_clusters: int) -> torch.Tensor:
    """Average ``values`` [B] within each cluster, then over the clusters present (no host sync)."""
    sums = torch.zeros(num_clusters, device=values.device, dtype=values.dtype).index_add_(0, clusters, values)
    counts = torch.bincount(clusters, minlength=num_clusters).to(values.dtype)
    present = (counts > 0).to(values.dtype)
    return (sums / counts.clamp_min(1)).sum() / present.sum().clamp_min(1)
