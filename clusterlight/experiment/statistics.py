"""Uncertainty of the comparison over seeds: paired differences, bootstrap confidence intervals of the
relative error reduction (over seeds and test clips) and of the seed-to-seed spread.

A run result is the dict ``clusterlight experiment`` records per (method, seed): ``{"metrics":
{"err_<class>": ..., "macro_err": ...}, ...}`` and optionally ``"predictions"`` and ``"labels"`` (one
int per test clip; the same clips in the same order for every method and seed, so clip ``i`` is
paired across runs). Errors are ``1 - recall`` per class; macro error is their mean over the classes
that have clips. The relative error reduction of a method against a reference is
``(err_ref - err_method) / err_ref`` (positive = fewer errors), with both errors averaged over the
seeds the two share, as in :func:`clusterlight.experiment.report.summarize`.

Intervals are percentile bootstrap intervals, deterministic for a given ``seed``
(``numpy.random.default_rng(seed)``). Undefined figures (NaN: a reference without errors, a class
without clips, fewer than two seeds for a standard deviation) come back as ``None`` so that every
result is plain JSON. This module only computes; :mod:`clusterlight.experiment.markdown` renders
the tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

_CHUNK_CELLS = 4_000_000  # resamples x clips per vectorised block (about 32 MB of float64)


def _float(x) -> float | None:
    """A plain float, or None for NaN / inf."""
    x = float(x)
    return x if math.isfinite(x) else None


def _shared(ref: dict, method: dict) -> list:
    return sorted(set(ref) & set(method))


def _bootstrap_counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n)`` int counts: how often each of ``n`` items is drawn in each resample of ``n``
    draws with replacement."""
    draws = rng.integers(0, n, size=(n_boot, n)) + n * np.arange(n_boot)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n)


def _interval(samples: np.ndarray, level: float) -> tuple[float | None, float | None]:
    """Percentile interval of the finite ``samples``; ``(None, None)`` when there are none."""
    if samples.size == 0:
        return None, None
    alpha = (1 - level) / 2
    low, high = np.quantile(samples, [alpha, 1 - alpha])
    return float(low), float(high)


def paired_differences(ref: dict[int, float], method: dict[int, float]) -> dict[int, float]:
    """``method[s] - ref[s]`` for each seed ``s`` both have (sorted by seed); e.g. per-seed macro
    error, where a negative difference means the method made fewer errors on that seed."""
    return {s: float(method[s]) - float(ref[s]) for s in _shared(ref, method)}


def share_better(ref: dict[int, float], method: dict[int, float]) -> float | None:
    """Share of the shared seeds on which the method's error is lower than the reference's (a tie
    counts half); None when no seed is shared."""
    diffs = list(paired_differences(ref, method).values())
    if not diffs:
        return None
    return float(sum(1.0 if d < 0 else 0.5 if d == 0 else 0.0 for d in diffs) / len(diffs))


