"""A trained model from its checkpoint alone: ``clusterlight.load("best.ckpt")``.

Every checkpoint of a clusterlight module carries a model card (:mod:`clusterlight.model_card`: the
module's config, the class names, the audio settings and, for detection, per-class thresholds), written
by ``clusterlight fit`` / ``experiment`` and by a plain ``lightning.Trainer`` alike, so no DataModule
or config file is needed to rebuild the module.
"""

from __future__ import annotations

from pathlib import Path

import torch

from clusterlight.modules.base import AudioModule


def load(path: str | Path, map_location: str | torch.device = "cpu") -> AudioModule:
    """The module saved in checkpoint ``path`` (any clusterlight module), in eval mode on
    ``map_location``, with ``.card`` set: :meth:`AudioModule.load_from_checkpoint
    <clusterlight.modules.base.AudioModule.load_from_checkpoint>`. A pretraining checkpoint's module
    classifies by nearest centroid with the checkpoint's centroids."""
    return AudioModule.load_from_checkpoint(path, map_location=map_location)
