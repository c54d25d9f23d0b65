"""Per-class error bars with 95% intervals, one panel per group of runs (e.g. per backbone).

Each run is one sample; a bar is the mean over the runs and its interval the 2.5-97.5 percentiles of
that mean over 2000 resamples of the runs, drawn within each stratum (e.g. a fold direction: two test
folds are different clips, so a resample keeps each stratum's run count).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def mean_interval(strata: list[np.ndarray], n_boot: int = 2000, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Mean over all runs ([runs, values] per stratum) and its 95% percentile interval, resampling runs
    within each stratum."""
    rng = np.random.default_rng(seed)
    mean = np.concatenate(strata).mean(0)
    draws = np.concatenate([a[rng.integers(0, len(a), size=(n_boot, len(a)))] for a in strata], axis=1)
    low, high = np.percentile(draws.mean(1), [2.5, 97.5], axis=0)
    return mean, low, high


def error_figure(
    panels: dict[str, dict[str, list[np.ndarray]]], labels: list[str], path: Path, ylabel: str
) -> Path:
    """A PNG at ``path``: per panel title, per method, bars of ``labels`` (the columns of each stratum's
    [runs, len(labels)] array) with their intervals; panels stacked, each with its legend beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # one colour per method in every panel, keyed by its name before any " (...)" note
    names = list(dict.fromkeys(m.split(" (")[0] for methods in panels.values() for m in methods))
    palette = plt.get_cmap("tab20" if len(names) > 10 else "tab10").colors
    color = {name: palette[i % len(palette)] for i, name in enumerate(names)}
    fig, axes = plt.subplots(len(panels), 1, figsize=(13, 4 * len(panels)), squeeze=False, sharey=True)
    for ax, (title, methods) in zip(axes[:, 0], panels.items()):
        width = 0.8 / len(methods)
        for i, (method, strata) in enumerate(methods.items()):
            mean, low, high = mean_interval(strata)
            x = np.arange(len(labels)) + (i - (len(methods) - 1) / 2) * width
            label = f"{method} ({sum(len(a) for a in strata)} runs)"
            ax.bar(x, mean, width, label=label, color=color[method.split(" (")[0]])
            ax.errorbar(x, mean, yerr=[mean - low, high - mean], fmt="none", ecolor="black", capsize=2)
        ax.set_xticks(np.arange(len(labels)), labels)
        ax.set_title(title)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # beside the bars
        ax.set_ylabel(ylabel)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
