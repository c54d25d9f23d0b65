from clusterlight.callbacks.centroids import ClusterCentroids
from clusterlight.callbacks.compile import CompileModel
from clusterlight.callbacks.embedding_plot import EmbeddingPlot

__all__ = ["ClusterCentroids", "CompileModel", "EmbeddingPlot"]
