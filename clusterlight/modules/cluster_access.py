"""How a LightningModule reaches the ClusterCentroids callback of its Trainer."""

from __future__ import annotations

from lightning.pytorch import LightningModule

from clusterlight.callbacks.centroids import ClusterCentroids


def find_centroids(module: LightningModule) -> ClusterCentroids:
    found = [c for c in module.trainer.callbacks if isinstance(c, ClusterCentroids)]
    if not found:
        raise RuntimeError(f"{type(module).__name__} needs a ClusterCentroids callback in trainer.callbacks")
    return found[0]


def default_centroid_callbacks(module: LightningModule, momentum: float, embedding_source: str) -> list:
    """``configure_callbacks`` helper: a ClusterCentroids unless the trainer already has one."""
    has = any(isinstance(c, ClusterCentroids) for c in module.trainer.callbacks)
    return [] if has else [ClusterCentroids(momentum, embedding_source)]
