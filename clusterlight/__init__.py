"""clusterlight: cluster-based deep embeddings for rare sound events on imbalanced data.

The names below load on first use (PEP 562), so that ``import clusterlight.inference.streaming``
on a device with numpy and onnxruntime does not pull in torch and Lightning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clusterlight.lazy import lazy_names
from clusterlight.version import __version__ as __version__

_EXPORTS = {
    "AudioDataModule": "clusterlight.data",
    "Classifier": "clusterlight.modules",
    "ClusterCentroids": "clusterlight.callbacks",
    "CompileModel": "clusterlight.callbacks",
    "EmbeddingPlot": "clusterlight.callbacks",
    "EmbeddingPretrain": "clusterlight.modules",
    "FiniteGuard": "clusterlight.callbacks",
    "JointFinetune": "clusterlight.modules",
    "LogMel": "clusterlight.features",
    "ManifestSource": "clusterlight.data",
    "NonFiniteError": "clusterlight.callbacks",
    "SyntheticSource": "clusterlight.data",
    "create_backbone": "clusterlight.nets",
    "load": "clusterlight.inference",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # what the names above are, for type checkers and editors
    from clusterlight.callbacks import ClusterCentroids as ClusterCentroids
    from clusterlight.callbacks import CompileModel as CompileModel
    from clusterlight.callbacks import EmbeddingPlot as EmbeddingPlot
    from clusterlight.callbacks import FiniteGuard as FiniteGuard
    from clusterlight.callbacks import NonFiniteError as NonFiniteError
    from clusterlight.data import AudioDataModule as AudioDataModule
    from clusterlight.data import ManifestSource as ManifestSource
    from clusterlight.data import SyntheticSource as SyntheticSource
    from clusterlight.features import LogMel as LogMel
    from clusterlight.inference.loading import load as load
    from clusterlight.modules import Classifier as Classifier
    from clusterlight.modules import EmbeddingPretrain as EmbeddingPretrain
    from clusterlight.modules import JointFinetune as JointFinetune
    from clusterlight.nets import create_backbone as create_backbone

__getattr__, __dir__ = lazy_names(__name__, _EXPORTS)
