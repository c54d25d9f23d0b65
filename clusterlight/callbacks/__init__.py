from clusterlight.callbacks.centroids import ClusterCentroids
from clusterlight.callbacks.checkpoint import BestAndLastCheckpoint
from clusterlight.callbacks.compile import CompileModel
from clusterlight.callbacks.embedding_plot import EmbeddingPlot
from clusterlight.callbacks.finite_guard import FiniteGuard, NonFiniteError
from clusterlight.callbacks.random_state import RandomState

__all__ = [
    "BestAndLastCheckpoint",
    "ClusterCentroids",
    "CompileModel",
    "EmbeddingPlot",
    "FiniteGuard",
    "NonFiniteError",
    "RandomState",
]
