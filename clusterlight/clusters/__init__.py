"""The method's clusters: k-means per class, the DataModule's cluster state, and its contract."""

from clusterlight.clusters.assignments import ClusterAssignments
from clusterlight.clusters.kmeans import balanced_assign, cluster_per_class, clusters_per_class, kmeans
from clusterlight.clusters.protocol import ClusteredData, clustered_data

__all__ = [
    "ClusterAssignments",
    "ClusteredData",
    "balanced_assign",
    "cluster_per_class",
    "clustered_data",
    "clusters_per_class",
    "kmeans",
]
