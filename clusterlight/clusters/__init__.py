"""The method's clusters: k-means per class, the DataModule's cluster state, and its contract."""

from clusterlight.clusters.assignments import ClusterAssignments
from clusterlight.clusters.kmeans import (
    balanced_assign,
    cluster_counts,
    kmeans,
    refuse_non_finite,
    split_classes_into_clusters,
)
from clusterlight.clusters.protocol import ClusteredData, clustered_data

__all__ = [
    "ClusterAssignments",
    "ClusteredData",
    "balanced_assign",
    "cluster_counts",
    "clustered_data",
    "kmeans",
    "refuse_non_finite",
    "split_classes_into_clusters",
]
