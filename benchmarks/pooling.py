"""The comparison pooled over strata, e.g. the two fold directions of a benchmark (train on fold 1 and
test on fold 2, and the other way round): every (stratum, seed) run counts once, pairs are formed per
(stratum, seed), and every resample stays inside each stratum.

Each stratum has its own test clips (another fold), so clips pair only within a stratum: a bootstrap
resample draws, inside every stratum, its shared seeds and its test clips as
:func:`clusterlight.experiment.statistics.relative_reduction_ci` does, and the pooled error is the mean
over the (stratum, seed) runs, i.e. the strata's errors weighted by their numbers of shared seeds. The
seed-to-seed spread pooled over strata is the within-stratum one, ``sqrt(sum_d (n_d - 1) s_d^2 /
sum_d (n_d - 1))``, so that a difference between strata (fold 2 is harder than fold 1) never passes for
seed noise. The result has the shape of :func:`~clusterlight.experiment.statistics.compare`'s, so
:func:`~clusterlight.experiment.markdown.comparison_markdown` prints it; run keys are ``"<stratum>/<seed>"``.

Used by benchmarks/rare4.py, which imports it from beside itself (``python benchmarks/rare4.py`` has
``benchmarks/`` on ``sys.path``).
"""

from __future__ import annotations

import numpy as np

from clusterlight.experiment.markdown import comparison_markdown
from clusterlight.experiment.statistics import (
    ErrorSamples,
    _float,
    _interval,
    _with_ratio_interval,
    error_samples,
    paired_differences,
    reduction_entries,
    share_better,
)


def _key(stratum: str, seed) -> str:
    return f"{stratum}/{seed}"


