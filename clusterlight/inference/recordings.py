"""Sound event detection in long recordings: sliding windows -> per-class score curves -> events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clusterlight.data.decode import decode
from clusterlight.detection import Event, median_filter, scores_to_events
from clusterlight.detection.events import per_class_values
from clusterlight.detection.plot import plot_detection
from clusterlight.inference.predict import Predictor
from clusterlight.inference.thresholds import thresholds_of
from clusterlight.inference.windows import windows
from clusterlight.labels import BACKGROUND


def _window_scores(
    predictor: Predictor, wave: np.ndarray, scores: Callable[[np.ndarray], np.ndarray] | None = None
) -> tuple[np.ndarray, float, float]:
    n, hop = predictor.n, predictor.hop
    if len(wave) > n:  # windows every hop from 0; the tail shorter than a window is not scored
        wave = wave[: n + (len(wave) - n) // hop * hop]
    if scores is None:
        probs, _ = predictor.window_outputs(wave)
    else:
        batches = windows(wave, n, hop, predictor.padding)
        probs = np.concatenate([scores(batches[i : i + 64]) for i in range(0, len(batches), 64)])
    return probs, hop / predictor.sample_rate, n / predictor.sample_rate


def score_curves(predictor: Predictor, path: str | Path) -> tuple[np.ndarray, float, float]:
    """Per-window class probabilities [w, classes] over a recording, the hop and the window (s)."""
    return _window_scores(predictor, decode(str(path), predictor.sample_rate))


@dataclass(frozen=True)
class Detection:
    """What detection saw in one recording. ``scores`` are the window probabilities
    ``[n_windows, n_classes]`` (window ``i`` covers ``[i * hop_s, i * hop_s + window_s)``) before the
    median filter; ``thresholds`` one per class (``nan`` for ``background``)."""

    path: Path
    wave: np.ndarray
    sample_rate: int
    class_names: list[str]
    scores: np.ndarray
    hop_s: float
    window_s: float
    median_filter: int
    thresholds: np.ndarray
    thresholds_source: str
    events: list[Event]

    @property
    def background(self) -> str | None:
        return BACKGROUND if BACKGROUND in self.class_names else None


def detect_recording(
    model,
    path: str | Path,
    hop_s: float | None = None,
    thresholds: float | dict | None = None,
    median_filter: int = 3,
    min_gap_s: float = 0.0,
    trim_s: float = 0.0,
    scores: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Detection:
    """Detection of one recording, with the score curves and thresholds behind its events
    (:func:`~clusterlight.inference.thresholds.thresholds_of` says which thresholds are used).
    ``trim_s`` shortens each event at both ends (rule 6 of :mod:`clusterlight.detection.events`;
    measure it on annotated validation recordings with :func:`clusterlight.detection.onset_lead`).
    ``scores`` replaces the model's scoring, as in
    :class:`~clusterlight.inference.streaming.StreamingDetector`: ``scores(windows [b, n] float32) ->
    probabilities [b, classes]`` (an :class:`~clusterlight.inference.onnx_model.OnnxModel`'s
    ``probabilities``, for example)."""
    predictor = Predictor(model, hop_s)
    wave = decode(str(path), predictor.sample_rate)
    window_scores, hop, window = _window_scores(predictor, wave, scores)
    chosen, source = thresholds_of(model, thresholds)
    background = BACKGROUND if BACKGROUND in predictor.class_names else None
    events = scores_to_events(
        window_scores,
        predictor.class_names,
        chosen,
        hop_s=hop,
        window_s=window,
        median_filter_length=median_filter,
        min_gap_s=min_gap_s,
        background=background,
        trim_s=trim_s,
    )
    return Detection(
        Path(path),
        wave,
        predictor.sample_rate,
        predictor.class_names,
        window_scores,
        hop,
        window,
        median_filter,
        per_class_values(chosen, predictor.class_names, background),
        source,
        events,
    )


def detect(
    model,
    path: str | Path,
    hop_s: float | None = None,
    thresholds: float | dict | None = None,
    median_filter: int = 3,
    min_gap_s: float = 0.0,
    trim_s: float = 0.0,
) -> list[Event]:
    """Events ``(onset, offset, label, score)`` in a recording. ``thresholds`` default to the
    checkpoint's (chosen on the validation split) when it has them, else 0.5 for every class."""
    return detect_recording(model, path, hop_s, thresholds, median_filter, min_gap_s, trim_s).events


@torch.no_grad()
def logmel(model, wave: np.ndarray) -> np.ndarray:
    """The model's own front end (eval mode) over a whole waveform: log-mel ``[n_mels, frames]``."""
    device = next(model.parameters()).device
    was_training = model.frontend.training
    model.frontend.eval()
    try:
        return model.frontend(torch.from_numpy(np.ascontiguousarray(wave))[None].to(device))[0].cpu().numpy()
    finally:
        model.frontend.train(was_training)


def plot(model, detection: Detection, path: str | Path) -> Path:
    """A PNG of ``detection`` (:func:`clusterlight.detection.plot.plot_detection`): the recording's
    log-mel spectrogram from the model's front end, the median-filtered score curves the thresholds
    were compared with, the thresholds and the events."""
    d = detection
    return plot_detection(
        path,
        logmel(model, d.wave),
        len(d.wave) / d.sample_rate,
        median_filter(d.scores, d.median_filter),
        d.class_names,
        d.thresholds,
        d.events,
        d.hop_s,
        d.window_s,
        title=f"{d.path.name}: {len(d.events)} events (thresholds: {d.thresholds_source})",
        background=d.background,
    )
