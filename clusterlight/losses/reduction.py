"""Reducers: how per-clip cluster-loss values [B] become one number (pluggable, as in
pytorch-metric-learning)."""

from __future__ import annotations

import torch
from torch import nn

from clusterlight.init_args import RecordsInitArgs


class Reducer(RecordsInitArgs, nn.Module):
    """``(values [B], clusters [B], num_clusters) -> scalar``."""

    def forward(self, values: torch.Tensor, clusters: torch.Tensor, num_clusters: int) -> torch.Tensor:
        raise NotImplementedError


class MeanOverClusters(Reducer):
    """Average within each cluster, then over the clusters present: every cluster weighs the same,
    which balances classes without oversampling (no host sync)."""

    def forward(self, values: torch.Tensor, clusters: torch.Tensor, num_clusters: int) -> torch.Tensor:
        sums = torch.zeros(num_clusters, device=values.device, dtype=values.dtype).index_add_(
            0, clusters, values
        )
        counts = torch.bincount(clusters, minlength=num_clusters).to(values.dtype)
        present = (counts > 0).to(values.dtype)
        return (sums / counts.clamp_min(1)).sum() / present.sum().clamp_min(1)


class MeanOverClips(Reducer):
    """Plain mean over the batch: large clusters weigh in proportion to their size."""

    def forward(self, values: torch.Tensor, clusters: torch.Tensor, num_clusters: int) -> torch.Tensor:
        return values.mean()
