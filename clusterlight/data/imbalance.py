"""Subsampling a training split to a target class ratio."""

from __future__ import annotations

import math

import numpy as np

from clusterlight.data.records import DataError


def ratio_counts(available: dict[str, int], ratio: dict[str, float]) -> dict[str, int]:
    """The largest per-class counts proportional to ``ratio`` that ``available`` can supply.

    With scale ``s = min_c available[c] / ratio[c]``, class ``c`` keeps ``floor(s * ratio[c])``
    clips (a tiny epsilon absorbs float error), so the limiting class keeps all of its clips.
    """
    unknown = sorted(set(ratio) - set(available))
    missing = sorted(set(available) - set(ratio))
    if unknown or missing:
        raise DataError(
            f"class_ratio must name exactly the classes {sorted(available)}; "
            f"unknown: {unknown}, missing: {missing}"
        )
    bad = {c: r for c, r in ratio.items() if not (isinstance(r, (int, float)) and math.isfinite(r) and r > 0)}
    if bad:
        raise DataError(f"class_ratio values must be positive numbers, got {bad}")
    empty = [c for c, n in available.items() if n == 0]
    if empty:
        raise DataError(f"class_ratio cannot be met: class(es) {empty} have no training clips")
    scale = min(available[c] / ratio[c] for c in ratio)
    counts = {c: int(math.floor(scale * ratio[c] + 1e-9)) for c in ratio}
    zero = [c for c, n in counts.items() if n == 0]
    if zero:
        raise DataError(
            f"class_ratio {ratio} is impossible with training counts {available}: "
            f"class(es) {zero} would get 0 clips"
        )
    return counts


def subsample_to_ratio(
    labels: list[str], ratio: dict[str, float], seed: int, classes: list[str] | None = None
) -> np.ndarray:
    """Indices (sorted) of a seeded random subset of ``labels`` following ``ratio``.

    ``classes`` (default: the labels present) is the full class list the ratio must name.
    """
    labels_arr = np.asarray(labels)
    available = {c: int((labels_arr == c).sum()) for c in (classes or sorted(set(labels)))}
    counts = ratio_counts(available, ratio)
    rng = np.random.default_rng(seed)
    keep = [
        rng.choice(np.flatnonzero(labels_arr == c), size=n, replace=False) for c, n in sorted(counts.items())
    ]
    return np.sort(np.concatenate(keep))
