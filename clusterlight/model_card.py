"""The model card: what a checkpoint holds so that it rebuilds its module alone (``clusterlight.load``).

``checkpoint["clusterlight"]`` = ``{"version", "model": {"class_path", "init_args"}, "class_names",
"audio": {"sample_rate", "duration", "padding"}}`` and, once a validation ran, ``"thresholds"``
(per class, for detection). ``clusterlight fit`` writes the module's resolved config
(:class:`~clusterlight.lightning_cli.LoggedConfig`); any other save (a plain ``lightning.Trainer``)
writes the module's own description (:func:`~clusterlight.init_args.init_config`).
"""

from __future__ import annotations

from pathlib import Path

from clusterlight.checkpoints import CheckpointError

CARD_KEY = "clusterlight"
AUDIO_KEYS = ("sample_rate", "duration", "padding")


def model_card(config: dict, class_names: list[str], audio: dict) -> dict:
    """A card from the module's config (class_path/init_args), its class names and audio settings."""
    from clusterlight.version import __version__

    model = dict(config)
    init_args = {**model.get("init_args", {}), "class_names": list(class_names)}
    if "pretrained_checkpoint" in init_args:
        init_args["pretrained_checkpoint"] = None  # the weights are in this checkpoint
    model["init_args"] = init_args
    return {"version": __version__, "model": model, "class_names": list(class_names), "audio": dict(audio)}


def audio_settings(datamodule, frontend) -> dict:
    """Sample rate, clip duration and padding of the data the module was trained on: the DataModule's
    when there is one, else the front end's sample rate alone. An unknown rate or duration is left
    out (reading it from a loaded card says so: :class:`AudioSettings`); an unknown padding is None,
    which prediction reads as its default, ``loop``."""
    found = {k: getattr(datamodule, k, None) for k in AUDIO_KEYS}
    if found["sample_rate"] is None:
        found["sample_rate"] = getattr(frontend, "sample_rate", None)
    return {k: v for k, v in found.items() if v is not None or k == "padding"}


class MissingAudioSetting(LookupError):
    """A setting the checkpoint does not record (it was saved without a DataModule)."""


class AudioSettings(dict):
    """A loaded card's ``audio``: reading a setting the checkpoint lacks says what is missing and how to
    give it, instead of a bare ``KeyError``."""

    def __init__(self, settings: dict, source: str) -> None:
        super().__init__(settings)
        self.source = source

    def __missing__(self, key: str):
        raise MissingAudioSetting(
            f"{self.source} does not record the clip {key}: it was saved by a Trainer without an "
            f"AudioDataModule. Set it before predicting, e.g. model.card['audio']['{key}'] = "
            + ("2.0 (seconds)" if key == "duration" else "...")
        )


def card_of(checkpoint: dict, path: str | Path) -> dict:
    """The card of ``checkpoint`` (read from ``path``), or a ``CheckpointError`` saying why there is none."""
    card = checkpoint.get(CARD_KEY)
    if card is None:
        raise CheckpointError(
            f"{path} has no model card: it was not written by a clusterlight module, or by one that "
            "could not describe itself (the warning at save time named the argument). Rebuild the "
            "module in Python and call module.load_state_dict(torch.load(path, weights_only=True)"
            "['state_dict'])",
            path,
        )
    return {**card, "audio": AudioSettings(card.get("audio", {}), f"checkpoint {path}")}


def build_module(card: dict, base: type, path: str | Path):
    """The module the card describes (a subclass of ``base``), built by jsonargparse as LightningCLI
    builds it; a card naming a class that is missing or no ``base`` is a ``CheckpointError``."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(base, "model", required=True)
    try:
        config = parser.parse_object({"model": card["model"]})
    except Exception as e:  # jsonargparse reports an unknown class or a bad argument in its own types
        raise CheckpointError(
            f"{path}: its model card does not build a {base.__name__} "
            f"({card['model'].get('class_path')}): {str(e).strip().splitlines()[0][:300]}",
            path,
        ) from None
    return parser.instantiate_classes(config).model
