"""The large-margin loss against cluster centroids (DESIGN.md, "The cluster loss")."""

from __future__ import annotations

import torch
from torch import nn

from clusterlight.losses.distances import squared_distances
from clusterlight.losses.reduction import mean_over_clusters


class ClusterMarginLoss(nn.Module):
    """``[m_inter + d_own - d_neg]_+ + [m_intra + d_own - d_sib]_+`` per clip, reduced per cluster.

    ``d_own``: squared distance to the clip's own centroid; ``d_neg``: to the nearest centroid of
    any other class; ``d_sib``: to the nearest other cluster of the clip's class (term only when
    the class has more than one cluster). Embeddings and centroids are expected unit-norm.
    """

    def __init__(self, margin_inter: float = 1.0, margin_intra: float = 0.2) -> None:
        super().__init__()
        if margin_inter <= margin_intra:
            raise ValueError(f"margin_inter ({margin_inter}) must exceed margin_intra ({margin_intra})")
        self.margin_inter, self.margin_intra = margin_inter, margin_intra

    def forward(
        self, z: torch.Tensor, clusters: torch.Tensor, centroids: torch.Tensor, cluster_classes: torch.Tensor
    ) -> torch.Tensor:
        d = squared_distances(z.float(), centroids.float())
        d_own = d.gather(1, clusters[:, None]).squeeze(1)
        same_class = cluster_classes[None, :] == cluster_classes[clusters][:, None]
        own = torch.zeros_like(same_class).scatter_(1, clusters[:, None], True)
        inf = torch.finfo(d.dtype).max
        d_neg = d.masked_fill(same_class, inf).amin(1)
        d_sib = d.masked_fill(~same_class | own, inf).amin(1)
        has_sib = d_sib < inf
        loss = torch.relu(self.margin_inter + d_own - d_neg)
        loss = loss + torch.where(
            has_sib, torch.relu(self.margin_intra + d_own - d_sib), torch.zeros_like(loss)
        )
        return mean_over_clusters(loss, clusters, len(centroids))
