"""Every Markdown table of the experiment's results: the errors over seeds, the paired comparison against
the reference, the validation choice, failed runs, and the ``results.md`` page that holds them.

The figures come from :mod:`clusterlight.experiment.report` (summary over seeds, ``results.json``) and
:mod:`clusterlight.experiment.statistics` (intervals); this module only formats them. The cell formatters
(:func:`reduction_cell`, :func:`std_cell`, :func:`ratio_cell`) are shared with the benchmarks' own tables.
"""

from __future__ import annotations

import json

# ---- cells ------------------------------------------------------------------------------------------


def pct(x: float | None) -> str:
    """A share as a signed percentage with one decimal (``+12.3``), ``n/a`` for None."""
    return "n/a" if x is None else f"{100 * x:+.1f}"


def reduction_cell(entry: dict | None) -> str:
    """A relative error reduction (``statistics.relative_reduction_ci`` entry): ``+12.3% [-4.1, +27.0]``,
    ``*`` where the interval excludes zero, ``n/a`` without an estimate."""
    if entry is None or entry["estimate"] is None:
        return "n/a"
    cell = f"{pct(entry['estimate'])}%"
    if entry["low"] is not None:
        cell += f" [{pct(entry['low'])}, {pct(entry['high'])}]"
    return cell + (" *" if entry["excludes_zero"] else "")


def std_cell(std: dict) -> str:
    """A seed std with its interval (``statistics.std_with_ci``): ``0.012 [0.004, 0.020]``."""
    if std["std"] is None:
        return "n/a"
    return f"{std['std']:.3f}" + ("" if std["low"] is None else f" [{std['low']:.3f}, {std['high']:.3f}]")


def ratio_cell(ratio: dict | None) -> str:
    """A seed std ratio (``statistics.std_ratio_ci``): ``1.10 [0.45, 2.30]``, ``*`` where the interval
    excludes one, ``n/a`` without a ratio."""
    if ratio is None or ratio["ratio"] is None:
        return "n/a"
    cell = f"{ratio['ratio']:.2f}"
    if ratio["low"] is not None:
        cell += f" [{ratio['low']:.2f}, {ratio['high']:.2f}]"
    return cell + (" *" if ratio["excludes_one"] else "")


def _mean_std_cell(stats: dict | None) -> str:
    return "n/a" if stats is None else f"{stats['mean']:.3f} ± {stats['std']:.3f}"


# ---- the paired comparison (statistics.compare) ---------------------------------------------------------


def comparison_markdown(comparison: dict, class_names: list[str]) -> str:
    """A Markdown table of :func:`~clusterlight.experiment.statistics.compare`'s result: one row per method
    with its relative error reduction per class and macro against the reference (``+12.3% [-4.1, +27.0]``,
    ``*`` where the interval excludes zero), the seed std of its macro error with interval, its std ratio
    against the reference (``*`` where the interval excludes one) and the share of seeds on which its
    macro error is lower (ties count half); then each method's per-seed paired differences of macro error
    (method minus reference, same seed and split); then a one-line legend."""
    ref = comparison["reference"]
    head = [
        "method",
        *class_names,
        "**macro**",
        "seed std of macro error",
        f"std ratio vs {ref}",
        f"seeds better than {ref}",
    ]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    resampled: set[str] = set()
    for m, e in comparison["methods"].items():
        cells = _comparison_cells(e, class_names, resampled) if m != ref else None
        if cells is None:
            cells = ["(reference)"] * (len(class_names) + 1) + [std_cell(e["std"]), "1", "-"]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += _per_seed_differences(comparison)
    return "\n".join([*lines, "", _comparison_legend(comparison, resampled)])


def _comparison_cells(e: dict, class_names: list[str], resampled: set[str]) -> list[str]:
    """A compared method's cells; what its intervals resampled is added to ``resampled``."""
    red = e["reduction"]
    if red is not None:
        resampled.add(red["resampled"])
    reds = [red and red.get(f"err_{c}") for c in class_names] + [red and red["macro_err"]]
    better = "n/a"
    if e["share_better"] is not None:
        n = len(e["shared_seeds"])
        better = f"{e['share_better'] * n:g}/{n}"
    return [*map(reduction_cell, reds), std_cell(e["std"]), ratio_cell(e["std_ratio"]), better]


def _per_seed_differences(comparison: dict) -> list[str]:
    ref = comparison["reference"]
    compared = {m: e for m, e in comparison["methods"].items() if m != ref}
    if not compared:
        return []
    per_seed = f"per-seed macro error difference, method - {ref} (seed: difference)"
    lines = ["", f"| method | {per_seed} |", "|---|---|"]
    for m, e in compared.items():
        diffs = ", ".join(f"{s}: {d:+.3f}" for s, d in e["macro_err_diff"].items()) or "no shared seed"
        lines.append(f"| {m} | {diffs} |")
    return lines


def _comparison_legend(comparison: dict, resampled: set[str]) -> str:
    ref = comparison["reference"]
    level = round(100 * comparison["level"], 1)
    how = " / ".join(sorted(resampled)) or "nothing"
    return (
        f"Relative error reduction vs {ref} = (err_{ref} - err) / err_{ref} (positive = fewer errors), "
        f"errors averaged over shared seeds; [{level:g}% paired percentile bootstrap interval, "
        f"{comparison['n_boot']} resamples of {how} (clips stratified by class)]; * = interval excludes 0 "
        "(std ratio: excludes 1); seed std = sample std (ddof=1) over seeds, interval by resampling seeds; "
        "seeds better: a tie counts half; per-seed differences: negative = fewer errors than the reference."
    )


