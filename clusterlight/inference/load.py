"""A trained model from its checkpoint alone: ``clusterlight.load("best.ckpt")``.

Checkpoints written by ``clusterlight fit`` / ``experiment`` carry a model card
(``checkpoint["clusterlight"]``: the module's resolved config, the class names, the audio
settings and, for detection, per-class thresholds), so no DataModule or config file is needed
to rebuild the module.
"""

from __future__ import annotations

from pathlib import Path

import torch

from clusterlight.checkpoints import load_checkpoint

CARD_KEY = "clusterlight"


def model_card(config: dict, class_names: list[str], datamodule) -> dict:
    """What a checkpoint needs to rebuild its module: config (class_path/init_args) and audio settings."""
    from clusterlight.version import __version__

    model = dict(config)
    init_args = {**model.get("init_args", {}), "class_names": list(class_names)}
    if "pretrained_checkpoint" in init_args:
        init_args["pretrained_checkpoint"] = None  # the weights are in this checkpoint
    model["init_args"] = init_args
    audio = {k: getattr(datamodule, k, None) for k in ("sample_rate", "duration", "padding")}
    return {"version": __version__, "model": model, "class_names": list(class_names), "audio": audio}


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict, loaded safely (:func:`clusterlight.checkpoints.load_checkpoint`)."""
    return load_checkpoint(path)


def load(path: str | Path, map_location: str | torch.device = "cpu"):
    """The module saved in checkpoint ``path``, in eval mode on ``map_location``, with ``.card`` set."""
    from jsonargparse import ArgumentParser

    from clusterlight.modules.base import AudioModule

    checkpoint = read_checkpoint(path)
    card = checkpoint.get(CARD_KEY)
    if card is None:
        raise ValueError(
            f"{path} has no model card: it was not written by `clusterlight fit`/`experiment` of version "
            ">= 0.2 (a Python-API or older checkpoint). Rebuild the module in Python and call "
            "module.load_state_dict(torch.load(path, weights_only=True)['state_dict'])"
        )
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(AudioModule, "model", required=True)
    model = parser.instantiate_classes(parser.parse_object({"model": card["model"]})).model
    model.load_state_dict(checkpoint["state_dict"])
    model.card = card
    return model.to(map_location).eval()
