"""Balanced softmax (Ren et al., NeurIPS 2020) and the logit-adjusted loss (Menon et al., ICLR 2021)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clusterlight.losses.classification import ClassificationLoss


class LogitAdjustedLoss(ClassificationLoss):
    """Cross-entropy on ``logits + tau * log(prior)`` in training; prediction uses the raw logits.

    ``tau = 1`` is balanced softmax; other values are Menon et al.'s logit-adjusted loss.
    """

    def __init__(self, tau: float = 1.0) -> None:
        super().__init__()
        self.tau = tau

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        counts = self._require_counts().to(logits.device)
        log_prior = torch.log(counts.clamp_min(1) / counts.sum())
        return F.cross_entropy(logits.float() + self.tau * log_prior, target)
