"""LDAM loss with deferred re-weighting (Cao et al., NeurIPS 2019)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clusterlight.losses.class_balanced import effective_number_weights
from clusterlight.losses.classification import ClassificationLoss


class LDAMLoss(ClassificationLoss):
    """Cross-entropy on ``scale * (logits - Delta_y on the true class)`` with
    ``Delta_c proportional to n_c^(-1/4)``.

    The largest margin is ``max_margin``. From epoch ``drw_epoch`` on (deferred re-weighting),
    clips are weighted by inverse effective numbers with ``drw_beta``; ``None`` disables it.
    The paper applies ``scale`` (30) to cosine logits; with this library's plain linear head
    the default is 1.
    """

    def __init__(
        self,
        max_margin: float = 0.5,
        scale: float = 1.0,
        drw_epoch: int | None = None,
        drw_beta: float = 0.9999,
    ) -> None:
        super().__init__()
        self.max_margin, self.scale, self.drw_epoch, self.drw_beta = max_margin, scale, drw_epoch, drw_beta
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def margins(self) -> torch.Tensor:
        m = self._require_counts().clamp_min(1) ** -0.25
        return m * (self.max_margin / m.max())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        shifted = (
            logits.float()
            - F.one_hot(target, logits.shape[1]) * self.margins().to(logits.device)[target][:, None]
        )
        weight = None
        if self.drw_epoch is not None and self.epoch >= self.drw_epoch:
            weight = effective_number_weights(self._require_counts(), self.drw_beta).to(logits.device)
        return F.cross_entropy(self.scale * shifted, target, weight=weight)
