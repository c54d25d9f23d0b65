"""What every clusterlight LightningModule shares: front end + backbone, evaluation, and prediction."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule
from torch import nn

from clusterlight import distributed
from clusterlight.callbacks.finite_guard import FiniteGuard
from clusterlight.callbacks.random_state import RandomState
from clusterlight.confusion import log_confusion
from clusterlight.distances import normalize_embeddings
from clusterlight.features import LogMel
from clusterlight.metrics import ClassificationReport
from clusterlight.nets import Backbone


class AudioModule(LightningModule):
    """Front end + backbone, evaluated per class on validation and test.

    Subclasses implement ``training_step`` and ``scores_from_features``. Metrics are logged at epoch end as
    ``{stage}/macro_err``, ``{stage}/acc``, ``{stage}/err_<class>``, ``{stage}/f1_<class>``;
    the last values and confusion matrix of each stage stay in ``self.results[stage]``.
    """

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
        self._updated = {"val": False, "test": False}
        self._clip_predictions: dict[str, list[torch.Tensor]] = {"val": [], "test": []}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def configure_callbacks(self) -> list:
        """Every run saves and restores its random states with its checkpoints (bit-exact resume) and
        stops at the first non-finite loss or gradient (:class:`FiniteGuard`); a trainer's own
        ``RandomState`` / ``FiniteGuard`` (e.g. ``FiniteGuard(on_nonfinite="skip")``) is kept instead."""
        extra = []
        for kind in (RandomState, FiniteGuard):
            if not any(isinstance(c, kind) for c in self.trainer.callbacks):
                extra.append(kind())
        return extra

    def setup(self, stage: str) -> None:
        """Check the audio settings shared with the DataModule (given twice, they must agree)."""
        rate = getattr(getattr(self.trainer, "datamodule", None), "sample_rate", None)
        if rate is not None and rate != self.frontend.sample_rate:
            raise ValueError(
                f"data.sample_rate ({rate}) and model.frontend.sample_rate ({self.frontend.sample_rate}) "
                "differ: the mel filters would be wrong; set both to the same rate"
            )

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """Backbone output (unnormalised) for a batch of waveforms."""
        return self.backbone(self.frontend(wave))

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        """Unit-norm embeddings, the space the clusters live in."""
        return normalize_embeddings(self.features(wave))

    def _evaluate(self, batch: dict, stage: str) -> dict:
        z = self.features(batch["wave"])
        scores = self.scores_from_features(z)
        if scores is not None:
            preds = scores.argmax(1)
            self.reports[stage].update(preds, batch["label"])
            self._clip_predictions[stage].append(torch.stack([batch["index"], preds, batch["label"]]))
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
        report = self.reports[stage]
        values = report.compute()
        confusion = report.confusion_matrix()
        report.reset()
        self._updated[stage] = False
        # the values are already summed over ranks (the confusion matrix is synced): sync_dist
        # averages identical numbers, and says so to Lightning, which otherwise warns under DDP
        self.log_dict({f"{stage}/{k}": v for k, v in values.items()}, sync_dist=True)
        self.results[stage] = {
            "metrics": {k: float(v) for k, v in values.items()},
            "confusion": confusion.cpu().tolist(),
            **self._gather_clip_predictions(stage),
        }
        if self.trainer.is_global_zero and not self.trainer.sanity_checking:
            log_confusion(
                self.trainer.loggers,
                stage,
                confusion.cpu(),
                self.class_names,
                self.current_epoch,
                self.global_step,
            )

    def _gather_clip_predictions(self, stage: str) -> dict[str, list[int]]:
        """Each clip's predicted and true class, in split order, from every rank (a collective: all
        ranks call it). Paired statistics resample clips from these (``experiment.statistics``)."""
        parts = self._clip_predictions[stage]
        local = torch.cat(parts, dim=1).cpu() if parts else torch.zeros(3, 0, dtype=torch.long)
        self._clip_predictions[stage] = []
        every = torch.cat(distributed.all_gather_objects(local), dim=1)
        order = every[0].argsort()
        return {"predictions": every[1, order].tolist(), "labels": every[2, order].tolist()}

    def on_validation_epoch_end(self) -> None:
        self._log_report("val")

    def on_test_epoch_end(self) -> None:
        self._log_report("test")

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        scores = self.scores_from_features(self.features(batch["wave"]))
        if scores is None:
            raise RuntimeError(
                f"{type(self).__name__} cannot classify yet: it has no cluster centroids. Predict "
                "with a checkpoint "
                "of a trained run (ckpt_path=...), whose ClusterCentroids state holds them."
            )
        return {"index": batch["index"], "pred": scores.argmax(1), "scores": scores}

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
