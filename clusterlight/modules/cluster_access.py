"""How a LightningModule that trains against centroids reaches its :class:`ClusterCentroids` callback.

The centroid settings (momentum, embedding source) live on the callback alone. A module takes an
optional ``centroids: ClusterCentroids`` argument and adds it with ``configure_callbacks``; when
``trainer.callbacks`` already holds one, that one is used, and configuring both is an error.
"""

from __future__ import annotations

from lightning.pytorch import LightningModule

from clusterlight.callbacks.centroids import ClusterCentroids


class CentroidUser:
    """Mixin for modules that train against the centroids; call ``_init_centroids`` in ``__init__``."""

    def _init_centroids(self, centroids: ClusterCentroids | None) -> None:
        self._centroids_given = centroids is not None
        self.centroid_callback = centroids

    def centroid_callbacks(self: LightningModule) -> list:
        """``configure_callbacks`` part: the module's ClusterCentroids unless the trainer has its own."""
        configured = [
            c
            for c in self.trainer.callbacks
            if isinstance(c, ClusterCentroids) and c is not self.centroid_callback
        ]
        if configured and self._centroids_given:
            raise ValueError(
                f"ClusterCentroids is configured twice: model.init_args.centroids "
                f"(momentum {self.centroid_callback.momentum}, embedding_source "
                f"{self.centroid_callback.embedding_source!r}) and trainer.callbacks (momentum "
                f"{configured[0].momentum}, embedding_source {configured[0].embedding_source!r}); keep one"
            )
        if configured or self.centroid_callback in self.trainer.callbacks:
            return []  # the trainer's own, or ours attached by an earlier fit/test of this trainer
        if self.centroid_callback is None:
            self.centroid_callback = ClusterCentroids()
        return [self.centroid_callback]


def find_centroids(module: LightningModule) -> ClusterCentroids:
    found = [c for c in module.trainer.callbacks if isinstance(c, ClusterCentroids)]
    if not found:
        raise RuntimeError(f"{type(module).__name__} needs a ClusterCentroids callback in trainer.callbacks")
    return found[0]
