"""From per-window class scores to sound events: thresholds, median filtering, merging.

Pure numpy functions around a sliding-window classifier. The input is a score curve per class,
``scores[i, c]`` for window ``i`` covering ``[i * hop_s, i * hop_s + window_s)`` seconds of the
recording (``start_s`` shifts the origin). The output is a list of :class:`Event`.

The rule, per class ``c`` other than ``background``:

1. **Median filter** (optional, ``median_filter=k``, ``k`` odd): each window's score becomes the
   median of the ``k`` windows centred on it, the curve extended at both ends by repeating its
   first / last value. A median commutes with a threshold, so this is the usual majority vote on the
   binary decisions, applied to the scores.
2. **Threshold**: a window is active when its (filtered) score is ``>= threshold[c]``.
3. **Runs**: each run of consecutive active windows is one event: onset = start of its first
   window, offset = end of its last window.
4. **Gaps**: events of the same class whose gap ``next.onset - previous.offset`` is below
   ``min_gap_s`` are merged; events that touch or overlap (gap <= 0, as happens when windows overlap
   and one window between two runs is inactive) are always merged, so the events of one class never
   overlap.
5. **Score**: the event's score is the ``max`` (default) or ``mean`` of the filtered scores of its
   active windows (the inactive windows of a merged gap are not counted).
6. **Trim** (optional, ``trim_s``): the event is shortened by ``trim_s`` at both ends (to one hop
   around its middle when it is shorter than that). A window classifier fires as soon as its window
   holds enough of an event, so a run of active windows starts before the event and ends after it,
   by about the window length minus the part it needs to see; the 500 ms onset collar of event-based
   scoring does not forgive that. The trim is measured on annotated validation recordings
   (:func:`clusterlight.detection.calibration.onset_lead`), never on the recordings scored.

Events are returned sorted by onset, then by class order.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from clusterlight.labels import BACKGROUND


class Event(NamedTuple):
    """One sound event, times in seconds. ``score`` is the detector's confidence (``nan`` for references)."""

    onset: float
    offset: float
    label: str
    score: float = float("nan")


def _check_scores(scores, class_names: Sequence[str]) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != len(class_names):
        raise ValueError(
            f"scores must be [n_windows, n_classes={len(class_names)}] for classes {list(class_names)}, "
            f"got shape {scores.shape}"
        )
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"class_names has duplicates: {list(class_names)}")
    return scores


def _event_classes(class_names: Sequence[str], background: str | None) -> list[int]:
    return [c for c, name in enumerate(class_names) if name != background]


def per_class_values(
    values: float | Mapping[str, float] | Sequence[float] | np.ndarray,
    class_names: Sequence[str],
    background: str | None = BACKGROUND,
    what: str = "threshold",
) -> np.ndarray:
    """``values`` as one float per class: a scalar for every class, a dict by class name (every class
    but ``background`` required; unknown names are an error) or a sequence in class order."""
    out = np.full(len(class_names), np.nan)
    if isinstance(values, Mapping):
        unknown = sorted(set(values) - set(class_names))
        if unknown:
            raise ValueError(f"{what} given for unknown classes {unknown}; classes are {list(class_names)}")
        missing = [
            class_names[c] for c in _event_classes(class_names, background) if class_names[c] not in values
        ]
        if missing:
            raise ValueError(f"no {what} given for classes {missing}")
        for name, v in values.items():
            out[list(class_names).index(name)] = float(v)
        return out
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        out[:] = float(arr)
        return out
    if arr.shape != (len(class_names),):
        raise ValueError(
            f"{what} must be a scalar, a dict or {len(class_names)} values, got shape {arr.shape}"
        )
    return arr.copy()


def median_filter(scores, length: int | Sequence[int] | np.ndarray = 1) -> np.ndarray:
    """Median over ``length`` windows (odd; 1 = no filter) centred on each window, per class column.

    ``length`` is one int for every class or one per class. The ends are padded by repeating the first
    and last value, so a curve keeps its length and a constant curve is unchanged.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [n_windows, n_classes], got shape {scores.shape}")
    lengths = np.broadcast_to(np.asarray(length, dtype=int), (scores.shape[1],))
    out = scores.copy()
    if len(scores) == 0:
        return out
    for c, k in enumerate(lengths):
        if k < 1 or k % 2 == 0:
            raise ValueError(f"median filter length must be odd and >= 1, got {int(k)}")
        if k == 1:
            continue
        half = int(k) // 2
        padded = np.pad(scores[:, c], half, mode="edge")
        out[:, c] = np.median(np.lib.stride_tricks.sliding_window_view(padded, int(k)), axis=1)
    return out


def _runs(active: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) window index of every run of True."""
    if not active.any():
        return []
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


def _trimmed(onset: float, offset: float, trim: float, shortest: float) -> tuple[float, float]:
    """``[onset + trim, offset - trim]``, or ``shortest`` long around the middle when that is shorter."""
    if offset - onset - 2 * trim >= shortest:
        return onset + trim, offset - trim
    middle = (onset + offset) / 2
    return middle - shortest / 2, middle + shortest / 2


