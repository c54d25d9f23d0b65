"""A softmax-over-centroids variant of the cluster loss (magnet-loss style)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clusterlight.distances import Distance
from clusterlight.losses.cluster_loss import ClusterLoss, sibling_mask
from clusterlight.losses.reduction import Reducer


class ClusterSoftmaxLoss(ClusterLoss):
    """Cross-entropy of ``softmax(-d / temperature)`` over centroids with the own cluster as target.

    With ``exclude_siblings`` the other clusters of the clip's own class are left out of the
    denominator, so a large class is not pushed apart internally. Reduced per cluster.
    """

    def __init__(
        self,
        temperature: float = 0.1,
        exclude_siblings: bool = True,
        distance: Distance | None = None,
        reducer: Reducer | None = None,
    ) -> None:
        super().__init__(distance, reducer)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature, self.exclude_siblings = temperature, exclude_siblings

    def per_clip(
        self, d: torch.Tensor, clusters: torch.Tensor, cluster_classes: torch.Tensor
    ) -> torch.Tensor:
        logits = -d / self.temperature
        if self.exclude_siblings:
            sibling = sibling_mask(clusters, cluster_classes)
            sibling.scatter_(1, clusters[:, None], False)
            logits = logits.masked_fill(sibling, float("-inf"))
        return F.cross_entropy(logits, clusters, reduction="none")
