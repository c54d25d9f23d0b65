"""Per-class error and the method comparison figure.

A class's error is ``1 - recall``; the headline "macro error" is their mean over classes,
and the comparison figure is the relative error reduction ``(err_base - err) / err_base``.
Every figure is derived from a confusion matrix (rows: true class, columns: predicted), by the
functions here: the training metrics, the experiment reports and the tests use the same ones.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.classification import MulticlassConfusionMatrix


def per_class_error_from_confusion(confusion: torch.Tensor) -> torch.Tensor:
    """``1 - recall`` per class; NaN for a class without clips (its error is not measured).

    Counts are divided in float32, or in the confusion matrix's own floating dtype (float64 for
    figures pooled over runs)."""
    confusion = torch.as_tensor(confusion)
    if not confusion.is_floating_point():
        confusion = confusion.float()
    return 1 - confusion.diagonal() / confusion.sum(1)


def per_class_f1_from_confusion(confusion: torch.Tensor) -> torch.Tensor:
    """``2 tp / (2 tp + fp + fn)`` per class; 0 for a class never true nor predicted."""
    tp = confusion.diagonal().float()
    fp, fn = confusion.sum(0).float() - tp, confusion.sum(1).float() - tp
    denom = 2 * tp + fp + fn
    return torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))


def macro_error(errors: torch.Tensor) -> torch.Tensor:
    """Mean of the per-class errors over the classes that have clips (non-NaN)."""
    return errors[~errors.isnan()].mean()


def relative_error_reduction(err_baseline: float, err_method: float) -> float:
    """``(err_baseline - err_method) / err_baseline``; NaN when the baseline makes no error."""
    return (err_baseline - err_method) / err_baseline if err_baseline > 0 else float("nan")


def report_table(metrics: dict[str, float], class_names: list[str], title: str) -> str:
    """A Markdown table of per-class error and F1 with the macro error and accuracy, from the
    ``{stage}/...``-less metric names ``ClassificationReport.compute`` returns."""
    lines = [f"| {title} | error (1 - recall) | F1 |", "|---|---|---|"]
    lines += [f"| {c} | {metrics[f'err_{c}']:.3f} | {metrics[f'f1_{c}']:.3f} |" for c in class_names]
    lines.append(f"| **macro** | {metrics['macro_err']:.3f} | accuracy {metrics['acc']:.3f} |")
    return "\n".join(lines)


class ClassificationReport(nn.Module):
    """Accumulates a confusion matrix; ``compute()`` gives macro error, accuracy, per-class error and F1.

    The one state (a torchmetrics confusion matrix) is summed across DDP ranks on ``compute()``.
    Compute at epoch end, log the returned dict, then ``reset()``.
    """

    def __init__(self, class_names: list[str]) -> None:
        super().__init__()
        self.class_names = list(class_names)
        self.confusion = MulticlassConfusionMatrix(len(self.class_names))

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.confusion.update(preds, target)

    def compute(self) -> dict[str, torch.Tensor]:
        confusion = self.confusion_matrix()
        err, f1 = per_class_error_from_confusion(confusion), per_class_f1_from_confusion(confusion)
        out = {"macro_err": macro_error(err), "acc": confusion.diagonal().sum().float() / confusion.sum()}
        for i, name in enumerate(self.class_names):
            out[f"err_{name}"] = err[i]
            out[f"f1_{name}"] = f1[i]
        return out

    def confusion_matrix(self) -> torch.Tensor:
        return self.confusion.compute()

    def reset(self) -> None:
        self.confusion.reset()
