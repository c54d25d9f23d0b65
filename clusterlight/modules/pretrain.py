"""Stage 1: train the embedding network against the cluster centroids (no classifier)."""

from __future__ import annotations

import torch

from clusterlight.callbacks.centroids import ClusterCentroids
from clusterlight.callbacks.embedding_plot import EmbeddingPlot
from clusterlight.features import LogMel, frontend_input
from clusterlight.losses import ClusterLoss, ClusterMarginLoss
from clusterlight.modules.base import AudioModule
from clusterlight.modules.cluster_access import CentroidUser
from clusterlight.modules.readouts import NearestCentroid
from clusterlight.nets import Backbone
from clusterlight.trainer_attrs import callbacks_of


class EmbeddingPretrain(CentroidUser, AudioModule):
    """Backbone trained with a cluster loss (default :class:`ClusterMarginLoss`).

    It holds and adds its ``centroids`` callback (:class:`ClusterCentroids`: EMA momentum,
    re-clustering from an ``exact`` pass or a memory ``bank``; default settings when not given: the
    one place to configure them) and, with ``plot_embeddings``, an :class:`EmbeddingPlot`.
    Validation reads the embedding out by nearest centroid (the class of the closest
    cluster), so ``val/macro_err`` tracks how well the embedding separates the classes.
    """

    def __init__(
        self,
        frontend: LogMel,
        backbone: Backbone,
        class_names: list[str],
        loss: ClusterLoss | None = None,
        centroids: ClusterCentroids | None = None,
        plot_embeddings: bool = True,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__(frontend, backbone, class_names, lr, weight_decay)
        self.loss = loss if loss is not None else ClusterMarginLoss()
        self._init_centroids(centroids)
        self.plot_embeddings = plot_embeddings

    def configure_callbacks(self) -> list:
        extra = super().configure_callbacks() + self.centroid_callbacks()
        if self.plot_embeddings and not any(isinstance(c, EmbeddingPlot) for c in callbacks_of(self.trainer)):
            extra.append(EmbeddingPlot())
        return extra

    def training_step(self, batch: dict, batch_idx: int) -> dict:
        tracker = self.centroid_callback
        z = self.embed(frontend_input(batch))
        loss = self.loss(z, batch["cluster"], tracker.centroids, tracker.cluster_classes)
        self.log("train/cluster_loss", loss, prog_bar=True)
        return {"loss": loss, "embeddings": z.detach()}

    def scores_from_features(self, z: torch.Tensor) -> torch.Tensor | None:
        """The nearest-centroid read-out; ``None`` until the clusters are built."""
        return NearestCentroid().scores(self, z)
