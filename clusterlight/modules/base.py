"""What every clusterlight LightningModule shares: front end + backbone, evaluation, prediction, and
checkpoints that rebuild the module alone (the model card)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from clusterlight import distributed
from clusterlight.callbacks.finite_guard import FiniteGuard
from clusterlight.callbacks.random_state import RandomState
from clusterlight.callbacks.split_predictions import clip_paths
from clusterlight.checkpoints import CheckpointError, load_checkpoint
from clusterlight.confusion import log_confusion
from clusterlight.detection import choose_thresholds
from clusterlight.distances import normalize_embeddings
from clusterlight.features import LogMel, frontend_input
from clusterlight.init_args import RecordsInitArgs, init_config
from clusterlight.labels import BACKGROUND
from clusterlight.metrics import ClassificationReport
from clusterlight.model_card import CARD_KEY, audio_settings, build_module, card_of, model_card
from clusterlight.nets import Backbone
from clusterlight.trainer_attrs import callbacks_of, datamodule_of


class AudioModule(RecordsInitArgs, LightningModule):
    """Front end + backbone, evaluated per class on validation and test.

    Subclasses implement ``training_step`` and ``scores_from_features``. Metrics are logged at epoch end as
    ``{stage}/macro_err``, ``{stage}/acc``, ``{stage}/err_<class>``, ``{stage}/f1_<class>``;
    the last values and confusion matrix of each stage stay in ``self.results[stage]``, each clip's
    class probabilities in ``self.clip_probabilities[stage]`` (split order).

    Each validation (but the sanity check) also chooses per-class detection thresholds on its clip
    probabilities (:func:`~clusterlight.detection.choose_thresholds`, F1-optimal, background
    excluded): ``self.val_thresholds``. Every checkpoint carries a model card (:mod:`clusterlight.model_card`)
    with the thresholds of the validation before it, so the best checkpoint holds those of its own
    weights; :meth:`load_from_checkpoint` and ``clusterlight.load`` rebuild the module from the card.
    """

    card: dict  # the model card, set on a module loaded from a checkpoint (load_from_checkpoint)

    def __init__(
        self,
        frontend: LogMel,
        backbone: Backbone,
        class_names: list[str],
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__()
        if backbone.n_mels != frontend.n_mels:
            raise ValueError(
                f"model.backbone.n_mels ({backbone.n_mels}) must equal model.frontend.n_mels "
                f"({frontend.n_mels})"
            )
        self.frontend, self.backbone = frontend, backbone
        self.class_names = list(class_names)
        self.lr, self.weight_decay = lr, weight_decay
        self.reports = nn.ModuleDict(
            {stage: ClassificationReport(self.class_names) for stage in ("val", "test")}
        )
        self.results: dict[str, dict] = {}
        self.clip_probabilities: dict[str, torch.Tensor] = {}
        self.val_thresholds: dict[str, float] | None = None
        self._updated = {"val": False, "test": False}
        self._clip_predictions: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"val": [], "test": []}
        self._card_warned = False

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def configure_callbacks(self) -> list:
        """Every run saves and restores its random states with its checkpoints (bit-exact resume) and
        stops at the first non-finite loss or gradient (:class:`FiniteGuard`); a trainer's own
        ``RandomState`` / ``FiniteGuard`` (e.g. ``FiniteGuard(on_nonfinite="skip")``) is kept instead."""
        extra = []
        for kind in (RandomState, FiniteGuard):
            if not any(isinstance(c, kind) for c in callbacks_of(self.trainer)):
                extra.append(kind())
        return extra

    def prepare_data(self) -> None:
        """Where Lightning prepares data once per node, right after the DataModule's ``prepare_data``: hand
        it the front end, so its feature cache is built there (``AudioDataModule.use_frontend``)."""
        self._hand_frontend()

    def _hand_frontend(self) -> None:
        use_frontend = getattr(getattr(self._trainer, "datamodule", None), "use_frontend", None)
        if use_frontend is not None:
            use_frontend(self.frontend)

    def setup(self, stage: str) -> None:
        """Check the audio settings shared with the DataModule (given twice, they must agree); hand it
        the front end whose log-mel its feature cache stores (``AudioDataModule.use_frontend``)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        rate = getattr(datamodule, "sample_rate", None)
        if rate is not None and rate != self.frontend.sample_rate:
            raise ValueError(
                f"data.sample_rate ({rate}) and model.frontend.sample_rate ({self.frontend.sample_rate}) "
                "differ: the mel filters would be wrong; set both to the same rate"
            )
        self._hand_frontend()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone output (unnormalised) for a batch of waveforms (or of cached log-mel: see
        :class:`~clusterlight.features.LogMel`)."""
        return self.backbone(self.frontend(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Unit-norm embeddings, the space the clusters live in."""
        return normalize_embeddings(self.features(x))

    def _evaluate(self, batch: dict, stage: str) -> dict:
        z = self.features(frontend_input(batch))
        scores = self.scores_from_features(z)
        if scores is not None:
            preds = scores.argmax(1)
            cast(ClassificationReport, self.reports[stage]).update(preds, batch["label"])
            ids = torch.stack([batch["index"], preds, batch["label"]])
            self._clip_predictions[stage].append((ids, scores.detach().float()))
            self._updated[stage] = True
        return {"embeddings": normalize_embeddings(z).detach(), "labels": batch["label"]}

    def scores_from_features(self, z: torch.Tensor) -> torch.Tensor | None:
        """Class scores [B, num_classes] from backbone output, or ``None`` while the module cannot
        classify yet."""
        raise NotImplementedError

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        return self._evaluate(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        return self._evaluate(batch, "test")

    def _log_report(self, stage: str) -> None:
        if not self._updated[stage]:
            return
        report = cast(ClassificationReport, self.reports[stage])
        values = report.compute()
        confusion = report.confusion_matrix()
        report.reset()
        self._updated[stage] = False
        # the values are already summed over ranks (the confusion matrix is synced): sync_dist
        # averages identical numbers, and says so to Lightning, which otherwise warns under DDP
        self.log_dict({f"{stage}/{k}": v for k, v in values.items()}, sync_dist=True)
        clips, self.clip_probabilities[stage] = self._gather_clip_predictions(stage)
        self.results[stage] = {
            "metrics": {k: float(v) for k, v in values.items()},
            "confusion": confusion.cpu().tolist(),
            **clips,
        }
        if stage == "val" and not self.trainer.sanity_checking:
            self.val_thresholds = self.choose_thresholds(self.clip_probabilities["val"], clips["labels"])
        if self.trainer.is_global_zero and not self.trainer.sanity_checking:
            log_confusion(
                self.trainer.loggers,
                stage,
                confusion.cpu(),
                self.class_names,
                self.current_epoch,
                self.global_step,
            )

    def _gather_clip_predictions(self, stage: str) -> tuple[dict[str, list[int]], torch.Tensor]:
        """Each clip's predicted and true class, and its class probabilities [clips, classes], in split
        order, from every rank (a collective: all ranks call it). Paired statistics resample clips
        from these (``experiment.statistics``)."""
        parts = self._clip_predictions[stage]
        self._clip_predictions[stage] = []
        ids = torch.cat([p[0] for p in parts], 1).cpu() if parts else torch.zeros(3, 0, dtype=torch.long)
        scores = torch.cat([p[1] for p in parts]).cpu() if parts else torch.zeros(0, self.num_classes)
        every = distributed.all_gather_objects((ids, scores))
        ids, scores = torch.cat([e[0] for e in every], 1), torch.cat([e[1] for e in every])
        order = ids[0].argsort()
        clips = {"predictions": ids[1, order].tolist(), "labels": ids[2, order].tolist()}
        # the softmax on the CPU in float64: no probability underflows to 0, no float64 on the device
        return clips, torch.softmax(scores[order].double(), 1)

    def choose_thresholds(self, probabilities: torch.Tensor, labels: list[int]) -> dict[str, float]:
        """Per-class detection thresholds on clip probabilities [clips, classes] with true ``labels``:
        F1-optimal for each class but ``background`` (:func:`clusterlight.detection.choose_thresholds`)."""
        background = BACKGROUND if BACKGROUND in self.class_names else None
        return choose_thresholds(probabilities.numpy(), labels, self.class_names, background)

    def on_validation_epoch_end(self) -> None:
        self._log_report("val")

    def on_test_epoch_end(self) -> None:
        self._log_report("test")

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """Each clip's split ``index``, ``path`` (None when the dataset does not say), true ``label``
        (a class name, None when unknown), ``predicted`` class name and index (``pred``), class
        ``probabilities`` and raw ``scores``."""
        scores = self.scores_from_features(self.features(frontend_input(batch)))
        if scores is None:
            raise RuntimeError(
                f"{type(self).__name__} cannot classify yet: it has no cluster centroids. Predict "
                "with a checkpoint "
                "of a trained run (ckpt_path=...), whose ClusterCentroids state holds them."
            )
        pred = scores.argmax(1)
        loaders = self.trainer.predict_dataloaders
        loader = loaders[dataloader_idx] if isinstance(loaders, (list, tuple)) else loaders
        labels = batch["label"].tolist() if "label" in batch else [-1] * len(pred)
        return {
            "index": batch["index"],
            "path": clip_paths(getattr(loader, "dataset", None), batch["index"].tolist()),
            "label": [self.class_names[i] if 0 <= i < self.num_classes else None for i in labels],
            "predicted": [self.class_names[i] for i in pred.tolist()],
            "pred": pred,
            "probabilities": torch.softmax(scores.float(), 1),
            "scores": scores,
        }

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    # ---- checkpoints that rebuild the module alone --------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """The model card: ``clusterlight fit`` has put the resolved config there already; else the
        module's own description. Then the last validation's detection thresholds."""
        if CARD_KEY not in checkpoint:
            card = self._own_card()
            if card is None:
                return
            checkpoint[CARD_KEY] = card
        if self.val_thresholds:
            checkpoint[CARD_KEY]["thresholds"] = dict(self.val_thresholds)

    def _own_card(self) -> dict | None:
        try:
            config = init_config(self)
        except TypeError as e:
            if not self._card_warned:
                rank_zero_warn(
                    f"checkpoints of this {type(self).__name__} carry no model card, so clusterlight.load "
                    f"cannot rebuild it: {e}"
                )
                self._card_warned = True
            return None
        audio = audio_settings(datamodule_of(self.trainer), self.frontend)
        return model_card(config, self.class_names, audio)

    @classmethod
    def load_from_checkpoint(
        cls,
        checkpoint_path: str | Path,  # type: ignore[override]  # a file path, no file object
        map_location: str | torch.device | None = None,  # type: ignore[override]  # a device, no map
        hparams_file: str | Path | None = None,
        strict: bool | None = None,
        weights_only: bool | None = None,
        **kwargs,
    ):
        """The module saved in ``checkpoint_path``, rebuilt from its model card, in eval mode on
        ``map_location`` (a device; default CPU), with ``.card`` set (class names, audio settings,
        detection thresholds). Loaded safely (:func:`clusterlight.checkpoints.load_checkpoint`:
        ``weights_only=True`` whatever ``weights_only`` says).

        The checkpoint's module must be a ``cls`` (``Classifier.load_from_checkpoint`` of a
        pretraining checkpoint is a ``CheckpointError``; ``AudioModule.load_from_checkpoint`` takes
        any). A checkpoint without a card is a ``CheckpointError`` saying how to load its weights. The
        card fixes the arguments: ``hparams_file`` and overrides are refused."""
        if hparams_file is not None or kwargs:
            given = ["hparams_file"] * (hparams_file is not None) + sorted(kwargs)
            raise TypeError(
                f"{cls.__name__}.load_from_checkpoint rebuilds the module from the checkpoint's model card; "
                f"it takes no {given}: load it, then change the attributes"
            )
        checkpoint = load_checkpoint(checkpoint_path)
        card = card_of(checkpoint, checkpoint_path)
        model = build_module(card, AudioModule, checkpoint_path)
        if not isinstance(model, cls):
            kind = type(model).__name__
            raise CheckpointError(
                f"the module in {checkpoint_path} is {kind} ({card['model']['class_path']}), not a "
                f"{cls.__name__}: load it with {kind}.load_from_checkpoint or clusterlight.load",
                checkpoint_path,
            )
        model.on_load_checkpoint(checkpoint)
        model.load_state_dict(checkpoint["state_dict"], strict=True if strict is None else strict)
        model.card = card
        return model.to(map_location or "cpu").eval()
