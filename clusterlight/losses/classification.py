"""Classification losses. Each may depend on the training class counts, given once by ``set_class_counts``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clusterlight.init_args import RecordsInitArgs


class ClassificationLoss(RecordsInitArgs, nn.Module):
    """Base: ``forward(logits, target)``; ``set_class_counts`` is called with the training counts
    before fitting."""

    class_counts: torch.Tensor  # a buffer (registered in __init__)

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("class_counts", torch.zeros(0), persistent=False)

    def set_class_counts(self, counts: torch.Tensor) -> None:
        self.class_counts = counts.float().to(self.class_counts.device)

    def _require_counts(self) -> torch.Tensor:
        if self.class_counts.numel() == 0:
            raise RuntimeError(
                f"{type(self).__name__} needs the training class counts: call set_class_counts() first"
            )
        return self.class_counts


class CrossEntropy(ClassificationLoss):
    """Plain cross-entropy."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target)


def inverse_frequency_weights(counts: torch.Tensor) -> torch.Tensor:
    """Weights proportional to 1 / count, normalised to mean 1."""
    w = 1.0 / counts.float().clamp_min(1)
    return w * len(w) / w.sum()


class WeightedCrossEntropy(ClassificationLoss):
    """Cross-entropy with class weights inversely proportional to the training counts (mean 1): the
    paper's baseline."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits.float(), target, weight=inverse_frequency_weights(self._require_counts())
        )
