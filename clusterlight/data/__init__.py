from clusterlight.data.datamodule import AudioDataModule
from clusterlight.data.mixing import BackgroundMix, BatchMix, WithinClusterMix
from clusterlight.data.records import Clip, DataError
from clusterlight.data.sources import (
    ClipSource,
    ESC50Source,
    FolderSource,
    ManifestSource,
    UrbanSound8KSource,
)
from clusterlight.data.synth import SyntheticSource

__all__ = [
    "AudioDataModule",
    "BackgroundMix",
    "BatchMix",
    "Clip",
    "ClipSource",
    "DataError",
    "ESC50Source",
    "FolderSource",
    "ManifestSource",
    "SyntheticSource",
    "UrbanSound8KSource",
    "WithinClusterMix",
]
