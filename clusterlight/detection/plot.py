"""A picture of what detection saw in one recording: the log-mel spectrogram, the per-class score
curves against their thresholds, and the detected events.

Two panels share the time axis: the spectrogram on top, the score curves below (each window's score
drawn at the window's centre, the curves the thresholds were compared with, i.e. after the median
filter), each class's threshold as a dashed line of its colour, and each detected event as a span
of its class's colour in both panels. The PNG is exactly ``size`` pixels (no tight bounding box), so
pictures of different recordings line up.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clusterlight.detection.events import Event, per_class_values
from clusterlight.labels import BACKGROUND

DEFAULT_SIZE = (1200, 600)
_DPI = 100


def plot_detection(
    path: str | Path,
    spectrogram,
    duration_s: float,
    scores,
    class_names: Sequence[str],
    thresholds,
    events: Sequence[Event],
    hop_s: float,
    window_s: float,
    title: str = "",
    background: str | None = BACKGROUND,
    size: tuple[int, int] = DEFAULT_SIZE,
) -> Path:
    """Write the PNG at ``path``; returns it.

    ``spectrogram``: log-mel ``[n_mels, frames]`` spanning ``duration_s`` seconds; ``scores``:
    ``[n_windows, n_classes]``, window ``i`` covering ``[i * hop_s, i * hop_s + window_s)``;
    ``thresholds``: anything :func:`~clusterlight.detection.events.per_class_values` takes; the
    ``background`` class is not drawn. ``size``: (width, height) in pixels.
    """
    spectrogram, scores = np.asarray(spectrogram), np.asarray(scores)
    _check_inputs(spectrogram, scores, class_names, duration_s, hop_s, window_s)
    thr = per_class_values(thresholds, class_names, background)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [c for c, name in enumerate(class_names) if name != background]
    colours = {class_names[c]: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(shown)}
    fig, (spec_ax, score_ax) = plt.subplots(
        2, 1, sharex=True, figsize=(size[0] / _DPI, size[1] / _DPI), dpi=_DPI, height_ratios=(1, 1)
    )
    _draw_spectrogram(spec_ax, spectrogram, duration_s, title)
    centres = np.arange(len(scores)) * hop_s + window_s / 2
    for c in shown:
        name = class_names[c]
        score_ax.plot(centres, scores[:, c], color=colours[name], lw=1.2, label=name)
        score_ax.axhline(thr[c], color=colours[name], ls="--", lw=1.0)
    for event in events:
        colour = colours.get(event.label, "grey")
        for ax in (spec_ax, score_ax):
            ax.axvspan(event.onset, event.offset, color=colour, alpha=0.25, lw=0)
    _label_scores(score_ax, duration_s, len(shown))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path


def _check_inputs(spectrogram, scores, class_names, duration_s: float, hop_s: float, window_s: float) -> None:
    if spectrogram.ndim != 2:
        raise ValueError(f"spectrogram must be [n_mels, frames], got shape {spectrogram.shape}")
    if scores.ndim != 2 or scores.shape[1] != len(class_names):
        raise ValueError(
            f"scores must be [n_windows, {len(class_names)}] for classes {list(class_names)}, "
            f"got shape {scores.shape}"
        )
    if duration_s <= 0 or hop_s <= 0 or window_s <= 0:
        raise ValueError(
            f"duration_s, hop_s and window_s must be positive: {duration_s}, {hop_s}, {window_s}"
        )


def _draw_spectrogram(ax, spectrogram, duration_s: float, title: str) -> None:
    ax.imshow(
        spectrogram,
        origin="lower",
        aspect="auto",
        extent=(0.0, duration_s, 0, spectrogram.shape[0]),
        cmap="magma",
        interpolation="nearest",
    )
    ax.set_ylabel("mel band")
    ax.set_title(title or "detection")


def _label_scores(ax, duration_s: float, n_shown: int) -> None:
    ax.set_xlim(0.0, duration_s)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("score (dashed: threshold)")
    ax.legend(loc="upper right", fontsize=8, ncol=max(1, n_shown))
