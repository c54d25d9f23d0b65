"""Sound event detection on a live stream: the events of offline :func:`~clusterlight.inference.detect`,
each returned as soon as it can no longer change.

Offline detection median-filters and merges over a whole score curve. :class:`StreamingDetector` keeps
only what the next decisions need:

- **one window of samples**: window ``i`` covers samples ``[i * hop, i * hop + n)`` and is scored as
  soon as its last sample arrives (windows start at 0, every hop, as offline);
- **the median filter's state**: the last ``L`` raw window scores (and the first one): the filtered
  score of window ``i`` is the median of windows ``i - L//2 .. i + L//2`` with indices clipped to the
  curve (the offline edge rule: the curve extended by repeating its first / last value), so it is known
  once window ``i + L//2`` is scored, or at :meth:`~StreamingDetector.flush` for the last ones;
- **the open events**: per class, the runs of active windows not yet final. A group of runs is final
  once the earliest window a next run could start at is too far to merge with it (its gap is above
  ``1e-9`` and not below ``min_gap_s``, the offline merging rule).

At :meth:`~StreamingDetector.flush` the tail shorter than a window is dropped, as offline (a stream
shorter than one window is scored once, padded, as offline). The events of a stream, whatever its
chunks, sorted by ``(onset, class order)``, equal offline ``detect``'s on the same samples.

Scoring is one injectable callable, ``scores(windows [b, n] float32) -> probabilities [b, classes]``:
the model's own by default: a checkpoint's (:func:`torch_scores`, the computation of
:meth:`~clusterlight.inference.predict.Predictor.window_outputs`), or an exported ONNX file's
(:class:`~clusterlight.inference.onnx_model.OnnxModel`, numpy and onnxruntime only: this module
imports torch only to score with a checkpoint).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from clusterlight.detection.events import Event, _trimmed, per_class_values
from clusterlight.inference.onnx_model import OnnxModel
from clusterlight.inference.thresholds import thresholds_of
from clusterlight.inference.windows import windows
from clusterlight.labels import BACKGROUND

Scores = Callable[[np.ndarray], np.ndarray]


def torch_scores(model, batch_size: int = 64) -> Scores:
    """Class probabilities of a batch of windows ``[b, n]`` with ``model``: the same calls as
    :meth:`Predictor.window_outputs <clusterlight.inference.predict.Predictor.window_outputs>`."""
    import torch

    @torch.no_grad()
    def scores(batch: np.ndarray) -> np.ndarray:
        device = next(model.parameters()).device
        out = []
        for start in range(0, len(batch), batch_size):
            chunk = batch[start : start + batch_size]
            z = model.features(torch.from_numpy(np.ascontiguousarray(chunk)).to(device))
            out.append(torch.softmax(model.scores_from_features(z).float(), dim=1).cpu().numpy())
        return np.concatenate(out)

    return scores


class _Group:
    """An event being built: its runs of active windows ``(first, last)`` and their filtered scores."""

    def __init__(self, first: int) -> None:
        self.runs = [[first, first]]
        self.values: list[float] = []

    @property
    def last(self) -> int:
        return self.runs[-1][1]


class StreamingDetector:
    """Events of a stream of samples, pushed in chunks of any length.

    ``model``: a loaded checkpoint (:func:`clusterlight.load`), an exported ONNX file (its path, or an
    :class:`~clusterlight.inference.onnx_model.OnnxModel`: no torch needed), or anything with a ``card``
    (class names, ``audio`` sample rate / duration / padding, optional ``thresholds``) when ``scores``
    is given.
    The settings are offline :func:`~clusterlight.inference.detect`'s: ``hop_s`` (default half a
    clip), ``thresholds`` (default the checkpoint's, else 0.5: :func:`thresholds_of`),
    ``median_filter`` (odd length in windows, or one per class), ``min_gap_s`` and ``trim_s``.
    ``scores`` replaces the model's scoring: ``scores(windows [b, n] float32) -> [b, classes]``.
    """

    def __init__(
        self,
        model,
        hop_s: float | None = None,
        thresholds: float | dict | None = None,
        median_filter: int | Sequence[int] = 3,
        min_gap_s: float = 0.0,
        trim_s: float = 0.0,
        scores: Scores | None = None,
    ) -> None:
        if isinstance(model, (str, Path)):
            model = OnnxModel(model)
        card = model.card
        audio = card["audio"]
        self.class_names = list(card["class_names"])
        self.sample_rate = int(audio["sample_rate"])
        self.padding = audio["padding"] or "loop"
        # the window and hop in samples, as Predictor computes them
        self.n = int(round(self.sample_rate * audio["duration"]))
        self.hop = int(round(self.sample_rate * (hop_s or audio["duration"] / 2)))
        if self.n < 1 or self.hop < 1:
            raise ValueError(f"window and hop must be at least one sample, got {self.n}, {self.hop}")
        self.hop_s, self.window_s = self.hop / self.sample_rate, self.n / self.sample_rate
        self.background = BACKGROUND if BACKGROUND in self.class_names else None
        chosen, self.thresholds_source = thresholds_of(model, thresholds)
        self.thresholds = per_class_values(chosen, self.class_names, self.background)
        lengths = np.broadcast_to(np.asarray(median_filter, dtype=int), (len(self.class_names),))
        for k in lengths:
            if k < 1 or k % 2 == 0:
                raise ValueError(f"median filter length must be odd and >= 1, got {int(k)}")
        self.halves = [int(k) // 2 for k in lengths]
        self.median_filter = median_filter
        if not trim_s >= 0:
            raise ValueError(f"trim_s must be >= 0, got {trim_s}")
        self.min_gap_s, self.trim_s = float(min_gap_s), float(trim_s)
        if scores is None:
            scores = model.probabilities if isinstance(model, OnnxModel) else torch_scores(model)
        self.scores = scores
        self._classes = [c for c, name in enumerate(self.class_names) if name != self.background]
        self._lookahead = max(self.halves)
        # samples of the next window (from sample next_start on), and how many to skip (hop > n)
        self._buf = np.zeros(self.n, dtype=np.float32)
        self._fill = 0
        self._skip = 0
        self.samples = 0  # received so far
        self.scored = 0  # windows scored so far
        self._first_raw: np.ndarray | None = None
        self._raw: deque[np.ndarray] = deque(maxlen=2 * self._lookahead + 1)  # raw rows, last is scored-1
        self.filtered = 0  # windows whose filtered score is known
        self._open: dict[int, _Group | None] = {c: None for c in self._classes}
        self._ended = False

    # ---- input ---------------------------------------------------------------------------------
    def push(self, chunk) -> list[Event]:
        """Take the next samples (1-D, at :attr:`sample_rate`); the events that became final with
        them, sorted by onset then class order."""
        if self._ended:
            raise RuntimeError("push after flush: start a new StreamingDetector for a new stream")
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 1:
            raise ValueError(f"push takes 1-D mono samples, got shape {chunk.shape}")
        self.samples += len(chunk)
        ready = []
        pos = 0
        while pos < len(chunk):
            if self._skip:
                take = min(self._skip, len(chunk) - pos)
                self._skip -= take
                pos += take
                continue
            take = min(self.n - self._fill, len(chunk) - pos)
            self._buf[self._fill : self._fill + take] = chunk[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == self.n:
                ready.append(self._buf.copy())
                if self.hop < self.n:
                    self._buf[: self.n - self.hop] = self._buf[self.hop :]
                    self._fill = self.n - self.hop
                else:
                    self._fill, self._skip = 0, self.hop - self.n
        if not ready:
            return []
        return self._take_scores(np.asarray(self.scores(np.stack(ready)), dtype=np.float64))

    def flush(self) -> list[Event]:
        """End the stream: the remaining events (the tail shorter than a window is not scored; a
        stream shorter than one window is scored once, padded as offline)."""
        if self._ended:
            return []
        self._ended = True
        out = []
        if self.scored == 0 and self.samples > 0:  # shorter than a window: one padded window
            wave = self._buf[: self._fill].copy()
            out += self._take_scores(
                np.asarray(self.scores(windows(wave, self.n, self.hop, self.padding)), dtype=np.float64)
            )
        while self.filtered < self.scored:  # the right edge: indices clipped to the last window
            out += self._decide(self.filtered, self._filtered_row(self.filtered, self.scored - 1))
        for c in self._classes:
            if self._open[c] is not None:
                out.append(self._close(c))
        return _sorted(out, self.class_names)

    @property
    def time_s(self) -> float:
        """Stream time: the samples received so far, in seconds."""
        return self.samples / self.sample_rate

    # ---- scores -> filtered scores -> events -----------------------------------------------------
    def _take_scores(self, rows: np.ndarray) -> list[Event]:
        if rows.ndim != 2 or rows.shape[1] != len(self.class_names):
            raise ValueError(f"scores must return [windows, {len(self.class_names)}], got {rows.shape}")
        out = []
        for row in rows:
            if self._first_raw is None:
                self._first_raw = row
            self._raw.append(row)
            self.scored += 1
            # window i's filtered score needs windows up to i + lookahead
            while self.filtered + self._lookahead < self.scored:
                out += self._decide(self.filtered, self._filtered_row(self.filtered, None))
        return _sorted(out, self.class_names)

    def _raw_row(self, j: int) -> np.ndarray:
        if j <= 0 and self._first_raw is not None:
            return self._first_raw
        return self._raw[j - (self.scored - len(self._raw))]

    def _filtered_row(self, i: int, last: int | None) -> np.ndarray:
        """Window ``i``'s median-filtered scores; ``last``: the last window (indices clipped to it)."""
        out = self._raw_row(i).copy()
        for c, half in enumerate(self.halves):
            if half == 0:
                continue
            idx = range(i - half, i + half + 1)
            values = [self._raw_row(j if last is None else min(j, last))[c] for j in idx]
            out[c] = np.median(np.asarray(values))
        return out

    def _decide(self, i: int, row: np.ndarray) -> list[Event]:
        """Window ``i``'s filtered scores are known: extend, open or close each class's event."""
        self.filtered = i + 1
        out = []
        for c in self._classes:
            group = self._open[c]
            if row[c] >= self.thresholds[c]:
                if group is None:
                    self._open[c] = group = _Group(i)
                elif group.last == i - 1:
                    group.runs[-1][1] = i
                else:  # a new run close enough to merge (else the group would have been closed)
                    group.runs.append([i, i])
                group.values.append(float(row[c]))
            elif group is not None and not self._mergeable(i + 1 - group.last):
                out.append(self._close(c))  # no run starting at i + 1 or later can join it
        return out

    def _mergeable(self, windows_apart: int) -> bool:
        gap = windows_apart * self.hop_s - self.window_s  # as scores_to_events computes it
        return gap <= 1e-9 or gap < self.min_gap_s

    def _close(self, c: int) -> Event:
        group = self._open[c]
        if group is None:
            raise RuntimeError(f"no open event of class {self.class_names[c]!r} to close")
        self._open[c] = None
        onset, offset = _trimmed(
            0.0 + group.runs[0][0] * self.hop_s,
            0.0 + group.runs[-1][1] * self.hop_s + self.window_s,
            self.trim_s,
            self.hop_s,
        )
        return Event(onset, offset, self.class_names[c], float(np.max(np.asarray(group.values))))


def _sorted(events: list[Event], class_names: list[str]) -> list[Event]:
    order: Mapping[str, int] = {name: c for c, name in enumerate(class_names)}
    return sorted(events, key=lambda e: (e.onset, order[e.label]))
