"""``ClusterlightCLI``: LightningCLI for clusterlight's modules and data, checkpoint rule built in."""

from __future__ import annotations

from typing import cast

import yaml
from jsonargparse import Namespace
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from clusterlight import runs
from clusterlight.callbacks.checkpoint import BestAndLastCheckpoint
from clusterlight.callbacks.split_predictions import SplitPredictionWriter
from clusterlight.checkpoints import load_checkpoint
from clusterlight.data.datamodule import AudioDataModule
from clusterlight.metrics import report_table
from clusterlight.model_card import CARD_KEY, audio_settings, model_card
from clusterlight.modules.base import AudioModule
from clusterlight.trainer_attrs import callbacks_of, datamodule_of

CHECKPOINT_DEFAULTS = {
    "checkpoint.monitor": "val/macro_err",
    "checkpoint.mode": "min",
    "checkpoint.save_last": True,
    "checkpoint.filename": "best-{epoch:03d}",
}


def class_names_of(datamodule: AudioDataModule) -> list[str]:
    """A named function, not a lambda: ``ddp_spawn`` pickles the parser with the trainer."""
    return datamodule.class_names


class LoggedConfig(SaveConfigCallback):
    """Writes ``config.yaml`` to the run folder, hands the resolved config to every logger (the W&B
    run config, so runs can be grouped and filtered by any setting; TensorBoard's hparams; the CSV
    logger's ``hparams.yaml``) and puts the model card into every checkpoint."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        for logger in trainer.loggers:
            logger.log_hyperparams(self._resolved())

    def _resolved(self) -> dict:
        return yaml.safe_load(self.parser.dump(self.config, skip_none=False))

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        """The model card (:mod:`clusterlight.model_card`) from the resolved config: the checkpoint
        rebuilds its module alone (the module adds the detection thresholds)."""
        module = cast(AudioModule, pl_module)
        audio = audio_settings(datamodule_of(trainer), module.frontend)
        checkpoint[CARD_KEY] = model_card(self._resolved()["model"], module.class_names, audio)


def _short(class_path) -> str:
    return str(class_path).rsplit(".", 1)[-1]


class ClusterlightCLI(LightningCLI):
    """LightningCLI in subclass mode for model and data; the model's ``class_names`` come from the data.

    Every run has a ``ModelCheckpoint`` (``checkpoint.*``, Lightning's forced-callback pattern):
    by default it keeps the best validation macro error and, after every epoch, ``last.ckpt``:
    the same selection rule for every method and trainer config; ``--checkpoint.monitor`` etc.
    change it. ``--ckpt_path last`` / ``best`` in a new process mean the newest earlier run's
    checkpoint (:mod:`clusterlight.runs`): ``fit --ckpt_path last`` resumes an interrupted run in
    its own folder, ``test --ckpt_path best`` tests the checkpoint a fit selected. ``fit`` ends by
    printing the selected checkpoint's per-class validation table. The resolved config goes to
    every logger (:class:`LoggedConfig`); a W&B run without a name is named after the module,
    the backbone and the seed.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("parser_kwargs", {"parser_mode": "omegaconf"})
        kwargs.setdefault("save_config_callback", LoggedConfig)
        super().__init__(AudioModule, AudioDataModule, *args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(BestAndLastCheckpoint, "checkpoint")
        parser.set_defaults(CHECKPOINT_DEFAULTS)
        parser.link_arguments(
            "data", "model.init_args.class_names", compute_fn=class_names_of, apply_on="instantiate"
        )

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        """Parse ``args`` (a list of command-line strings, or a whole config as a dict or Namespace,
        as ``clusterlight experiment`` passes), or ``sys.argv`` when None. Lightning warns whenever
        ``args`` is given while ``sys.argv`` holds arguments, in case both were meant; the
        ``clusterlight`` command passes its own, already rewritten, command line, so no warning."""
        if isinstance(args, (dict, Namespace)):
            self.config = parser.parse_object(args)
        else:
            self.config = parser.parse_args(args)

    def before_instantiate_classes(self) -> None:
        config = self.config.get(str(self.subcommand), self.config) if self.subcommand else self.config
        logger = config.trainer.get("logger") if config.get("trainer") else None
        if isinstance(logger, Namespace) and _short(logger.get("class_path")) == "WandbLogger":
            args = logger.init_args
            if not args.get("name"):
                model = config.model
                backbone = model.init_args.get("backbone")
                backbone = _short(backbone.class_path) if isinstance(backbone, Namespace) else "model"
                args.name = f"{_short(model.class_path)}/{backbone}/seed{config.get('seed_everything')}"
            if "job_type" not in args or not args.get("job_type"):
                args.job_type = str(self.subcommand)

    def instantiate_classes(self) -> None:
        """Build the classes, then hand the DataModule the model's front end (its feature cache stores
        that front end's log-mel), before ``prepare_data`` builds the caches."""
        super().instantiate_classes()
        use_frontend = getattr(self.datamodule, "use_frontend", None)
        if use_frontend is not None:
            use_frontend(self.model.frontend)

    def _resolve_ckpt_path(self, resume: bool) -> None:
        config = self.config_init[self.subcommand]
        which = config.get("ckpt_path")
        if which not in ("last", "best"):
            return
        found = runs.resolve(self.trainer, which)
        if found is None and resume and which == "last":
            rank_zero_warn(
                "--ckpt_path last: no earlier run with a last.ckpt was found; training from scratch"
            )
            config["ckpt_path"] = None
            return
        if found is None:
            root = getattr(self.trainer.logger, "root_dir", None) or self.trainer.default_root_dir
            raise FileNotFoundError(
                f"--ckpt_path {which}: no earlier run under {root} holds a {which} checkpoint; "
                "run fit first with the same trainer.default_root_dir/logger, or give a checkpoint path"
            )
        rank_zero_info(f"[clusterlight] --ckpt_path {which}: {found}")
        config["ckpt_path"] = str(found)

    def before_fit(self) -> None:
        self._resolve_ckpt_path(resume=True)

    def before_validate(self) -> None:
        self._resolve_ckpt_path(resume=False)

    def before_test(self) -> None:
        self._resolve_ckpt_path(resume=False)

    def before_predict(self) -> None:
        """Resolve ``--ckpt_path last/best``; add a :class:`SplitPredictionWriter` (``predictions.csv``
        in the run folder) unless the trainer has one."""
        self._resolve_ckpt_path(resume=False)
        if not any(isinstance(c, SplitPredictionWriter) for c in callbacks_of(self.trainer)):
            callbacks_of(self.trainer).append(SplitPredictionWriter())

    def _finish_wandb_runs(self) -> None:
        """Finish W&B runs before the process exits, so an offline run is completely written."""
        for logger in self.trainer.loggers:
            run = getattr(logger, "_experiment", None)  # only a run this process started (not ddp_spawn's)
            if type(logger).__name__ == "WandbLogger" and run is not None:
                run.finish()

    def after_validate(self) -> None:
        self._finish_wandb_runs()

    def after_test(self) -> None:
        self._finish_wandb_runs()

    def after_predict(self) -> None:
        self._finish_wandb_runs()

    def after_fit(self) -> None:
        """Validate the selected checkpoint, print its per-class table and detection thresholds, finish
        W&B runs."""
        self._print_selected()
        self._finish_wandb_runs()

    def _print_selected(self) -> None:
        # every run has its ModelCheckpoint (the forced checkpoint callback)
        callback = cast("ModelCheckpoint | None", self.trainer.checkpoint_callback)
        best = callback.best_model_path if callback else ""
        if not best or self.trainer.interrupted:
            return
        runs.log_into_run_of(self.trainer, best)
        self.trainer.validate(self.model, datamodule=self.datamodule, ckpt_path=best, verbose=False)
        # callback_metrics: also filled in this process when ddp_spawn validated in workers
        metrics = {k[4:]: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("val/")}
        if "macro_err" in metrics and self.trainer.is_global_zero:
            title = f"validation, selected checkpoint {best}"
            print("\n" + report_table(metrics, self.model.class_names, title) + "\n", flush=True)
        if self.trainer.is_global_zero:
            print_thresholds(best)


def print_thresholds(checkpoint: str) -> None:
    """One line: the detection thresholds the checkpoint's model card holds (chosen on the validation
    split by the module, :meth:`AudioModule.choose_thresholds`). Read from the file, so the line also
    shows them after a ``ddp_spawn`` fit, whose workers validated."""
    thresholds = load_checkpoint(checkpoint).get(CARD_KEY, {}).get("thresholds")
    if thresholds:
        values = ", ".join(f"{c} {t:.3f}" for c, t in thresholds.items())
        print(f"[clusterlight] detection thresholds (validation, clip level) in the checkpoints: {values}")
