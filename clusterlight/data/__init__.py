"""Data: clip sources, the caches and the DataModule.

The names below load on first use (PEP 562), so that a decoding worker importing
``clusterlight.data.waveform_shards`` does not pull in Lightning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clusterlight.lazy import lazy_names

_EXPORTS = {
    "AudioDataModule": "clusterlight.data.datamodule",
    "BackgroundMix": "clusterlight.data.mixing",
    "BatchMix": "clusterlight.data.mixing",
    "Clip": "clusterlight.data.records",
    "ClipSource": "clusterlight.data.sources",
    "DataError": "clusterlight.data.records",
    "ESC50Source": "clusterlight.data.sources",
    "FolderSource": "clusterlight.data.sources",
    "ManifestSource": "clusterlight.data.sources",
    "SyntheticSource": "clusterlight.data.synth",
    "UrbanSound8KSource": "clusterlight.data.sources",
    "WithinClusterMix": "clusterlight.data.mixing",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # what the names above are, for type checkers and editors
    from clusterlight.data.datamodule import AudioDataModule as AudioDataModule
    from clusterlight.data.mixing import BackgroundMix as BackgroundMix
    from clusterlight.data.mixing import BatchMix as BatchMix
    from clusterlight.data.mixing import WithinClusterMix as WithinClusterMix
    from clusterlight.data.records import Clip as Clip
    from clusterlight.data.records import DataError as DataError
    from clusterlight.data.sources import ClipSource as ClipSource
    from clusterlight.data.sources import ESC50Source as ESC50Source
    from clusterlight.data.sources import FolderSource as FolderSource
    from clusterlight.data.sources import ManifestSource as ManifestSource
    from clusterlight.data.sources import UrbanSound8KSource as UrbanSound8KSource
    from clusterlight.data.synth import SyntheticSource as SyntheticSource

__getattr__, __dir__ = lazy_names(__name__, _EXPORTS)
