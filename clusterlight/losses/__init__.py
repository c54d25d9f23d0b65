"""Losses: classification losses (the baseline and its peers) and cluster losses (the method).

Distances for the cluster losses are in :mod:`clusterlight.distances` (re-exported here).
"""

from clusterlight.distances import CosineDistance, Distance, SquaredEuclidean
from clusterlight.losses.class_balanced import ClassBalancedLoss, effective_number_weights
from clusterlight.losses.classification import (
    ClassificationLoss,
    CrossEntropy,
    WeightedCrossEntropy,
    inverse_frequency_weights,
)
from clusterlight.losses.cluster_loss import ClusterLoss
from clusterlight.losses.cluster_margin import ClusterMarginLoss
from clusterlight.losses.cluster_softmax import ClusterSoftmaxLoss
from clusterlight.losses.focal import FocalLoss, focal_term
from clusterlight.losses.ldam import LDAMLoss
from clusterlight.losses.logit_adjusted import LogitAdjustedLoss
from clusterlight.losses.reduction import MeanOverClips, MeanOverClusters, Reducer

__all__ = [
    "ClassBalancedLoss",
    "ClassificationLoss",
    "ClusterLoss",
    "ClusterMarginLoss",
    "ClusterSoftmaxLoss",
    "CosineDistance",
    "CrossEntropy",
    "Distance",
    "FocalLoss",
    "LDAMLoss",
    "LogitAdjustedLoss",
    "MeanOverClips",
    "MeanOverClusters",
    "Reducer",
    "SquaredEuclidean",
    "WeightedCrossEntropy",
    "effective_number_weights",
    "focal_term",
    "inverse_frequency_weights",
]
