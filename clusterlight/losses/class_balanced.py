"""Class-balanced loss with effective numbers (Cui et al., CVPR 2019)."""

from __future__ import annotations

import torch

from clusterlight.losses.classification import ClassificationLoss
from clusterlight.losses.focal import focal_term


def effective_number_weights(counts: torch.Tensor, beta: float) -> torch.Tensor:
    """``w_c = (1 - beta) / (1 - beta^n_c)``, normalised to sum to the number of classes."""
    w = (1 - beta) / (1 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts.double()))
    return (w * len(w) / w.sum()).float()


class ClassBalancedLoss(ClassificationLoss):
    """Cross-entropy (``gamma = 0``) or focal loss weighted by inverse effective numbers of samples."""

    def __init__(self, beta: float = 0.999, gamma: float = 0.0) -> None:
        super().__init__()
        if not 0 <= beta < 1:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        self.beta, self.gamma = beta, gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        w = effective_number_weights(self._require_counts(), self.beta).to(logits.device)[target]
        per_clip = focal_term(logits, target, self.gamma)
        return (w * per_clip).sum() / w.sum()
