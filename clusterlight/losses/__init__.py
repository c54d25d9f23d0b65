from clusterlight.losses.classification import ClassificationLoss, CrossEntropy, WeightedCrossEntropy, inverse_frequency_weights
from clusterlight.losses.cluster_margin import ClusterMarginLoss
from clusterlight.losses.cluster_softmax import ClusterSoftmaxLoss

__all__ = [
    "ClassificationLoss",
    "ClusterMarginLoss",
    "ClusterSoftmaxLoss",
    "CrossEntropy",
    "WeightedCrossEntropy",
    "inverse_frequency_weights",
]