def stratified_clip_counts(labels, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n_clips)`` int counts of a stratified bootstrap of the test clips: in each resample
    the clips of every true class are drawn with replacement as many times as the class has clips, so
    each class keeps its count (row sums over a class's clips equal its size)."""
    labels = np.asarray(labels)
    counts = np.zeros((n_boot, labels.size), dtype=np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        counts[:, idx] = _bootstrap_counts(idx.size, n_boot, rng)
    return counts


def _clip_arrays(ref_runs: dict, method_runs: dict, seeds: list) -> tuple[np.ndarray, ...] | str:
    """``(labels, wrong_ref, wrong_method)`` (wrong: ``(seeds, clips)`` 0/1) when every run on
    ``seeds`` has per-clip predictions for the same labels; otherwise why not (a string)."""
    runs = [r[s] for r in (ref_runs, method_runs) for s in seeds]
    if not all("predictions" in r and "labels" in r for r in runs):
        return "no per-clip predictions in every run"
    labels = np.asarray(runs[0]["labels"], dtype=np.int64)
    for r in runs:
        if len(r["predictions"]) != labels.size or not np.array_equal(np.asarray(r["labels"]), labels):
            return "per-clip labels differ between runs"
    if labels.size == 0:
        return "no test clips"

    def wrong(per_seed: dict) -> np.ndarray:
        return np.array([np.asarray(per_seed[s]["predictions"]) != labels for s in seeds], dtype=np.float64)

    return labels, wrong(ref_runs), wrong(method_runs)


def _reduction_entry(estimate_ref, estimate_method, samples_ref, samples_method, level) -> dict:
    """One key's estimate and interval; resamples with a zero (or undefined) reference error dropped."""
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = (estimate_ref - estimate_method) / estimate_ref if estimate_ref > 0 else math.nan
        entry = {"estimate": _float(estimate)}
        if samples_ref is None:
            return {**entry, "low": None, "high": None, "excludes_zero": False, "dropped": 0}
        ok = np.isfinite(samples_ref) & np.isfinite(samples_method) & (samples_ref > 0)
        red = (samples_ref[ok] - samples_method[ok]) / samples_ref[ok]
    low, high = _interval(red, level)
    excludes = low is not None and high is not None and (low > 0 or high < 0)
    return {**entry, "low": low, "high": high, "excludes_zero": bool(excludes), "dropped": int((~ok).sum())}


@dataclass
class ErrorSamples:
    """Per-class and macro errors (last column) of a reference and a method on their shared seeds: the
    point estimates ``est_*`` ``(classes + 1,)`` on all the data and the paired bootstrap resamples
    ``samples_*`` ``(n_boot, classes + 1)`` (None when nothing can be resampled). ``resampled``, ``n_clips``
    and ``note`` say what was resampled, as :func:`relative_reduction_ci` reports them."""

    seeds: list
    est_ref: np.ndarray
    est_method: np.ndarray
    samples_ref: np.ndarray | None
    samples_method: np.ndarray | None
    resampled: str
    n_clips: int | None
    note: str | None = None


def error_samples(
    ref_runs: dict, method_runs: dict, class_names: list[str], n_boot: int, rng: np.random.Generator
) -> ErrorSamples:
    """The errors :func:`relative_reduction_ci` compares, with their paired bootstrap resamples (drawn
    from ``rng``; see there for what is resampled). Raises ``ValueError`` when the two share no seed."""
    seeds = _shared(ref_runs, method_runs)
    if not seeds:
        raise ValueError("the method and the reference share no seed")
    n_seeds, n_classes = len(seeds), len(class_names)
    clips = _clip_arrays(ref_runs, method_runs, seeds)

    if isinstance(clips, str):
        full = [f"err_{c}" for c in class_names] + ["macro_err"]
        per_seed = [
            np.array([[float(runs[s]["metrics"][k]) for k in full] for s in seeds])
            for runs in (ref_runs, method_runs)
        ]
        est_ref, est_method = (e.mean(0) for e in per_seed)
        if n_seeds == 1:
            return ErrorSamples(seeds, est_ref, est_method, None, None, "none", None, clips)
        weights = _bootstrap_counts(n_seeds, n_boot, rng) / n_seeds
        samples_ref, samples_method = (weights @ e for e in per_seed)  # (n_boot, keys)
        return ErrorSamples(seeds, est_ref, est_method, samples_ref, samples_method, "seeds", None, clips)

    labels, wrong_ref, wrong_met = clips
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels outside 0..{n_classes - 1}")
    onehot = (labels[:, None] == np.arange(n_classes)[None, :]).astype(np.float64)  # (clips, classes)
    sizes = onehot.sum(0)
    present = sizes > 0

    def errors(wrong_mean: np.ndarray, clip_counts: np.ndarray | None) -> np.ndarray:
        """Per-class errors and macro, ``(..., classes + 1)``, from per-clip error rates."""
        w = wrong_mean if clip_counts is None else wrong_mean * clip_counts
        with np.errstate(divide="ignore", invalid="ignore"):
            per_class = (w @ onehot) / sizes
        macro = per_class[..., present].mean(-1, keepdims=True)
        return np.concatenate([per_class, macro], axis=-1)

    chunk = max(1, _CHUNK_CELLS // labels.size)
    s_ref, s_met = [], []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        # (b, seeds): the share of each seed among the drawn ones
        seed_w = _bootstrap_counts(n_seeds, b, rng) / n_seeds if n_seeds > 1 else np.ones((b, 1))
        clip_w = stratified_clip_counts(labels, b, rng)  # (b, clips)
        s_ref.append(errors(seed_w @ wrong_ref, clip_w))
        s_met.append(errors(seed_w @ wrong_met, clip_w))
    empty = np.empty((0, n_classes + 1))
    return ErrorSamples(
        seeds,
        errors(wrong_ref.mean(0), None),
        errors(wrong_met.mean(0), None),
        np.concatenate(s_ref) if s_ref else empty,
        np.concatenate(s_met) if s_met else empty,
        "seeds and clips" if n_seeds > 1 else "clips",
        int(labels.size),
        None if n_seeds > 1 else "one shared seed: only the test clips are resampled",
    )


def reduction_entries(samples: ErrorSamples, class_names: list[str], level: float) -> dict:
    """``{"err_<class>": entry, ..., "macro_err": entry}`` (see :func:`relative_reduction_ci`)."""
    out = {}
    s_ref, s_method = samples.samples_ref, samples.samples_method  # both None or both arrays
    for j, k in enumerate([f"err_{c}" for c in class_names] + ["macro_err"]):
        pair = (None, None) if s_ref is None or s_method is None else (s_ref[:, j], s_method[:, j])
        out[k] = _reduction_entry(samples.est_ref[j], samples.est_method[j], pair[0], pair[1], level)
    return out


def relative_reduction_ci(
    ref_runs: dict[int, dict],
    method_runs: dict[int, dict],
    class_names: list[str],
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """Relative error reduction ``(err_ref - err_method) / err_ref`` per class and macro, errors
    averaged over the shared seeds, with a paired percentile bootstrap interval.

    Each resample draws the shared seeds with replacement and, when every run has per-clip
    ``predictions`` and the same ``labels``, the test clips with replacement, stratified by true class
    (every class keeps its count); the same drawn seeds and clips serve both methods. Per-class error
    is recomputed on the drawn clips and averaged over the drawn seeds; macro error is the mean over
    the classes that have clips. Without per-clip predictions only seeds are resampled (errors from
    ``metrics``); with one shared seed only clips are, and without clips either there is no interval.

    Returns ``{"err_<class>": entry, ..., "macro_err": entry, "resampled": "seeds and clips" | "seeds"
    | "clips" | "none", "seeds": [...], "n_clips": int | None, "level", "n_boot"}`` (and ``"note"``:
    why clips were not resampled, when they were not), each entry ``{"estimate", "low", "high",
    "excludes_zero", "dropped"}``: the point estimate on all the data, the interval (None without one),
    whether it excludes zero, and how many resamples were dropped because the reference made no error
    on them. Raises ``ValueError`` when the two share no seed.
    """
    samples = error_samples(ref_runs, method_runs, class_names, n_boot, np.random.default_rng(seed))
    out: dict = {"seeds": list(samples.seeds), "level": float(level), "n_boot": int(n_boot)}
    if samples.note is not None:
        out["note"] = samples.note
    out.update(n_clips=samples.n_clips, resampled=samples.resampled)
    out.update(reduction_entries(samples, class_names, level))
    return out


def std_with_ci(values: list[float], n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """Seed-to-seed sample standard deviation (ddof=1) of ``values`` with a percentile bootstrap
    interval over seeds (values drawn with replacement). ``{"std", "low", "high", "n"}``; std and
    interval None with fewer than two values."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return {"std": None, "low": None, "high": None, "n": int(x.size)}
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, x.size, size=(n_boot, x.size))].std(axis=1, ddof=1)
    low, high = _interval(samples, level)
    return {"std": _float(x.std(ddof=1)), "low": low, "high": high, "n": int(x.size)}


def std_ratio_ci(
    ref: dict[int, float],
    method: dict[int, float],
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """``std(method) / std(ref)`` (ddof=1) over the shared seeds with a paired percentile bootstrap
    interval (the same drawn seeds for both). Resamples where the reference's std is 0 are dropped and
    counted. ``{"ratio", "low", "high", "excludes_one", "dropped", "seeds"}``; ratio None with fewer
    than two shared seeds or a reference without spread, interval None without valid resamples."""
    seeds = _shared(ref, method)
    out: dict[str, Any] = {
        "ratio": None,
        "low": None,
        "high": None,
        "excludes_one": False,
        "dropped": 0,
        "seeds": seeds,
    }
    if len(seeds) < 2:
        return out
    r = np.array([float(ref[s]) for s in seeds])
    m = np.array([float(method[s]) for s in seeds])
    if r.std(ddof=1) > 0:
        out["ratio"] = _float(m.std(ddof=1) / r.std(ddof=1))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(seeds), size=(n_boot, len(seeds)))
    return _with_ratio_interval(out, m[idx].std(axis=1, ddof=1), r[idx].std(axis=1, ddof=1), level)


def _with_ratio_interval(out: dict, s_method: np.ndarray, s_ref: np.ndarray, level: float) -> dict:
    """``out`` with the percentile interval of the resampled std ratios ``s_method / s_ref``; the
    resamples where the reference's std is 0 are dropped and counted."""
    ok = s_ref > 0
    low, high = _interval(s_method[ok] / s_ref[ok], level)
    out.update(low=low, high=high, dropped=int((~ok).sum()))
    out["excludes_one"] = bool(low is not None and high is not None and (low > 1 or high < 1))
    return out


def compare(
    runs: dict[str, dict[int, dict]],
    reference: str,
    class_names: list[str],
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """Every method against ``reference``: ``{"reference", "classes", "level", "n_boot", "methods":
    {method: ...}}`` where each method has ``"seeds"`` (all its seeds) and ``"std"``
    (:func:`std_with_ci` of its macro error over them), and each method but the reference also
    ``"shared_seeds"``, ``"macro_err_diff"`` (per shared seed, as a string key, method minus reference
    macro error), ``"share_better"`` (of the shared seeds, macro error), ``"reduction"``
    (:func:`relative_reduction_ci`) and ``"std_ratio"`` (:func:`std_ratio_ci` of macro error) --
    the last four None without a shared seed. Plain JSON types throughout."""
    if reference not in runs:
        raise ValueError(f"reference {reference!r} is not among the methods {sorted(runs)}")
    macro = {m: {s: float(r["metrics"]["macro_err"]) for s, r in per.items()} for m, per in runs.items()}
    kw: dict[str, Any] = {"n_boot": n_boot, "level": level, "seed": seed}
    methods = {}
    for m, per_seed in runs.items():
        seeds = sorted(per_seed)
        entry: dict = {"seeds": seeds, "std": std_with_ci([macro[m][s] for s in seeds], **kw)}
        if m != reference:
            shared = _shared(runs[reference], per_seed)
            entry["shared_seeds"] = shared
            diffs = paired_differences(macro[reference], macro[m])
            entry["macro_err_diff"] = {str(s): d for s, d in diffs.items()}
            entry["share_better"] = share_better(macro[reference], macro[m])
            entry["reduction"] = (
                relative_reduction_ci(runs[reference], per_seed, class_names, **kw) if shared else None
            )
            entry["std_ratio"] = std_ratio_ci(macro[reference], macro[m], **kw) if shared else None
        methods[m] = entry
    return {
        "reference": reference,
        "classes": list(class_names),
        "level": float(level),
        "n_boot": int(n_boot),
        "methods": methods,
    }
