"""clusterlight: cluster-based deep embeddings for rare sound events on imbalanced data."""

from clusterlight.callbacks import ClusterCentroids, CompileModel, EmbeddingPlot, FiniteGuard, NonFiniteError
from clusterlight.data import AudioDataModule, ManifestSource, SyntheticSource
from clusterlight.features import LogMel
from clusterlight.inference import load
from clusterlight.modules import Classifier, EmbeddingPretrain, JointFinetune
from clusterlight.nets import create_backbone
from clusterlight.version import __version__ as __version__

__all__ = [
    "AudioDataModule",
    "Classifier",
    "ClusterCentroids",
    "CompileModel",
    "EmbeddingPlot",
    "EmbeddingPretrain",
    "FiniteGuard",
    "JointFinetune",
    "LogMel",
    "ManifestSource",
    "NonFiniteError",
    "SyntheticSource",
    "create_backbone",
    "load",
]
