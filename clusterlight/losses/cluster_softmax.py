"""A softmax-over-centroids variant of the cluster loss (magnet-loss style)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clusterlight.losses.distances import squared_distances
from clusterlight.losses.reduction import mean_over_clusters


class ClusterSoftmaxLoss(nn.Module):
    """Cross-entropy of ``softmax(-d / temperature)`` over centroids with the own cluster as target.

    With ``exclude_siblings`` the other clusters of the clip's own class are left out of the
    denominator, so a large class is not pushed apart internally. Reduced per cluster.
    """

    def __init__(self, temperature: float = 0.1, exclude_siblings: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature, self.exclude_siblings = temperature, exclude_siblings

    def forward(
        self, z: torch.Tensor, clusters: torch.Tensor, centroids: torch.Tensor, cluster_classes: torch.Tensor
    ) -> torch.Tensor:
        logits = -squared_distances(z.float(), centroids.float()) / self.temperature
        if self.exclude_siblings:
            sibling = cluster_classes[None, :] == cluster_classes[clusters][:, None]
            sibling.scatter_(1, clusters[:, None], False)
            logits = logits.masked_fill(sibling, float("-inf"))
        loss = F.cross_entropy(logits, clusters, reduction="none")
        return mean_over_clusters(loss, clusters, len(centroids))