def pooled_reduction_ci(
    pairs: dict[str, tuple[dict[int, dict], dict[int, dict]]],
    class_names: list[str],
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """Relative error reduction per class and macro of the errors pooled over strata, with a bootstrap
    interval stratified by stratum.

    ``pairs`` maps each stratum to ``(reference runs, method runs)`` by seed. Per stratum the errors and
    their paired resamples are those of ``relative_reduction_ci`` (one generator, seeded ``seed``, drawn
    stratum after stratum); the pooled errors are their means weighted by the strata's numbers of shared
    seeds, in the point estimate and in every resample. A stratum without a shared seed is left out. A
    class without test clips in some stratum has no pooled error (None). Returns what
    ``relative_reduction_ci`` returns, with ``"seeds"`` as ``"<stratum>/<seed>"`` keys, ``"strata"``
    (``{stratum: shared seeds}``), ``"n_clips"`` summed over strata, and ``"resampled"`` followed by
    ``", within each stratum"``; no interval unless every stratum has one. Raises ``ValueError`` when no
    stratum has a shared seed.
    """
    rng = np.random.default_rng(seed)
    per: dict[str, ErrorSamples] = {}
    for stratum, (ref, method) in pairs.items():
        if set(ref) & set(method):
            per[stratum] = error_samples(ref, method, class_names, n_boot, rng)
    if not per:
        raise ValueError(f"the method and the reference share no seed in any stratum of {sorted(pairs)}")
    weights = np.array([len(s.seeds) for s in per.values()], dtype=np.float64)
    weights /= weights.sum()

    def pooled(arrays: list[np.ndarray]) -> np.ndarray:
        return sum(w * a for w, a in zip(weights, arrays))

    has_samples = all(s.samples_ref is not None for s in per.values())
    samples = ErrorSamples(
        seeds=[_key(d, s) for d, e in per.items() for s in e.seeds],
        est_ref=pooled([s.est_ref for s in per.values()]),
        est_method=pooled([s.est_method for s in per.values()]),
        samples_ref=pooled([s.samples_ref for s in per.values()]) if has_samples else None,
        samples_method=pooled([s.samples_method for s in per.values()]) if has_samples else None,
        resampled=" / ".join(sorted({s.resampled for s in per.values()})) + ", within each stratum",
        n_clips=None
        if any(s.n_clips is None for s in per.values())
        else sum(s.n_clips for s in per.values()),
    )
    out: dict = {
        "seeds": samples.seeds,
        "strata": {d: list(s.seeds) for d, s in per.items()},
        "level": float(level),
        "n_boot": int(n_boot),
        "n_clips": samples.n_clips,
        "resampled": samples.resampled,
    }
    notes = [f"{d}: {s.note}" for d, s in per.items() if s.note]
    if notes:
        out["note"] = "; ".join(notes)
    out.update(reduction_entries(samples, class_names, level))
    return out


def _pooled_std(groups: list[np.ndarray]) -> np.ndarray:
    """Within-group standard deviation pooled over ``groups`` (each ``(..., n_d)``, resamples in front):
    ``sqrt(sum_d (n_d - 1) var_d / sum_d (n_d - 1))`` over the groups with two values or more."""
    groups = [g for g in groups if g.shape[-1] > 1]
    dof = sum(g.shape[-1] - 1 for g in groups)
    return np.sqrt(sum((g.shape[-1] - 1) * g.var(axis=-1, ddof=1) for g in groups) / dof)


def pooled_std_with_ci(
    values: dict[str, list[float]], n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> dict:
    """Seed-to-seed standard deviation pooled within strata (``values``: per stratum, one value per
    seed), with a percentile bootstrap interval that resamples each stratum's values within it.
    ``{"std", "low", "high", "n"}`` (``n``: all values); std and interval None when no stratum has two
    values."""
    arrays = [np.asarray(v, dtype=np.float64) for v in values.values()]
    n = int(sum(a.size for a in arrays))
    if not any(a.size > 1 for a in arrays):
        return {"std": None, "low": None, "high": None, "n": n}
    rng = np.random.default_rng(seed)
    drawn = [a[rng.integers(0, a.size, size=(n_boot, a.size))] for a in arrays]
    low, high = _interval(_pooled_std(drawn), level)
    return {"std": _float(_pooled_std(arrays)), "low": low, "high": high, "n": n}


def pooled_std_ratio_ci(
    ref: dict[str, dict[int, float]],
    method: dict[str, dict[int, float]],
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """``pooled std(method) / pooled std(ref)`` over the seeds the two share within each stratum, with
    a paired bootstrap interval (per stratum the same drawn seeds for both). Resamples where the
    reference's pooled std is 0 are dropped and counted. ``{"ratio", "low", "high", "excludes_one",
    "dropped", "seeds"}`` (``seeds``: ``"<stratum>/<seed>"``), as
    :func:`~clusterlight.experiment.statistics.std_ratio_ci` returns."""
    shared = {d: sorted(set(ref[d]) & set(method[d])) for d in ref if d in method}
    shared = {d: seeds for d, seeds in shared.items() if seeds}
    keys = [_key(d, s) for d, seeds in shared.items() for s in seeds]
    out = {"ratio": None, "low": None, "high": None, "excludes_one": False, "dropped": 0, "seeds": keys}
    if not any(len(seeds) > 1 for seeds in shared.values()):
        return out
    r = [np.array([float(ref[d][s]) for s in seeds]) for d, seeds in shared.items()]
    m = [np.array([float(method[d][s]) for s in seeds]) for d, seeds in shared.items()]
    if _pooled_std(r) > 0:
        out["ratio"] = _float(_pooled_std(m) / _pooled_std(r))
    rng = np.random.default_rng(seed)
    idx = [rng.integers(0, a.size, size=(n_boot, a.size)) for a in r]
    s_ref = _pooled_std([a[i] for a, i in zip(r, idx)])
    s_met = _pooled_std([a[i] for a, i in zip(m, idx)])
    return _with_ratio_interval(out, s_met, s_ref, level)


def compare_pooled(
    strata: dict[str, dict[str, dict[int, dict]]],
    reference: str,
    class_names: list[str],
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """Every method against ``reference``, pooled over ``strata`` (``{stratum: {method: {seed: run}}}``,
    runs as the experiment records them): the shape of
    :func:`~clusterlight.experiment.statistics.compare`'s result, plus ``"strata"`` (their names), with
    seeds as ``"<stratum>/<seed>"`` keys: ``"std"`` is :func:`pooled_std_with_ci`, ``"reduction"``
    :func:`pooled_reduction_ci`, ``"std_ratio"`` :func:`pooled_std_ratio_ci`, and ``"macro_err_diff"``
    and ``"share_better"`` are over the (stratum, seed) pairs."""
    if not any(reference in runs for runs in strata.values()):
        raise ValueError(f"reference {reference!r} has no runs in any stratum of {sorted(strata)}")
    methods_in_order = list(dict.fromkeys(m for runs in strata.values() for m in runs))
    macro = {  # method -> stratum -> seed -> macro error, strata where the method has runs
        m: {
            d: {s: float(r["metrics"]["macro_err"]) for s, r in runs[m].items()}
            for d, runs in strata.items()
            if runs.get(m)
        }
        for m in methods_in_order
    }
    kw = {"n_boot": n_boot, "level": level, "seed": seed}

    def flat(m: str) -> dict[tuple[str, int], float]:
        return {(d, s): v for d, per in macro[m].items() for s, v in per.items()}

    methods = {}
    for m in methods_in_order:
        entry: dict = {
            "seeds": [_key(d, s) for d, s in sorted(flat(m))],
            "std": pooled_std_with_ci({d: list(per.values()) for d, per in macro[m].items()}, **kw),
        }
        if m != reference:
            diffs = paired_differences(flat(reference), flat(m))
            entry["shared_seeds"] = [_key(*k) for k in diffs]
            entry["macro_err_diff"] = {_key(*k): v for k, v in diffs.items()}
            entry["share_better"] = share_better(flat(reference), flat(m))
            pairs = {
                d: (runs[reference], runs[m])
                for d, runs in strata.items()
                if runs.get(reference) and runs.get(m)
            }
            entry["reduction"] = pooled_reduction_ci(pairs, class_names, **kw) if diffs else None
            entry["std_ratio"] = pooled_std_ratio_ci(macro[reference], macro[m], **kw) if diffs else None
        methods[m] = entry
    return {
        "reference": reference,
        "classes": list(class_names),
        "strata": list(strata),
        "level": float(level),
        "n_boot": int(n_boot),
        "methods": methods,
    }


def pooled_markdown(comparison: dict, class_names: list[str]) -> str:
    """:func:`~clusterlight.experiment.markdown.comparison_markdown` of :func:`compare_pooled`'s result,
    with a line saying how the strata were pooled."""
    strata = ", ".join(comparison["strata"])
    return comparison_markdown(comparison, class_names) + (
        f"\nPooled over {strata}: errors are means over every (stratum, seed) run; pairs and resamples "
        "stay inside each stratum (its own seeds and test clips); the seed std is the within-stratum std "
        "pooled over strata; seeds are counted as (stratum, seed) pairs."
    )
