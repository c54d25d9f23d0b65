"""Stage 2: a classifier head on the pretrained embedding net, both trained jointly."""

from __future__ import annotations

import torch

from clusterlight.callbacks.centroids import ClusterCentroids
from clusterlight.checkpoints import load_pretrained_weights
from clusterlight.distances import normalize_embeddings
from clusterlight.features import LogMel, frontend_input
from clusterlight.losses import ClassificationLoss, ClusterLoss
from clusterlight.modules.classifier import Classifier
from clusterlight.modules.cluster_access import CentroidUser
from clusterlight.modules.readouts import LinearHead, Readout, class_centroid_head
from clusterlight.nets import Backbone

HEAD_INITS = ("random", "centroids")


class JointFinetune(CentroidUser, Classifier):
    """Front end + backbone from an :class:`EmbeddingPretrain` checkpoint, trained jointly with a new head.

    The backbone's learning rate is ``lr * backbone_lr_mult``. With ``cluster_loss_weight > 0``
    the cluster loss (``cluster_loss``) is kept as an auxiliary term, which needs the
    ``centroids`` callback (:class:`ClusterCentroids`, default settings when not given: the one
    place to configure them) and re-clustering as in pretraining;
    ``cluster_loss_warmup_epochs`` ramps its weight linearly from 0 at epoch 0 to the full
    weight at that epoch, so a run from scratch is not pulled towards clusters of a random network.
    """

    def __init__(
        self,
        frontend: LogMel,
        backbone: Backbone,
        class_names: list[str],
        pretrained_checkpoint: str | None = None,
        loss: ClassificationLoss | None = None,
        backbone_lr_mult: float = 0.5,
        cluster_loss_weight: float = 0.0,
        cluster_loss: ClusterLoss | None = None,
        cluster_loss_warmup_epochs: int = 0,
        centroids: ClusterCentroids | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        readout: Readout | None = None,
        head_init: str = "random",
        head_temperature: float = 0.1,
    ) -> None:
        super().__init__(frontend, backbone, class_names, loss, lr, weight_decay)
        self.backbone_lr_mult, self.cluster_loss_weight = backbone_lr_mult, cluster_loss_weight
        self.cluster_loss = cluster_loss
        self.readout = readout if readout is not None else LinearHead()
        if head_init not in HEAD_INITS:
            raise ValueError(f"head_init must be one of {HEAD_INITS}, got {head_init!r}")
        if head_temperature <= 0:
            raise ValueError(f"head_temperature must be > 0, got {head_temperature}")
        self.head_init, self.head_temperature = head_init, head_temperature
        self.pretrained_checkpoint = pretrained_checkpoint
        self._init_centroids(centroids)
        if cluster_loss_warmup_epochs < 0:
            raise ValueError(f"cluster_loss_warmup_epochs must be >= 0, got {cluster_loss_warmup_epochs}")
        self.cluster_loss_warmup_epochs = cluster_loss_warmup_epochs
        if cluster_loss_weight > 0 and cluster_loss is None:
            raise ValueError("cluster_loss_weight > 0 needs a cluster_loss (e.g. ClusterMarginLoss)")
        if pretrained_checkpoint:
            self.load_pretrained(pretrained_checkpoint)

    def load_pretrained(self, path: str) -> None:
        """Copy ``frontend.*`` and ``backbone.*`` weights from a pretraining checkpoint, loaded safely
        (:func:`clusterlight.checkpoints.load_checkpoint`: ``weights_only=True``). A missing file is a
        ``FileNotFoundError``; a file that is no checkpoint, holds unsafe objects, has no backbone, a
        backbone of other shapes or non-finite weights is a ``CheckpointError`` (a ``ValueError``)
        naming the file and what was wrong. With ``head_init="centroids"`` the head starts from the
        checkpoint's class centroids (a checkpoint without centroids, or of other classes, is a
        ``CheckpointError``)."""
        load_pretrained_weights(self, path)
        if self.head_init == "centroids":
            with torch.no_grad():
                self.head.weight.copy_(class_centroid_head(path, self.class_names, self.head_temperature))
                self.head.bias.zero_()

    @property
    def uses_centroids(self) -> bool:
        """Whether the run keeps cluster centroids: for the cluster loss or for the read-out."""
        return self.cluster_loss_weight > 0 or self.readout.uses_centroids

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.head_init == "centroids" and not self.pretrained_checkpoint:
            raise ValueError(
                "head_init='centroids' needs a pretrained_checkpoint: the class centroids come from it"
            )
        super().setup(stage)

    def configure_callbacks(self) -> list:
        extra = super().configure_callbacks()
        return extra + self.centroid_callbacks() if self.uses_centroids else extra

    def training_step(self, batch: dict, batch_idx: int):
        z = self.features(frontend_input(batch))
        loss = self.classification_loss(batch, z)
        if not self.uses_centroids:
            return loss
        zn = normalize_embeddings(z)
        if self.cluster_loss_weight > 0:
            if self.cluster_loss is None:  # set after construction: the check of __init__
                raise ValueError("cluster_loss_weight > 0 needs a cluster_loss (e.g. ClusterMarginLoss)")
            tracker = self.centroid_callback
            aux = self.cluster_loss(zn, batch["cluster"], tracker.centroids, tracker.cluster_classes)
            self.log("train/cluster_loss", aux)
            loss = loss + self.current_cluster_loss_weight * aux
        return {"loss": loss, "embeddings": zn.detach()}  # the embeddings move the centroids

    def scores_from_features(self, z: torch.Tensor) -> torch.Tensor | None:
        return self.readout.scores(self, z)

    @property
    def current_cluster_loss_weight(self) -> float:
        ramp = (
            min(1.0, self.current_epoch / self.cluster_loss_warmup_epochs)
            if self.cluster_loss_warmup_epochs
            else 1.0
        )
        return self.cluster_loss_weight * ramp

    def configure_optimizers(self):
        backbone = list(self.backbone.parameters()) + list(self.frontend.parameters())
        ids = {id(p) for p in backbone}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return torch.optim.AdamW(
            [{"params": backbone, "lr": self.lr * self.backbone_lr_mult}, {"params": rest, "lr": self.lr}],
            weight_decay=self.weight_decay,
        )
