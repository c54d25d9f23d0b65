from clusterlight.callbacks.centroids import ClusterCentroids
from clusterlight.callbacks.embedding_plot import EmbeddingPlot

__all__ = ["ClusterCentroids", "EmbeddingPlot"]
