"""The base of the losses against cluster centroids: a distance, a per-clip term, a reducer."""

from __future__ import annotations

import torch
from torch import nn

from clusterlight.distances import Distance, SquaredEuclidean
from clusterlight.init_args import RecordsInitArgs
from clusterlight.losses.reduction import MeanOverClusters, Reducer


class ClusterLoss(RecordsInitArgs, nn.Module):
    """``forward(z, clusters, centroids, cluster_classes) -> scalar``.

    ``z`` [B, d] unit-norm embeddings, ``clusters`` [B] each clip's cluster id, ``centroids``
    [K, d], ``cluster_classes`` [K] each cluster's class. The distance (default
    :class:`SquaredEuclidean`) and the reducer (default :class:`MeanOverClusters`) are
    pluggable; a subclass implements only :meth:`per_clip` on the distance matrix.
    """

    def __init__(self, distance: Distance | None = None, reducer: Reducer | None = None) -> None:
        super().__init__()
        self.distance = distance if distance is not None else SquaredEuclidean()
        self.reducer = reducer if reducer is not None else MeanOverClusters()

    def forward(
        self, z: torch.Tensor, clusters: torch.Tensor, centroids: torch.Tensor, cluster_classes: torch.Tensor
    ) -> torch.Tensor:
        d = self.distance(z.float(), centroids.float())
        return self.reducer(self.per_clip(d, clusters, cluster_classes), clusters, len(centroids))

    def per_clip(
        self, d: torch.Tensor, clusters: torch.Tensor, cluster_classes: torch.Tensor
    ) -> torch.Tensor:
        """Loss per clip [B] from distances ``d`` [B, K] to every centroid."""
        raise NotImplementedError


def sibling_mask(clusters: torch.Tensor, cluster_classes: torch.Tensor) -> torch.Tensor:
    """[B, K]: True where cluster k belongs to the class of clip i's cluster (its own cluster included)."""
    return cluster_classes[None, :] == cluster_classes[clusters][:, None]
