import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix

from clusterlight.metrics import (
    ClassificationReport,
    per_class_error_from_confusion,
    relative_error_reduction,
)


def _reference(preds, target, n):
    """numpy reference of recall, F1 and accuracy."""
    rec, f1 = [], []
    for c in range(n):
        tp = np.sum((preds == c) & (target == c))
        fn = np.sum((preds != c) & (target == c))
        fp = np.sum((preds == c) & (target != c))
        rec.append(tp / (tp + fn))
        f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return np.array(rec), np.array(f1), np.mean(preds == target)


def test_report_matches_numpy_reference():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 4, 300)
    preds = np.where(rng.random(300) < 0.6, target, rng.integers(0, 4, 300))
    report = ClassificationReport(["a", "b", "c", "d"])
    for chunk in np.array_split(np.arange(300), 7):
        report.update(torch.from_numpy(preds[chunk]), torch.from_numpy(target[chunk]))
    out = report.compute()
    rec, f1, acc = _reference(preds, target, 4)
    for i, name in enumerate("abcd"):
        assert float(out[f"err_{name}"]) == pytest.approx(1 - rec[i], abs=1e-6)
        assert float(out[f"f1_{name}"]) == pytest.approx(f1[i], abs=1e-6)
    assert float(out["macro_err"]) == pytest.approx(np.mean(1 - rec), abs=1e-6)
    assert float(out["acc"]) == pytest.approx(acc, abs=1e-6)
    cm = report.confusion_matrix().numpy()
    assert cm.sum() == 300 and cm[1, 2] == np.sum((target == 1) & (preds == 2))
    report.reset()
    report.update(torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert float(report.compute()["err_a"]) == 0.0


def test_functional_per_class_error():
    confusion = multiclass_confusion_matrix(torch.tensor([0, 0, 1, 2, 2]), torch.tensor([0, 1, 1, 2, 0]), 3)
    assert confusion.tolist() == [[1, 0, 1], [1, 1, 0], [0, 0, 1]]
    err = per_class_error_from_confusion(confusion)
    assert err.tolist() == pytest.approx([0.5, 0.5, 0.0])
    absent = per_class_error_from_confusion(
        multiclass_confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 0]), 3)
    )
    assert absent[0].item() == pytest.approx(0.5) and absent[1:].isnan().all()


def test_relative_error_reduction():
    assert relative_error_reduction(0.4, 0.3) == pytest.approx(0.25)
    assert relative_error_reduction(0.2, 0.3) == pytest.approx(-0.5)
    assert np.isnan(relative_error_reduction(0.0, 0.1))