def scores_to_events(
    scores,
    class_names: Sequence[str],
    thresholds: float | Mapping[str, float] | Sequence[float] | np.ndarray,
    hop_s: float,
    window_s: float,
    median_filter_length: int | Sequence[int] = 1,
    min_gap_s: float = 0.0,
    background: str | None = BACKGROUND,
    score: str = "max",
    start_s: float = 0.0,
    trim_s: float = 0.0,
) -> list[Event]:
    """Events ``(onset, offset, label, score)`` from window scores [n_windows, n_classes], by the rule
    in the module docstring. ``thresholds``: a scalar, a dict by class name or one value per class; the
    ``background`` column (if present) never yields events and needs no threshold."""
    scores = _check_scores(scores, class_names)
    if hop_s <= 0 or window_s <= 0:
        raise ValueError(f"hop_s and window_s must be positive, got {hop_s}, {window_s}")
    if score not in ("max", "mean"):
        raise ValueError(f"score must be 'max' or 'mean', got {score!r}")
    if not trim_s >= 0:
        raise ValueError(f"trim_s must be >= 0, got {trim_s}")
    thr = per_class_values(thresholds, class_names, background)
    filtered = median_filter(scores, median_filter_length)
    reduce = np.max if score == "max" else np.mean
    events: list[tuple[float, int, Event]] = []
    for c in _event_classes(class_names, background):
        groups: list[list[tuple[int, int]]] = []
        for first, last in _runs(filtered[:, c] >= thr[c]):
            if groups:
                gap = (first - groups[-1][-1][1]) * hop_s - window_s
                if gap <= 1e-9 or gap < min_gap_s:  # touching (up to rounding), overlapping or close
                    groups[-1].append((first, last))
                    continue
            groups.append([(first, last)])
        for runs in groups:
            onset, offset = _trimmed(
                start_s + runs[0][0] * hop_s, start_s + runs[-1][1] * hop_s + window_s, trim_s, hop_s
            )
            values = np.concatenate([filtered[a : b + 1, c] for a, b in runs])
            events.append((onset, c, Event(onset, offset, class_names[c], float(reduce(values)))))
    events.sort(key=lambda e: (e[0], e[1]))
    return [e for _, _, e in events]


def choose_thresholds(
    scores,
    labels,
    class_names: Sequence[str],
    background: str | None = BACKGROUND,
    default: float = 0.5,
) -> dict[str, float]:
    """Per-class thresholds maximising the window-level F1 of ``score >= threshold`` on labelled windows.

    ``labels``: one class index per window ([n_windows] ints) or a multi-hot matrix [n_windows, n_classes].
    For each class but ``background``, every distinct decision is tried: with the distinct scores
    ``v_1 > v_2 > ... > v_m``, "the windows scoring ``>= v_k`` are positive" for every ``k``. Among the
    ``k`` of maximal F1 the smallest (the highest threshold, fewest detections) wins, and the threshold
    returned is the midpoint ``(v_k + v_{k+1}) / 2`` (``v_m`` for ``k = m``), which gives the same
    decisions on these windows with a margin on both sides. A class with no positive window (F1 is 0 at
    any threshold) gets ``default``.
    """
    scores = _check_scores(scores, class_names)
    labels = np.asarray(labels)
    if labels.ndim == 1:
        if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise ValueError(f"labels must be class indices in [0, {len(class_names)})")
        onehot = np.zeros(scores.shape, dtype=bool)
        onehot[np.arange(len(labels)), labels.astype(int)] = True
        labels = onehot
    if labels.shape != scores.shape:
        raise ValueError(f"labels must be [n_windows] or {list(scores.shape)}, got shape {labels.shape}")
    labels = labels.astype(bool)
    out = {}
    for c in _event_classes(class_names, background):
        y, s = labels[:, c], scores[:, c]
        n_pos = int(y.sum())
        if n_pos == 0:
            out[class_names[c]] = float(default)
            continue
        order = np.argsort(-s, kind="stable")
        s_sorted, tp = s[order], np.cumsum(y[order])
        last_of_value = np.flatnonzero(np.append(s_sorted[1:] != s_sorted[:-1], True))
        n_predicted = last_of_value + 1
        f1 = 2 * tp[last_of_value] / (n_predicted + n_pos)
        k = int(np.argmax(f1))  # first maximum: the highest threshold
        v = s_sorted[last_of_value]
        out[class_names[c]] = float(v[k] if k + 1 == len(v) else (v[k] + v[k + 1]) / 2)
    return out


def write_events_csv(path: str | Path, events_by_file: Mapping[str, Iterable[Event]]) -> Path:
    """Write ``file,onset,offset,event_label,score`` rows (the annotation CSV's columns, plus the score)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "onset", "offset", "event_label", "score"])
        for file, events in events_by_file.items():
            for e in events:
                writer.writerow([file, float(e.onset), float(e.offset), e.label, float(e.score)])
    return path


def read_events_csv(path: str | Path, files: Iterable[str] = ()) -> dict[str, list[Event]]:
    """Events by file from a CSV with ``file,onset,offset,event_label`` (and optionally ``score``) columns,
    such as ``annotations.csv``. ``files`` are included with no events when the CSV has none for them
    (a recording without events still counts its detections as insertions)."""
    out: dict[str, list[Event]] = {f: [] for f in files}
    with Path(path).open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"file", "onset", "offset", "event_label"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        for row in reader:
            score = (float(row["score"]),) if row.get("score") not in (None, "") else ()
            out.setdefault(row["file"], []).append(
                Event(float(row["onset"]), float(row["offset"]), row["event_label"], *score)
            )
    for events in out.values():
        events.sort(key=lambda e: e.onset)
    return out
