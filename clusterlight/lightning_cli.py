"""``ClusterlightCLI``: LightningCLI for clusterlight's modules and data, checkpoint rule built in."""

from __future__ import annotations

from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from clusterlight.data.datamodule import AudioDataModule
from clusterlight.modules.base import AudioModule

CHECKPOINT_DEFAULTS = {
    "checkpoint.monitor": "val/macro_err",
    "checkpoint.mode": "min",
    "checkpoint.save_last": True,
    "checkpoint.filename": "best-{epoch:03d}",
}


def class_names_of(datamodule: AudioDataModule) -> list[str]:
    """A named function, not a lambda: ``ddp_spawn`` pickles the parser with the trainer."""
    return datamodule.class_names


class ClusterlightCLI(LightningCLI):
    """LightningCLI in subclass mode for model and data; the model's ``class_names`` come from the data.

    Every run has a ``ModelCheckpoint`` (``checkpoint.*``, Lightning's forced-callback pattern):
    by default it keeps the best validation macro error and the last epoch, the same selection
    rule for every method and trainer config; ``--checkpoint.monitor`` etc. change it.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("parser_kwargs", {"parser_mode": "omegaconf"})
        super().__init__(AudioModule, AudioDataModule, *args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(CHECKPOINT_DEFAULTS)
        parser.link_arguments(
            "data", "model.init_args.class_names", compute_fn=class_names_of, apply_on="instantiate"
        )

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        """A whole config object (dict or Namespace, as ``clusterlight experiment`` passes) is parsed
        as it is. Lightning warns when ``args`` is given while ``sys.argv`` holds arguments, in case
        command-line strings were meant; a config object never mixes with ``sys.argv``, so it is
        parsed without that warning whatever the process's own command line is."""
        if isinstance(args, (dict, Namespace)):
            self.config = parser.parse_object(args)
        else:
            super().parse_arguments(parser, args)
