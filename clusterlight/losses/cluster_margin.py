"""The large-margin loss against cluster centroids (the method's stage-1 loss; docs/architecture.md)."""

from __future__ import annotations

import torch

from clusterlight.distances import Distance
from clusterlight.losses.cluster_loss import ClusterLoss, sibling_mask
from clusterlight.losses.reduction import Reducer


class ClusterMarginLoss(ClusterLoss):
    """``[m_inter + d_own - d_neg]_+ + [m_intra + d_own - d_sib]_+`` per clip, reduced per cluster.

    ``d_own``: distance to the clip's own centroid; ``d_neg``: to the nearest centroid of any
    other class; ``d_sib``: to the nearest other cluster of the clip's class (term only when the
    class has more than one cluster). Embeddings and centroids are expected unit-norm.
    """

    def __init__(
        self,
        margin_inter: float = 1.0,
        margin_intra: float = 0.2,
        distance: Distance | None = None,
        reducer: Reducer | None = None,
    ) -> None:
        super().__init__(distance, reducer)
        if margin_inter <= margin_intra:
            raise ValueError(f"margin_inter ({margin_inter}) must exceed margin_intra ({margin_intra})")
        self.margin_inter, self.margin_intra = margin_inter, margin_intra

    def per_clip(
        self, d: torch.Tensor, clusters: torch.Tensor, cluster_classes: torch.Tensor
    ) -> torch.Tensor:
        d_own = d.gather(1, clusters[:, None]).squeeze(1)
        same_class = sibling_mask(clusters, cluster_classes)
        own = torch.zeros_like(same_class).scatter_(1, clusters[:, None], True)
        inf = torch.finfo(d.dtype).max
        d_neg = d.masked_fill(same_class, inf).amin(1)
        d_sib = d.masked_fill(~same_class | own, inf).amin(1)
        has_sib = d_sib < inf
        loss = torch.relu(self.margin_inter + d_own - d_neg)
        intra = torch.where(has_sib, torch.relu(self.margin_intra + d_own - d_sib), torch.zeros_like(loss))
        return loss + intra
