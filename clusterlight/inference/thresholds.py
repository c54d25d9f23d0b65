"""Which detection thresholds a model uses, and where they come from (no torch needed)."""

from __future__ import annotations

DEFAULT_THRESHOLD = 0.5


def thresholds_of(model, thresholds: float | dict | None = None) -> tuple[float | dict, str]:
    """The thresholds detection uses and where they come from: ``thresholds`` when given
    (``"given"``), else the checkpoint's, chosen on the validation split (``"checkpoint"``), else
    0.5 for every class (``"default 0.5"``: the checkpoint has none). ``model`` is anything with a
    model ``card`` (a loaded checkpoint, an :class:`~clusterlight.inference.onnx_model.OnnxModel`)."""
    if thresholds is not None:
        return thresholds, "given"
    stored = getattr(model, "card", {}).get("thresholds")
    if stored:
        return stored, "checkpoint"
    return DEFAULT_THRESHOLD, f"default {DEFAULT_THRESHOLD}"
