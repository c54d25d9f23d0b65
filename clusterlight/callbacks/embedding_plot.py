"""A picture of the embedding: a 2-D PCA of validation embeddings coloured by class."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from clusterlight import distributed
from clusterlight.callbacks.centroids import ClusterCentroids
from clusterlight.trainer_attrs import callbacks_of

log = logging.getLogger(__name__)


def pca_2d(x: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Project ``x`` (and ``others`` with the same basis) onto the top two principal axes of ``x``."""
    mean = x.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(x - mean, full_matrices=False)
    basis = v[:2].T
    return [(t - mean) @ basis for t in (x, *others)]


class EmbeddingPlot(Callback):
    """Saves ``<log_dir>/embeddings/epoch_NNN.png`` at validation epoch ends and logs it to the logger.

    Centroids (from a ClusterCentroids callback, when present) are drawn as black crosses.
    """

    def __init__(self, every_n_epochs: int = 1, max_points: int = 3000) -> None:
        self.every_n_epochs, self.max_points = every_n_epochs, max_points
        self._z: list[torch.Tensor] = []
        self._y: list[torch.Tensor] = []
        self.last_path: Path | None = None

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._z, self._y = [], []

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if (
            sum(len(z) for z in self._z) < self.max_points
            and isinstance(outputs, dict)
            and "embeddings" in outputs
        ):
            self._z.append(outputs["embeddings"].float().cpu())
            self._y.append(outputs["labels"].cpu())

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Every rank takes part in the collectives (gathering the points, resolving ``log_dir``);
        only rank 0 draws and writes: no collective may run inside a rank-zero-only path."""
        if trainer.sanity_checking or trainer.current_epoch % self.every_n_epochs:
            return
        local = (torch.cat(self._z), torch.cat(self._y)) if self._z else None
        parts = [p for p in distributed.all_gather_objects(local) if p is not None]
        folder = Path(trainer.log_dir or trainer.default_root_dir) / "embeddings"
        if parts and trainer.is_global_zero:
            z, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
            self._draw(trainer, pl_module, z[: self.max_points], y[: self.max_points], folder)

    def _draw(self, trainer: Trainer, pl_module: LightningModule, z, y, folder: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        tracker = next(
            (c for c in callbacks_of(trainer) if isinstance(c, ClusterCentroids) and c.ready), None
        )
        # ready: the centroids are there
        cents = (
            tracker.centroids.float().cpu()
            if tracker and tracker.centroids is not None
            else torch.zeros(0, z.shape[1])
        )
        z2, c2 = pca_2d(z, cents)
        fig, ax = plt.subplots(figsize=(5, 5))
        for k, name in enumerate(cast(list[str], pl_module.class_names)):
            pts = z2[y == k]
            ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.6, label=name)
        if len(c2):
            ax.scatter(c2[:, 0], c2[:, 1], marker="x", c="black", s=40, label="centroids")
        ax.set_title(f"validation embeddings (PCA), epoch {trainer.current_epoch}")
        ax.legend(fontsize=7, markerscale=2)
        folder.mkdir(parents=True, exist_ok=True)
        self.last_path = folder / f"epoch_{trainer.current_epoch:03d}.png"
        fig.savefig(self.last_path, dpi=100, bbox_inches="tight")
        for logger in trainer.loggers:
            experiment = cast(Any, logger).experiment  # each logger class has its own
            if hasattr(experiment, "add_figure"):  # TensorBoard
                experiment.add_figure("embeddings/pca", fig, global_step=trainer.global_step)
            elif hasattr(logger, "log_image"):  # W&B
                logger.log_image(key="embeddings/pca", images=[str(self.last_path)], step=trainer.global_step)
        plt.close(fig)
