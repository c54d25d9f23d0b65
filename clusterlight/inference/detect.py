"""Sound event detection in long recordings: sliding windows -> per-class score curves -> events."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clusterlight.data.audio import decode
from clusterlight.detection import Event, scores_to_events
from clusterlight.inference.predict import Predictor


def score_curves(predictor: Predictor, path: str | Path) -> tuple[np.ndarray, float, float]:
    """Per-window class probabilities [w, classes] over a recording, the hop and the window (s)."""
    wave = decode(str(path), predictor.sample_rate)
    n, hop = predictor.n, predictor.hop
    if len(wave) > n:  # windows every hop from 0; the tail shorter than a window is not scored
        wave = wave[: n + (len(wave) - n) // hop * hop]
    probs, _ = predictor.window_outputs(wave)
    return probs, hop / predictor.sample_rate, n / predictor.sample_rate


def detect(
    model,
    path: str | Path,
    hop_s: float | None = None,
    thresholds: float | dict | None = None,
    median_filter: int = 3,
    min_gap_s: float = 0.0,
) -> list[Event]:
    """Events ``(onset, offset, label, score)`` in a recording. ``thresholds`` default to the
    checkpoint's (chosen on the validation split) when it has them, else 0.5 for every class."""
    predictor = Predictor(model, hop_s)
    scores, hop, window = score_curves(predictor, path)
    if thresholds is None:
        thresholds = model.card.get("thresholds") or 0.5
    background = "background" if "background" in predictor.class_names else None
    return scores_to_events(
        scores,
        predictor.class_names,
        thresholds,
        hop_s=hop,
        window_s=window,
        median_filter_length=median_filter,
        min_gap_s=min_gap_s,
        background=background,
    )
