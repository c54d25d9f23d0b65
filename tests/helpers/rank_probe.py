"""A test-only callback, importable by DDP worker processes: each rank writes what it holds."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import Callback


class RankProbe(Callback):
    """Saves ``rank<r>-<stage>.pt`` with the weights, the centroids and the logged metrics of each rank."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)

    def _dump(self, trainer, pl_module, stage: str) -> None:
        from clusterlight import ClusterCentroids

        tracker = next((c for c in trainer.callbacks if isinstance(c, ClusterCentroids)), None)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "weights": {k: v.detach().cpu() for k, v in pl_module.state_dict().items()},
                "centroids": None
                if tracker is None or tracker.centroids is None
                else tracker.centroids.cpu(),
                "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
                "world": trainer.world_size,
            },
            self.out_dir / f"rank{trainer.global_rank}-{stage}.pt",
        )

    def on_train_end(self, trainer, pl_module) -> None:
        self._dump(trainer, pl_module, "fit")

    def on_test_end(self, trainer, pl_module) -> None:
        self._dump(trainer, pl_module, "test")
