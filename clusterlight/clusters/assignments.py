"""The DataModule's cluster bookkeeping: which cluster each training clip is in, and when to rebuild."""

from __future__ import annotations

import torch
from lightning.pytorch.utilities import rank_zero_info

from clusterlight import distributed
from clusterlight.clusters.kmeans import check_finite, cluster_per_class, clusters_per_class


class ClusterAssignments:
    """Each training clip's cluster id and each cluster's class, rebuilt by k-means on a schedule.

    Owned by the DataModule (whose ``cluster_*`` / ``kmeans_iters`` / ``balanced_clusters``
    arguments configure it) and driven by the :class:`~clusterlight.callbacks.ClusterCentroids`
    callback, which keeps the centroids. Its state (assignments, cluster classes, the epoch of
    the last rebuild) goes into checkpoints through the DataModule's ``state_dict``.

    Args:
        size: target clips per cluster (default: the smallest training class's count).
        every_n_epochs: rebuild every N training epochs.
        kmeans_iters: Lloyd iterations per rebuild.
        balanced: equal-size k-means (each cluster capped at ``ceil(n_c / k_c)`` clips).
        seed: with the epoch, seeds k-means so every rebuild is reproducible.
    """

    def __init__(
        self,
        size: int | None = None,
        every_n_epochs: int = 1,
        kmeans_iters: int = 20,
        balanced: bool = False,
        seed: int = 0,
    ) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"data.cluster_every_n_epochs must be >= 1, got {every_n_epochs}")
        self.size, self.every_n_epochs, self.kmeans_iters = size, every_n_epochs, kmeans_iters
        self.balanced, self.seed = balanced, seed
        self.assignments: torch.Tensor | None = None  # [n_train] cluster id of each training clip
        self.cluster_classes: torch.Tensor | None = None  # [K] class of each cluster
        self.last_rebuild_epoch = -1

    @property
    def built(self) -> bool:
        return self.assignments is not None

    def due(self, epoch: int) -> bool:
        """Whether the clusters must be (re)built at the start of training epoch ``epoch``."""
        return not self.built or epoch - self.last_rebuild_epoch >= self.every_n_epochs

    def to(self, device: torch.device | str) -> ClusterAssignments:
        """Move the state to ``device`` (a no-op when already there); returns self."""
        if self.built and self.assignments.device != torch.device(device):
            self.assignments = self.assignments.to(device)
            self.cluster_classes = self.cluster_classes.to(device)
        return self

    def lookup(self, index: torch.Tensor) -> torch.Tensor:
        """Cluster ids of training clips ``index`` (positions in the training split), on their device."""
        return self.to(index.device).assignments[index]

    def rebuild(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        class_names: list[str],
        init: torch.Tensor | None,
        epoch: int,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Split every class by k-means of ``embeddings`` [n_train, d]; returns (centroids, stats).

        ``init`` (the current centroids) warm-starts k-means when the cluster layout is unchanged.
        Rank 0's result is broadcast, so every rank holds identical assignments and centroids.
        Non-finite embeddings are refused (``ValueError`` naming how many rows and per class) before
        anything changes; they are identical on every rank, so every rank raises.
        """
        labels = labels.to(embeddings.device)
        bad = ~torch.isfinite(embeddings).all(1)
        if bool(bad.any()):
            per_class = torch.bincount(labels[bad], minlength=len(class_names)).tolist()
            classes = ", ".join(f"{c}: {n}" for c, n in zip(class_names, per_class) if n)
            check_finite(embeddings, f"re-clustering at epoch {epoch} (non-finite rows per class: {classes})")
        counts = torch.bincount(labels, minlength=len(class_names)).tolist()
        ks = clusters_per_class(counts, self.size)
        if init is not None and len(init) != sum(ks):
            init = None
        generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        centroids, assignments, classes = cluster_per_class(
            embeddings, labels, ks, self.kmeans_iters, init, generator, self.balanced
        )
        distributed.broadcast_(centroids)
        distributed.broadcast_(assignments)
        sizes = torch.bincount(assignments, minlength=len(centroids)).float()
        changed = (
            -1 if not self.built else int((self.to(assignments.device).assignments != assignments).sum())
        )
        self.assignments, self.cluster_classes, self.last_rebuild_epoch = assignments, classes, epoch
        stats = {
            "clusters": float(len(centroids)),
            "size_min": float(sizes.min()),
            "size_median": float(sizes.median()),
            "size_max": float(sizes.max()),
            "changed": float(changed),
        }
        rank_zero_info(
            f"[clusterlight] epoch {epoch}: clusters per class {dict(zip(class_names, ks))}, sizes {stats}"
        )
        return centroids, stats

    def state_dict(self) -> dict:
        if not self.built:
            return {}
        return {
            "assignments": self.assignments.cpu(),
            "cluster_classes": self.cluster_classes.cpu(),
            "last_rebuild_epoch": self.last_rebuild_epoch,
        }

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.assignments, self.cluster_classes = state["assignments"], state["cluster_classes"]
            self.last_rebuild_epoch = state.get("last_rebuild_epoch", -1)  # absent in checkpoints before 0.2
