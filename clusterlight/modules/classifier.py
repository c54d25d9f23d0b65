"""A backbone with a linear head trained with a classification loss: the baseline(s)."""

from __future__ import annotations

import torch
from torch import nn

from clusterlight.features import LogMel, frontend_input
from clusterlight.losses import ClassificationLoss, WeightedCrossEntropy
from clusterlight.modules.base import AudioModule
from clusterlight.nets import Backbone


class Classifier(AudioModule):
    """Backbone + linear head; ``loss`` defaults to class-weighted cross-entropy (the paper's baseline)."""

    def __init__(
        self,
        frontend: LogMel,
        backbone: Backbone,
        class_names: list[str],
        loss: ClassificationLoss | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__(frontend, backbone, class_names, lr, weight_decay)
        self.loss = loss if loss is not None else WeightedCrossEntropy()
        self.head = nn.Linear(backbone.embed_dim, self.num_classes)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and "train" in getattr(dm, "counts", {}):
            self.loss.set_class_counts(torch.tensor([dm.counts["train"][c] for c in self.class_names]))

    def on_train_epoch_start(self) -> None:
        set_epoch = getattr(self.loss, "set_epoch", None)
        if set_epoch is not None:  # schedules such as LDAM's deferred re-weighting
            set_epoch(self.current_epoch)

    # Optional as in AudioModule: a subclass's read-out may not classify yet (JointFinetune's centroids)
    def scores_from_features(self, z: torch.Tensor) -> torch.Tensor | None:
        return self.head(z)

    def classification_loss(self, batch: dict, z: torch.Tensor) -> torch.Tensor:
        loss = self.loss(self.head(z), batch["label"])
        self.log("train/cls_loss", loss, prog_bar=True)
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.classification_loss(batch, self.features(frontend_input(batch)))
