"""Stage 1: train the embedding network against the cluster centroids (no classifier)."""

from __future__ import annotations

import torch
from torch import nn

from clusterlight.callbacks.embedding_plot import EmbeddingPlot
from clusterlight.features import LogMel
from clusterlight.losses import ClusterMarginLoss
from clusterlight.losses.distances import squared_distances
from clusterlight.modules.base import AudioModule
from clusterlight.modules.cluster_access import default_centroid_callbacks, find_centroids


class EmbeddingPretrain(AudioModule):
    """Backbone trained with a cluster loss (default :class:`ClusterMarginLoss`).

    It adds a :class:`ClusterCentroids` callback (EMA ``centroid_momentum``, re-clustering
    from ``embedding_source``: ``exact`` pass or memory ``bank``) and, with
    ``plot_embeddings``, an :class:`EmbeddingPlot`, unless the trainer already has them.
    Validation reads the embedding out by nearest centroid (the class of the closest
    cluster), so ``val/macro_err`` tracks how well the embedding separates the classes.
    """

    def __init__(
        self,
        frontend: LogMel,
        backbone: nn.Module,
        class_names: list[str],
        loss: nn.Module | None = None,
        centroid_momentum: float = 0.9,
        embedding_source: str = "exact",
        plot_embeddings: bool = True,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__(frontend, backbone, class_names, lr, weight_decay)
        self.loss = loss if loss is not None else ClusterMarginLoss()
        self.centroid_momentum, self.embedding_source, self.plot_embeddings = (
            centroid_momentum,
            embedding_source,
            plot_embeddings,
        )

    def configure_callbacks(self) -> list:
        extra = default_centroid_callbacks(self, self.centroid_momentum, self.embedding_source)
        if self.plot_embeddings and not any(isinstance(c, EmbeddingPlot) for c in self.trainer.callbacks):
            extra.append(EmbeddingPlot())
        return extra

    def training_step(self, batch: dict, batch_idx: int) -> dict:
        tracker = find_centroids(self)
        z = self.embed(batch["wave"])
        loss = self.loss(z, batch["cluster"], tracker.centroids, tracker.cluster_classes)
        self.log("train/cluster_loss", loss, prog_bar=True)
        return {"loss": loss, "embeddings": z.detach()}

    def scores_from_features(self, z: torch.Tensor) -> torch.Tensor | None:
        tracker = find_centroids(self)
        if not tracker.ready:
            return None
        tracker.to(z.device)
        d = squared_distances(nn.functional.normalize(z.float(), dim=1), tracker.centroids)
        scores = torch.full((len(z), self.num_classes), float("-inf"), device=z.device)
        return scores.scatter_reduce(1, tracker.cluster_classes.expand(len(z), -1), -d, reduce="amax")
