"""Per-class error and the method comparison figure.

A class's error is ``1 - recall``; the headline "macro error" is their mean over classes,
and the comparison figure is the relative error reduction ``(err_base - err) / err_base``.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassRecall,
)


def per_class_error(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``1 - recall`` per class (functional reference; a class absent from ``target`` gets NaN)."""
    hits = torch.bincount(target[preds == target], minlength=num_classes).float()
    support = torch.bincount(target, minlength=num_classes).float()
    return 1 - hits / support


def relative_error_reduction(err_baseline: float, err_method: float) -> float:
    """``(err_baseline - err_method) / err_baseline``; NaN when the baseline makes no error."""
    return (err_baseline - err_method) / err_baseline if err_baseline > 0 else float("nan")


class ClassificationReport(nn.Module):
    """Accumulates predictions; ``compute()`` gives macro error, accuracy, and per-class error and F1.

    The torchmetrics states are synchronised across DDP ranks on ``compute()``. Compute at
    epoch end, log the returned dict, then ``reset()``.
    """

    def __init__(self, class_names: list[str]) -> None:
        super().__init__()
        self.class_names = list(class_names)
        n = len(self.class_names)
        self.recall = MulticlassRecall(n, average=None)
        self.f1 = MulticlassF1Score(n, average=None)
        self.accuracy = MulticlassAccuracy(n, average="micro")
        self.confusion = MulticlassConfusionMatrix(n)

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        for metric in (self.recall, self.f1, self.accuracy, self.confusion):
            metric.update(preds, target)

    def compute(self) -> dict[str, torch.Tensor]:
        err = 1 - self.recall.compute()
        f1 = self.f1.compute()
        out = {"macro_err": err.mean(), "acc": self.accuracy.compute()}
        for i, name in enumerate(self.class_names):
            out[f"err_{name}"] = err[i]
            out[f"f1_{name}"] = f1[i]
        return out

    def confusion_matrix(self) -> torch.Tensor:
        return self.confusion.compute()

    def reset(self) -> None:
        for metric in (self.recall, self.f1, self.accuracy, self.confusion):
            metric.reset()
