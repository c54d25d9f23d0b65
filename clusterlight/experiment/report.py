"""The comparison over seeds: summary statistics, relative error reductions, the results files (their
Markdown tables are rendered by :mod:`clusterlight.experiment.markdown`)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import OmegaConf

from clusterlight.data.atomic import atomic_file
from clusterlight.experiment.choice import ValidationChoice, choose_on_validation
from clusterlight.experiment.markdown import choice_note, markdown_table, results_page
from clusterlight.experiment.statistics import compare
from clusterlight.metrics import per_class_error_from_confusion, relative_error_reduction

__all__ = [
    "choice_note",  # rendered by experiment/markdown.py, importable from here as before
    "choice_record",
    "markdown_table",
    "pooled_errors",
    "results_dict",
    "summarize",
    "write_results",
]


def _stats(vals: list[float]) -> dict:
    return {
        "mean": statistics.fmean(vals),
        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
        "values": vals,
    }


def _mean_over(per_seed: dict[int, dict], seeds: list[int], k: str) -> float:
    return statistics.fmean(per_seed[s]["metrics"][k] for s in seeds)


def pooled_errors(confusions: list[list[list[int]]], class_names: list[str]) -> dict:
    """Per-class and macro error of the summed confusion matrices (rows: true class): over
    cross-validation folds, the error on every validation clip at once."""
    total = torch.tensor(confusions, dtype=torch.float64).sum(0)  # element-wise sum of the matrices
    errs = dict(zip((f"err_{c}" for c in class_names), per_class_error_from_confusion(total).tolist()))
    return {**errs, "macro_err": statistics.fmean(errs.values())}


def summarize(runs: dict[str, dict[int, dict]], class_names: list[str], reference: str) -> dict:
    """Mean and std over seeds of each error, and relative reductions against ``reference``, computed
    on the seeds a method shares with the reference (so a method run with fewer seeds is compared
    with the reference on the same ones)."""
    keys = [f"err_{c}" for c in class_names] + ["macro_err", "acc"]
    summary: dict[str, dict[str, Any]] = {}
    for method, per_seed in runs.items():
        summary[method] = {}
        for k in keys:
            vals = [r["metrics"][k] for r in per_seed.values()]
            summary[method][k] = _stats(vals)
        val = [r.get("selected_val_macro_err") for r in per_seed.values()]
        if val and None not in val:
            summary[method]["selected_val_macro_err"] = _stats(cast(list[float], val))  # no None in it
        confusions = [r["val"]["confusion"] for r in per_seed.values() if "val" in r]
        if confusions and len(confusions) == len(per_seed):
            summary[method]["val_pooled"] = pooled_errors(confusions, class_names)
    reductions: dict[str, dict[str, Any]] = {}
    for method in runs:
        if method == reference:
            continue
        seeds = sorted(set(runs[method]) & set(runs[reference]))  # paired: only the seeds both have
        if not seeds:
            continue
        reductions[method] = {
            k: relative_error_reduction(
                _mean_over(runs[reference], seeds, k), _mean_over(runs[method], seeds, k)
            )
            for k in keys
            if k != "acc"
        }
        reductions[method]["seeds"] = seeds
        reductions[method]["macro_err_per_seed"] = [
            relative_error_reduction(
                runs[reference][s]["metrics"]["macro_err"], runs[method][s]["metrics"]["macro_err"]
            )
            for s in seeds
        ]
    return {"summary": summary, "reduction": reductions}


def write_results(
    out: Path,
    exp,
    runs: dict,
    class_names: list[str],
    reference: str,
    overrides: dict | None = None,
    failed: dict | None = None,
    choice: ValidationChoice | None = None,
) -> dict:
    """Write ``results.json`` and ``results.md`` for the runs finished so far (called after every run);
    ``wall_s`` is the sum of their wall times. ``overrides``: the command line's ``--trainer.*`` etc.,
    which every run of these results has (recorded as ``overrides`` when there are any). ``failed``
    (``{method: {seed: {"stage", "error", ...}}}``): runs that failed, recorded as ``failed`` and shown
    as failed in the tables; every statistic is over finished runs only. ``choice``: a method chosen on
    validation (``clusterlight.experiment.choice``), compared under its own name like a method and
    recorded as ``choice``; ``runs`` keeps the real methods only."""
    result = results_dict(exp, runs, class_names, reference, overrides, failed, choice)
    with atomic_file(out / "results.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    with atomic_file(out / "results.md") as tmp:
        tmp.write_text(results_page(result))
    return result


def results_dict(
    exp,
    runs: dict,
    class_names: list[str],
    reference: str,
    overrides: dict | None = None,
    failed: dict | None = None,
    choice: ValidationChoice | None = None,
) -> dict:
    """What :func:`write_results` writes to ``results.json`` (same arguments): the finished runs by method
    and seed, their summary over seeds, the paired comparison against ``reference``, the validation
    choice, the failed runs, the experiment and the overrides. Keys are in the order of the file."""
    done = {m: dict(sorted(per.items())) for m, per in runs.items() if per}
    failed = {m: {str(s): f for s, f in sorted(per.items())} for m, per in (failed or {}).items() if per}
    result = {
        "name": exp.name,
        "seeds": sorted({s for per in done.values() for s in per}),
        "reference": reference,
        "classes": class_names,
        "wall_s": sum(r["wall_s"] for per in done.values() for r in per.values()),
    }
    compared = done
    if choice is not None:
        result["choice"] = choice_record(done, choice)
        if result["choice"]["chosen"] is not None:
            compared = {**done, choice.name: done[result["choice"]["chosen"]]}
    result.update(
        summarize(compared, class_names, reference) if reference in done else {"summary": {}, "reduction": {}}
    )
    if reference in done:  # paired intervals over seeds and test clips (experiment/statistics.py)
        result["comparison"] = compare(compared, reference, class_names)
    result["runs"] = {m: {str(s): r for s, r in per.items()} for m, per in done.items()}
    if failed:
        result["failed"] = failed
    result["experiment"] = OmegaConf.to_container(exp, resolve=True)
    if overrides:
        result["overrides"] = dict(overrides)
    return result


def choice_record(done: dict[str, dict[int, dict]], choice: ValidationChoice) -> dict:
    """``results.json``'s ``choice``: the candidate with the lowest mean validation macro error on the
    seeds they share (``choose_on_validation``), each candidate's mean, and those seeds."""
    chosen, means, shared = choose_on_validation(done, choice.among, choice.min_seeds)
    return {
        "name": choice.name,
        "among": list(choice.among),
        "min_seeds": choice.min_seeds,
        "chosen": chosen,
        "val_macro_err": means,
        "seeds": shared,
    }
