from clusterlight.losses.class_balanced import ClassBalancedLoss, effective_number_weights
from clusterlight.losses.classification import (
    ClassificationLoss,
    CrossEntropy,
    WeightedCrossEntropy,
    inverse_frequency_weights,
)
from clusterlight.losses.cluster_margin import ClusterMarginLoss
from clusterlight.losses.cluster_softmax import ClusterSoftmaxLoss
from clusterlight.losses.focal import FocalLoss
from clusterlight.losses.ldam import LDAMLoss
from clusterlight.losses.logit_adjusted import LogitAdjustedLoss

__all__ = [
    "ClassBalancedLoss",
    "ClassificationLoss",
    "ClusterMarginLoss",
    "ClusterSoftmaxLoss",
    "CrossEntropy",
    "FocalLoss",
    "LDAMLoss",
    "LogitAdjustedLoss",
    "WeightedCrossEntropy",
    "effective_number_weights",
    "inverse_frequency_weights",
]
