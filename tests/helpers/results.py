"""Run results as ``clusterlight experiment`` records them, built from predictions by hand (no training)."""

from __future__ import annotations

import numpy as np

CLASSES = ["a", "b"]


def run(preds, labels, class_names=CLASSES, with_clips=True) -> dict:
    """A run result as the experiment records it, metrics computed from the predictions."""
    preds, labels = np.asarray(preds), np.asarray(labels)
    errs = {f"err_{c}": float((preds[labels == i] != i).mean()) for i, c in enumerate(class_names)}
    macro, acc = float(np.mean(list(errs.values()))), float((preds == labels).mean())
    r = {"metrics": {**errs, "macro_err": macro, "acc": acc}, "confusion": []}
    if with_clips:
        r.update(predictions=[int(p) for p in preds], labels=[int(t) for t in labels])
    return r
