"""Focal loss (Lin et al., ICCV 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clusterlight.losses.classification import ClassificationLoss


def focal_term(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """``-(1 - p_t)^gamma * log p_t`` per clip [B] (plain cross-entropy at ``gamma = 0``)."""
    logp_t = F.log_softmax(logits.float(), dim=1).gather(1, target[:, None]).squeeze(1)
    return -((1 - logp_t.exp()) ** gamma) * logp_t


class FocalLoss(ClassificationLoss):
    """``-(1 - p_t)^gamma * log p_t``, averaged over the batch (no class weighting)."""

    def __init__(self, gamma: float = 2.0) -> None:
        super().__init__()
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_term(logits, target, self.gamma).mean()
