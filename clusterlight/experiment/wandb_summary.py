"""The experiment's comparison as one W&B run (``job_type="summary"``) in the experiment's group.

Only used when the stage configs log to W&B (``lightning.pytorch.loggers.WandbLogger``); wandb is
imported inside ``log_summary``, never at module import.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

from clusterlight.data.atomic import atomic_file

TABLE_COLUMNS = ["method", "class", "mean", "std", "mean ± std", "reduction vs reference", "seeds"]
MARKER = "wandb_summary.json"  # in the output folder: which results the last summary run holds


def comparison_rows(result: dict) -> list[list[Any]]:
    """One row per method and class (then ``macro``): test error mean and std over seeds, the relative
    error reduction against the reference on the seeds both share (``None`` for the reference itself or
    without shared seeds), and the seed count."""
    rows = []
    for method, summary in result["summary"].items():
        reduction = result["reduction"].get(method, {})
        for name in [*result["classes"], "macro"]:
            key = "macro_err" if name == "macro" else f"err_{name}"
            stats = summary[key]
            red = reduction.get(key)
            red = None if red is None or math.isnan(red) else red
            rows.append(
                [
                    method,
                    name,
                    stats["mean"],
                    stats["std"],
                    f"{stats['mean']:.3f} ± {stats['std']:.3f}",
                    red,
                    len(stats["values"]),
                ]
            )
    return rows


def summary_metrics(result: dict) -> dict[str, float]:
    """``<method>/<err_class|macro_err>/{mean,std,reduction}`` and ``<method>/seeds`` (no reduction
    for the reference)."""
    out: dict[str, float] = {}
    for method, name, mean, std, _, red, seeds in comparison_rows(result):
        key = "macro_err" if name == "macro" else f"err_{name}"
        out[f"{method}/{key}/mean"] = mean
        out[f"{method}/{key}/std"] = std
        if red is not None:
            out[f"{method}/{key}/reduction"] = red
        out[f"{method}/seeds"] = seeds
    return out


def _results_digest(out: Path) -> str:
    return hashlib.sha1((out / "results.json").read_bytes()).hexdigest()


def summary_up_to_date(out: Path) -> bool:
    """Whether the last summary run logged from ``out`` holds its current results.json."""
    marker = out / MARKER
    if not marker.is_file() or not (out / "results.json").is_file():
        return False
    return json.loads(marker.read_text()).get("results_sha1") == _results_digest(out)


def log_summary(out: Path, result: dict, logger_args: dict, printer=print) -> str:
    """Log ``result`` (as written to ``out/results.json``) as one W&B run: name ``<experiment>/summary``,
    group = the experiment, ``job_type="summary"``; the comparison table as ``comparison`` (a
    ``wandb.Table``), its values as summary metrics, results.json and results.md as files, the
    experiment file and overrides as the run config. Project, entity, offline and anonymous come from
    the stages' ``WandbLogger`` arguments; the run folder is ``out/wandb``. Returns the run's folder."""
    import wandb

    name = result["name"]
    init: dict[str, Any] = {
        "project": logger_args.get("project") or os.environ.get("WANDB_PROJECT", "lightning_logs"),
        "entity": logger_args.get("entity"),
        "dir": str(out),
        "group": name,
        "job_type": "summary",
        "name": f"{name}/summary",
        "tags": ["summary", *(f"method={m}" for m in result["summary"])],
        "config": {
            "experiment": result.get("experiment", {}),
            "overrides": result.get("overrides", {}),
            "reference": result["reference"],
            "seeds": result["seeds"],
            **({"choice": result["choice"]} if result.get("choice") else {}),  # the row a choice stands for
        },
    }
    if logger_args.get("offline"):
        init["mode"] = "offline"
    if logger_args.get("mode"):
        init["mode"] = logger_args["mode"]
    if logger_args.get("anonymous"):
        init["anonymous"] = "allow"
    run = wandb.init(**init)
    try:
        run.log({"comparison": wandb.Table(columns=list(TABLE_COLUMNS), data=comparison_rows(result))})
        run.summary.update(summary_metrics(result))
        for file in ("results.json", "results.md"):
            if (out / file).is_file():
                shutil.copy(out / file, Path(run.dir) / file)
                run.save(str(Path(run.dir) / file), base_path=run.dir, policy="now")
        run_dir = str(Path(run.dir).parent)
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish()
    with atomic_file(out / MARKER) as tmp:
        tmp.write_text(json.dumps({"results_sha1": _results_digest(out), "run_dir": run_dir}))
    printer(f"[experiment {name}] W&B: summary run {name}/summary in {run_dir}", flush=True)
    return run_dir
