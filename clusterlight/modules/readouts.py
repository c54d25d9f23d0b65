"""Read-outs: how a fine-tuned module turns a clip's backbone output into class scores.

:class:`LinearHead` is the classifier head; :class:`NearestCentroid` (a clip takes the class of its
nearest cluster centroid, LMLE-style) and :class:`CentroidKNN` (the ``k`` nearest centroids vote)
read the embedding out against the :class:`~clusterlight.callbacks.ClusterCentroids` of the run.
The centroid scores are pure functions of the embeddings and the centroids
(:func:`nearest_centroid_scores`, :func:`knn_centroid_scores`); :func:`class_centroid_head` turns the
centroids of a pretraining checkpoint into head weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import torch
from lightning.pytorch import LightningModule
from torch import nn

from clusterlight.callbacks.centroids import ClusterCentroids
from clusterlight.checkpoints import CheckpointError, load_checkpoint
from clusterlight.distances import normalize_embeddings, squared_distances
from clusterlight.init_args import RecordsInitArgs
from clusterlight.model_card import CARD_KEY
from clusterlight.modules.cluster_access import centroid_state


def nearest_centroid_scores(
    z: torch.Tensor, centroids: torch.Tensor, cluster_classes: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Class scores [B, C] of unit-norm embeddings ``z`` [B, d]: minus the squared distance to the
    nearest centroid [K, d] of each class (``cluster_classes`` [K]); ``-inf`` for a class without a
    cluster. The argmax is the class of the nearest centroid."""
    d = squared_distances(z, centroids)
    scores = torch.full((len(z), num_classes), float("-inf"), device=z.device, dtype=d.dtype)
    return scores.scatter_reduce(1, cluster_classes.expand(len(z), -1), -d, reduce="amax")


def knn_centroid_scores(
    z: torch.Tensor,
    centroids: torch.Tensor,
    cluster_classes: torch.Tensor,
    num_classes: int,
    k: int,
    distance_weighted: bool = True,
) -> torch.Tensor:
    """Class scores [B, C]: the log of each class's share of the votes of the ``k`` centroids nearest
    to each embedding (fewer when there are fewer centroids), each vote weighing ``1 / distance``
    (squared Euclidean, floored at 1e-6) or 1; so a softmax of the scores gives the vote shares,
    and a class without a vote scores ``-inf``."""
    d = squared_distances(z, centroids)
    nearest, index = d.topk(min(k, d.shape[1]), dim=1, largest=False)
    votes = 1.0 / nearest.clamp_min(1e-6) if distance_weighted else torch.ones_like(nearest)
    per_class = torch.zeros(len(z), num_classes, device=z.device, dtype=d.dtype)
    per_class.scatter_add_(1, cluster_classes[index], votes)
    return (per_class / per_class.sum(1, keepdim=True)).log()


class Readout(RecordsInitArgs, nn.Module):
    """How :meth:`scores` turns backbone output ``z`` [B, d] of ``module`` into class scores [B, C]
    (``None`` while it cannot classify yet). ``uses_centroids``: the module must keep a
    :class:`~clusterlight.callbacks.ClusterCentroids` callback. A read-out holds no weights (an
    ``nn.Module`` that records its arguments, so that its module's model card describes it)."""

    uses_centroids = False

    def scores(self, module: LightningModule, z: torch.Tensor) -> torch.Tensor | None:
        raise NotImplementedError


class LinearHead(Readout):
    """The module's linear classifier head (``module.head``): the paper's read-out."""

    def scores(self, module: LightningModule, z: torch.Tensor) -> torch.Tensor:
        return cast(nn.Module, module.head)(z)


