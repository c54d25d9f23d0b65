"""The comparison over seeds: summary statistics, relative error reductions, the tables, results files."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch
from omegaconf import OmegaConf

from clusterlight.data.atomic import atomic_file
from clusterlight.experiment.choice import ValidationChoice, choose_on_validation
from clusterlight.experiment.statistics import compare
from clusterlight.experiment.statistics import markdown as comparison_markdown
from clusterlight.metrics import per_class_error_from_confusion, relative_error_reduction


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
    summary = {}
    for method, per_seed in runs.items():
        summary[method] = {}
        for k in keys:
            vals = [r["metrics"][k] for r in per_seed.values()]
            summary[method][k] = _stats(vals)
        val = [r.get("selected_val_macro_err") for r in per_seed.values()]
        if val and None not in val:
            summary[method]["selected_val_macro_err"] = _stats(val)
        confusions = [r["val"]["confusion"] for r in per_seed.values() if "val" in r]
        if confusions and len(confusions) == len(per_seed):
            summary[method]["val_pooled"] = pooled_errors(confusions, class_names)
    reductions = {}
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


def markdown_table(result: dict, class_names: list[str], reference: str) -> str:
    """Error per class and macro (mean ± std over seeds) per method; then the paired comparison against
    ``reference`` (``result["comparison"]``: relative error reductions with 95% intervals from a
    bootstrap over seeds and test clips, seed spread with its interval and the ratio to the reference's,
    the share of seeds a method beats the reference on, the per-seed paired differences).

    Failed runs (``result["failed"]``) are never averaged in: when there are any, the first table
    gets a ``failed`` column (how many seeds failed, and which), a method whose every seed failed
    shows ``failed`` in each cell, and a list under the tables gives each failure's stage and error."""
    keys = [*(f"err_{c}" for c in class_names), "macro_err"]
    head = "| {} | " + " | ".join([*class_names, "**macro**"]) + " |"
    rule = "|---" * (len(keys) + 1) + "|"
    failed = {m: per for m, per in result.get("failed", {}).items() if per}
    lines = [
        head.format("test error (1 - recall)")[:-1]
        + "| val macro (selection) | seeds |"
        + (" failed |" if failed else ""),
        rule + "---|---|" + ("---|" if failed else ""),
    ]

    def cell(stats: dict | None) -> str:
        return "n/a" if stats is None else f"{stats['mean']:.3f} ± {stats['std']:.3f}"

    def failed_cell(m: str) -> list[str]:
        if not failed:
            return []
        seeds = sorted(failed.get(m, {}), key=int)
        return [f"{len(seeds)} (seed {', '.join(map(str, seeds))})" if seeds else "0"]

    for m, summary in result["summary"].items():
        cells = [cell(summary[k]) for k in keys] + [
            cell(summary.get("selected_val_macro_err")),
            str(len(summary["macro_err"]["values"])),
            *failed_cell(m),
        ]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    for m in failed:
        if m not in result["summary"]:  # no finished run to average: every seed it ran failed
            lines.append(
                f"| {m} | " + " | ".join(["failed"] * (len(keys) + 1) + ["0", *failed_cell(m)]) + " |"
            )
    if result.get("comparison"):
        lines += ["", comparison_markdown(result["comparison"], class_names)]
    if result.get("choice"):
        lines += ["", choice_note(result["choice"])]
    pooled = {m: s["val_pooled"] for m, s in result["summary"].items() if "val_pooled" in s}
    if pooled:
        lines += ["", head.format("validation error, pooled over seeds (selected checkpoints)"), rule]
        lines += [f"| {m} | " + " | ".join(f"{p[k]:.3f}" for k in keys) + " |" for m, p in pooled.items()]
    if failed:
        lines += ["", "Failed runs (not averaged in; a rerun retries them):", ""]
        for m, per in failed.items():
            for s, f in sorted(per.items(), key=lambda kv: int(kv[0])):
                error = " ".join(str(f.get("error", "")).split())
                error = error if len(error) <= 300 else error[:297] + "..."
                lines.append(f"- {m}, seed {s}, stage {f.get('stage')}: {error}")
    return "\n".join(lines)


def choice_note(choice: dict) -> str:
    """One line saying which candidate the validation choice (``result["choice"]``) stands for, and why."""
    among = ", ".join(choice["among"])
    if choice["chosen"] is None:
        return (
            f"{choice['name']}: no choice yet among {among} (each needs {choice['min_seeds']}+ finished "
            "seeds, shared)."
        )
    ranked = sorted(choice["val_macro_err"].items(), key=lambda kv: kv[1])
    means = ", ".join(f"{m} {v:.3f}" for m, v in ranked)
    return (
        f"{choice['name']} is **{choice['chosen']}**: the lowest mean validation macro error of the selected "
        f"checkpoints among {among}, on seeds {choice['seeds']} ({means}); test errors are not read."
    )


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
    done = {m: dict(sorted(per.items())) for m, per in runs.items() if per}
    failed = {m: {str(s): f for s, f in sorted(per.items())} for m, per in (failed or {}).items() if per}
    wall_s = sum(r["wall_s"] for per in done.values() for r in per.values())
    seeds = sorted({s for per in done.values() for s in per})
    result = {
        "name": exp.name,
        "seeds": seeds,
        "reference": reference,
        "classes": class_names,
        "wall_s": wall_s,
    }
    compared = done
    if choice is not None:
        chosen, means, shared = choose_on_validation(done, choice.among, choice.min_seeds)
        result["choice"] = {
            "name": choice.name,
            "among": list(choice.among),
            "min_seeds": choice.min_seeds,
            "chosen": chosen,
            "val_macro_err": means,
            "seeds": shared,
        }
        if chosen is not None:
            compared = {**done, choice.name: done[chosen]}
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
    table = markdown_table(result, class_names, reference)
    seeds_of = "; ".join(f"{m}: {list(per)}" for m, per in done.items())
    if failed:
        seeds_of += "; failed, not averaged: " + "; ".join(
            f"{m}: {[int(s) for s in per]}" for m, per in failed.items()
        )
    over = (
        " Every stage with the command-line overrides "
        + ", ".join(f"`{k}={json.dumps(v)}`" for k, v in overrides.items())
        + "."
        if overrides
        else ""
    )
    with atomic_file(out / "results.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    with atomic_file(out / "results.md") as tmp:
        tmp.write_text(
            f"# {exp.name}\n\nTest-split error per class (1 - recall), mean ± std over seeds ({seeds_of}); "
            f"relative error reduction = (err_{reference} - err_method) / err_{reference}, "
            f"on the seeds both share.{over}\n\n{table}\n\nWall time: {wall_s:.0f} s\n"
        )
    return result
