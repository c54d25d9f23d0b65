"""The DataModule's cluster bookkeeping: which cluster each training clip is in, and when to rebuild."""

from __future__ import annotations

import torch
from lightning.pytorch.utilities import rank_zero_info

from clusterlight import distributed
from clusterlight.clusters.kmeans import cluster_counts, refuse_non_finite, split_classes_into_clusters


class ClusterAssignments:
    """Each training clip's cluster id and each cluster's class, rebuilt by k-means on a schedule.

    Owned by the DataModule (whose ``cluster_*`` / ``kmeans_iters`` / ``balanced_clusters``
    arguments configure it) and driven by the :class:`~clusterlight.callbacks.ClusterCentroids`
    callback, which keeps the centroids. It holds what it clusters: each training clip's class and the
    class names (:meth:`set_training_clips`, which the DataModule calls at ``setup``), so the callback
    hands it only embeddings. Its state (assignments, cluster classes, the epoch of the last rebuild)
    goes into checkpoints through the DataModule's ``state_dict``.

    Args:
        cluster_size: target clips per cluster (default: the smallest training class's count).
        every_n_epochs: rebuild every N training epochs.
        kmeans_iters: Lloyd iterations per rebuild.
        balanced: equal-size k-means (each cluster capped at ``ceil(n_c / k_c)`` clips).
        seed: with the epoch, seeds k-means so every rebuild is reproducible.
    """

    def __init__(
        self,
        cluster_size: int | None = None,
        every_n_epochs: int = 1,
        kmeans_iters: int = 20,
        balanced: bool = False,
        seed: int = 0,
    ) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"data.cluster_every_n_epochs must be >= 1, got {every_n_epochs}")
        self.cluster_size, self.every_n_epochs, self.kmeans_iters = cluster_size, every_n_epochs, kmeans_iters
        self.balanced, self.seed = balanced, seed
        self.labels: torch.Tensor | None = None  # [n_train] class index of each training clip
        self.class_names: list[str] | None = None
        self.assignments: torch.Tensor | None = None  # [n_train] cluster id of each training clip
        self.cluster_classes: torch.Tensor | None = None  # [K] class of each cluster
        self.last_rebuild_epoch = -1

    def set_training_clips(self, labels: torch.Tensor, class_names: list[str]) -> None:
        """What to cluster: each training clip's class index ``labels`` [n_train] (training-split order,
        the order of batch ``index``) and the ``class_names`` they index."""
        self.labels, self.class_names = labels, list(class_names)

    @property
    def built(self) -> bool:
        return self.assignments is not None

    def due(self, epoch: int) -> bool:
        """Whether the clusters must be (re)built at the start of training epoch ``epoch``."""
        return not self.built or epoch - self.last_rebuild_epoch >= self.every_n_epochs

    def to(self, device: torch.device | str) -> ClusterAssignments:
        """Move the state to ``device`` (a no-op when already there); returns self."""
        if self.assignments is not None and self.assignments.device != torch.device(device):  # built
            assert self.cluster_classes is not None  # set together with the assignments
            self.assignments = self.assignments.to(device)
            self.cluster_classes = self.cluster_classes.to(device)
        return self

    def lookup(self, index: torch.Tensor) -> torch.Tensor:
        """Cluster ids of training clips ``index`` (positions in the training split), on their device."""
        assignments = self.to(index.device).assignments
        if assignments is None:
            raise RuntimeError("ClusterAssignments.lookup before the clusters are built")
        return assignments[index]

    def rebuild(
        self, embeddings: torch.Tensor, init: torch.Tensor | None, epoch: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Split every class by k-means of the training clips' ``embeddings`` [n_train, d] (in the order
        of :meth:`set_training_clips`); returns (centroids, stats).

        ``init`` (the current centroids) warm-starts k-means when the cluster layout is unchanged.
        Rank 0's result is broadcast, so every rank holds identical assignments and centroids.
        Non-finite embeddings are refused (``ValueError`` naming how many rows and per class) before
        anything changes: the one finiteness check of a re-clustering. They are identical on every
        rank, so every rank raises.
        """
        if self.labels is None or self.class_names is None:  # set together by set_training_clips
            raise RuntimeError("ClusterAssignments.rebuild before set_training_clips: nothing to cluster")
        labels, class_names = self.labels.to(embeddings.device), self.class_names
        refuse_non_finite(embeddings, f"re-clustering at epoch {epoch}", labels, class_names)
        counts = torch.bincount(labels, minlength=len(class_names)).tolist()
        ks = cluster_counts(counts, self.cluster_size)
        if init is not None and len(init) != sum(ks):
            init = None
        generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        centroids, assignments, classes = split_classes_into_clusters(
            embeddings, labels, ks, self.kmeans_iters, init, generator, self.balanced
        )
        distributed.broadcast_(centroids)
        distributed.broadcast_(assignments)
        sizes = torch.bincount(assignments, minlength=len(centroids)).float()
        previous = self.to(assignments.device).assignments  # None before the first build
        changed = -1 if previous is None else int((previous != assignments).sum())
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
        if self.assignments is None or self.cluster_classes is None:  # not built (both are set together)
            return {}
        return {
            "assignments": self.assignments.cpu(),
            "cluster_classes": self.cluster_classes.cpu(),
            "last_rebuild_epoch": self.last_rebuild_epoch,
        }

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.assignments, self.cluster_classes = state["assignments"], state["cluster_classes"]
            self.last_rebuild_epoch = state["last_rebuild_epoch"]