# ---- the results tables (report.write_results) ----------------------------------------------------------


def markdown_table(result: dict, class_names: list[str], reference: str) -> str:
    """Error per class and macro (mean ± std over seeds) per method; then the paired comparison against
    ``reference`` (``result["comparison"]``: relative error reductions with 95% intervals from a
    bootstrap over seeds and test clips, seed spread with its interval and the ratio to the reference's,
    the share of seeds a method beats the reference on, the per-seed paired differences).

    Failed runs (``result["failed"]``) are never averaged in: when there are any, the first table
    gets a ``failed`` column (how many seeds failed, and which), a method whose every seed failed
    shows ``failed`` in each cell, and a list under the tables gives each failure's stage and error."""
    lines = _error_table(result, class_names)
    if result.get("comparison"):
        lines += ["", comparison_markdown(result["comparison"], class_names)]
    if result.get("choice"):
        lines += ["", choice_note(result["choice"])]
    lines += _pooled_validation_table(result, class_names)
    lines += _failure_list(result)
    return "\n".join(lines)


def _failed(result: dict) -> dict:
    return {m: per for m, per in result.get("failed", {}).items() if per}


def _class_head(class_names: list[str], title: str) -> list[str]:
    """The head of a table with a column per class and one for macro: its title row (without the closing
    ``|``) and rule row (likewise)."""
    return [
        f"| {title} | " + " | ".join([*class_names, "**macro**"]) + " ",
        "|---" * (len(class_names) + 2),
    ]


def _error_table(result: dict, class_names: list[str]) -> list[str]:
    """The test errors of every method over its finished seeds (and a ``failed`` column when runs failed)."""
    keys = [*(f"err_{c}" for c in class_names), "macro_err"]
    failed = _failed(result)
    head, rule = _class_head(class_names, "test error (1 - recall)")
    lines = [
        head + "| val macro (selection) | seeds |" + (" failed |" if failed else ""),
        rule + "|---|---|" + ("---|" if failed else ""),
    ]

    def failed_cell(m: str) -> list[str]:
        if not failed:
            return []
        seeds = sorted(failed.get(m, {}), key=int)
        return [f"{len(seeds)} (seed {', '.join(map(str, seeds))})" if seeds else "0"]

    for m, summary in result["summary"].items():
        cells = [_mean_std_cell(summary[k]) for k in keys] + [
            _mean_std_cell(summary.get("selected_val_macro_err")),
            str(len(summary["macro_err"]["values"])),
            *failed_cell(m),
        ]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    for m in failed:
        if m not in result["summary"]:  # no finished run to average: every seed it ran failed
            lines.append(
                f"| {m} | " + " | ".join(["failed"] * (len(keys) + 1) + ["0", *failed_cell(m)]) + " |"
            )
    return lines


def _pooled_validation_table(result: dict, class_names: list[str]) -> list[str]:
    keys = [*(f"err_{c}" for c in class_names), "macro_err"]
    pooled = {m: s["val_pooled"] for m, s in result["summary"].items() if "val_pooled" in s}
    if not pooled:
        return []
    head, rule = _class_head(class_names, "validation error, pooled over seeds (selected checkpoints)")
    lines = ["", head + "|", rule + "|"]
    return lines + [f"| {m} | " + " | ".join(f"{p[k]:.3f}" for k in keys) + " |" for m, p in pooled.items()]


def _failure_list(result: dict) -> list[str]:
    failed = _failed(result)
    if not failed:
        return []
    lines = ["", "Failed runs (not averaged in; a rerun retries them):", ""]
    for m, per in failed.items():
        for s, f in sorted(per.items(), key=lambda kv: int(kv[0])):
            error = " ".join(str(f.get("error", "")).split())
            error = error if len(error) <= 300 else error[:297] + "..."
            lines.append(f"- {m}, seed {s}, stage {f.get('stage')}: {error}")
    return lines


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


def results_page(result: dict) -> str:
    """The text of ``results.md`` for a ``results.json`` dict (:func:`report.write_results`): a title, a
    line saying what the tables hold (seeds per method, failed runs, command-line overrides), the tables
    of :func:`markdown_table`, and the summed wall time."""
    reference, runs, overrides = result["reference"], result["runs"], result.get("overrides")
    seeds_of = "; ".join(f"{m}: {[int(s) for s in per]}" for m, per in runs.items())
    if result.get("failed"):
        seeds_of += "; failed, not averaged: " + "; ".join(
            f"{m}: {[int(s) for s in per]}" for m, per in result["failed"].items()
        )
    over = (
        " Every stage with the command-line overrides "
        + ", ".join(f"`{k}={json.dumps(v)}`" for k, v in overrides.items())
        + "."
        if overrides
        else ""
    )
    table = markdown_table(result, result["classes"], reference)
    return (
        f"# {result['name']}\n\nTest-split error per class (1 - recall), mean ± std over seeds ({seeds_of}); "
        f"relative error reduction = (err_{reference} - err_method) / err_{reference}, "
        f"on the seeds both share.{over}\n\n{table}\n\nWall time: {result['wall_s']:.0f} s\n"
    )