class CentroidReadout(Readout):
    """Base of the read-outs against the module's cluster centroids (``module.centroid_callback``),
    in the unit-norm embedding space; ``None`` until the clusters are built."""

    uses_centroids = True

    def scores(self, module: LightningModule, z: torch.Tensor) -> torch.Tensor | None:
        # module: an AudioModule that keeps a ClusterCentroids (CentroidUser)
        tracker = cast(ClusterCentroids, module.centroid_callback)
        if not tracker.ready or tracker.centroids is None:  # ready: the centroids are there
            return None
        tracker.to(z.device)
        return self.centroid_scores(
            normalize_embeddings(z), tracker.centroids, tracker.cluster_classes, cast(int, module.num_classes)
        )

    def centroid_scores(
        self, z: torch.Tensor, centroids: torch.Tensor, cluster_classes: torch.Tensor, num_classes: int
    ) -> torch.Tensor:
        raise NotImplementedError


class NearestCentroid(CentroidReadout):
    """A clip takes the class of its nearest centroid (:func:`nearest_centroid_scores`)."""

    def centroid_scores(self, z, centroids, cluster_classes, num_classes) -> torch.Tensor:
        return nearest_centroid_scores(z, centroids, cluster_classes, num_classes)


class CentroidKNN(CentroidReadout):
    """The ``k`` nearest centroids vote, by default each with weight ``1 / distance``
    (:func:`knn_centroid_scores`); ``k=1`` is :class:`NearestCentroid`'s decision."""

    def __init__(self, k: int = 3, distance_weighted: bool = True) -> None:
        if k < 1:
            raise ValueError(f"CentroidKNN.k must be >= 1, got {k}")
        super().__init__()
        self.k, self.distance_weighted = k, distance_weighted

    def centroid_scores(self, z, centroids, cluster_classes, num_classes) -> torch.Tensor:
        return knn_centroid_scores(z, centroids, cluster_classes, num_classes, self.k, self.distance_weighted)


def class_centroids(centroids: torch.Tensor, cluster_classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Each class's unit-norm mean of its clusters' centroids [C, d]; a ``ValueError`` naming the
    classes without a cluster."""
    sums = torch.zeros(num_classes, centroids.shape[1], dtype=centroids.dtype)
    sums.index_add_(0, cluster_classes.long(), centroids)
    counts = torch.bincount(cluster_classes.long(), minlength=num_classes)
    if bool((counts == 0).any()):
        missing = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"classes {missing} have no cluster centroid: cannot build their class centroid")
    return normalize_embeddings(sums / counts[:, None])


def pretrained_centroids(path: str | Path) -> tuple[torch.Tensor, torch.Tensor, list[str] | None]:
    """The cluster centroids [K, d], their classes [K] and the class names (``None`` without a model
    card) kept in a pretraining checkpoint: the ``ClusterCentroids`` callback state
    (:func:`centroid_state`); a :class:`CheckpointError`
    naming the file when one is missing."""
    checkpoint = load_checkpoint(path)
    state = centroid_state(checkpoint)
    centroids, classes = state.get("centroids"), state.get("cluster_classes")
    if centroids is None or classes is None or len(centroids) != len(classes):
        found = "none" if centroids is None or classes is None else f"{len(centroids)} for {len(classes)}"
        raise CheckpointError(
            f"pretrained_checkpoint {path} holds no usable cluster centroids (found {found}; expected a "
            "ClusterCentroids callback state with one centroid and one class per cluster): head_init "
            "'centroids' needs the checkpoint of a clustered run, e.g. a pretraining stage",
            path,
        )
    names = (checkpoint.get(CARD_KEY) or {}).get("class_names")
    return centroids.float(), classes.long(), names


def class_centroid_head(path: str | Path, class_names: list[str], temperature: float) -> torch.Tensor:
    """Head weights [C, d] from the pretraining checkpoint ``path``: each class's centroid
    (:func:`class_centroids`) divided by ``temperature``, so the head's argmax starts as the nearest
    class centroid by cosine. A checkpoint of other classes is a :class:`CheckpointError`."""
    centroids, classes, names = pretrained_centroids(path)
    if (names is not None and list(names) != list(class_names)) or int(classes.max()) >= len(class_names):
        raise CheckpointError(
            f"pretrained_checkpoint {path} was trained on classes {names or int(classes.max()) + 1}, this "
            f"model has {list(class_names)}: the class centroids would initialise the wrong head rows",
            path,
        )
    return class_centroids(centroids, classes, len(class_names)) / temperature
