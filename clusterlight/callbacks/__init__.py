from clusterlight.callbacks.centroids import ClusterCentroids
from clusterlight.callbacks.checkpoint import BestAndLastCheckpoint
from clusterlight.callbacks.compile import CompileModel
from clusterlight.callbacks.embedding_plot import EmbeddingPlot
from clusterlight.callbacks.finite_guard import FiniteGuard, NonFiniteError
from clusterlight.callbacks.random_state import RandomState
from clusterlight.callbacks.smoothed_metric import SmoothedMetric
from clusterlight.callbacks.split_predictions import SplitPredictionWriter
from clusterlight.callbacks.weight_averaging import EMAWeights

__all__ = [
    "BestAndLastCheckpoint",
    "ClusterCentroids",
    "CompileModel",
    "EMAWeights",
    "EmbeddingPlot",
    "FiniteGuard",
    "NonFiniteError",
    "RandomState",
    "SmoothedMetric",
    "SplitPredictionWriter",
]
