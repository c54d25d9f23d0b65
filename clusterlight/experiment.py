"""``clusterlight experiment``: every method, every seed, same data and budget; then the comparison table.

An experiment file names LightningCLI config files shared by all stages (``common``), and
per method a list of stages, each with its own config files and overrides. A stage with
``init_from: <stage>`` starts from that stage's selected checkpoint (it sets
``model.init_args.pretrained_checkpoint``). The last stage of each method is tested on the
test split with its checkpoint selected by validation macro error. With
``cross_validate: true`` seed ``s`` also selects the validation part ``s`` of the training
folds (``data.val_part``), so seeds ``0 .. n-1`` cross-validate every method.

Each finished (method, seed) leaves ``seed<s>/<method>/result.json`` with a hash of its
resolved stage configs; a rerun into the same folder reuses every result whose configs are
unchanged, so an interrupted experiment continues where it stopped and extra seeds or
methods can be added later (``--methods``), the table covering every finished run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

from omegaconf import OmegaConf

from clusterlight.data.atomic import atomic_file
from clusterlight.metrics import relative_error_reduction


def _load(path: Path, base: Path) -> dict:
    p = Path(path)
    return OmegaConf.to_container(
        OmegaConf.load(p if p.is_absolute() or p.exists() else base / p), resolve=True
    )


def merge_configs(base, override):
    """Deep-merge ``override`` into ``base`` (plain containers). A node whose ``class_path``
    changes is replaced whole, so the old class's ``init_args`` never leak into the new one."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return override
    if "class_path" in override and base.get("class_path", override["class_path"]) != override["class_path"]:
        return override
    out = dict(base)
    for k, v in override.items():
        out[k] = merge_configs(base[k], v) if k in base else v
    return out


def stage_config(exp, stage, seed: int, stage_dir: Path, exp_file: Path, checkpoints: dict[str, str]) -> dict:
    """The full LightningCLI config (a dict) of one stage of one method for one seed."""
    base = exp_file.parent
    parts = [_load(p, base) for p in [*exp.get("common", []), *stage.get("configs", [])]]
    parts += [
        OmegaConf.to_container(OmegaConf.create(node), resolve=True)
        for node in (exp.get("overrides", {}), stage.get("overrides", {}))
    ]
    merged: dict = {}
    for part in parts:
        merged = merge_configs(merged, part)
    cfg = OmegaConf.create(merged)
    cfg.seed_everything = seed
    cfg.data.init_args.seed = seed
    if exp.get("cross_validate"):  # seed s validates on part s of fold-wise cross-validation
        cfg.data.init_args.val_part = seed
    cfg.trainer.default_root_dir = str(stage_dir)
    logger = cfg.trainer.get("logger")
    if OmegaConf.is_dict(logger) and "init_args" in logger:
        logger.init_args.save_dir = str(stage_dir)
        if str(logger.class_path).endswith("WandbLogger"):
            logger.init_args.name = f"{exp.name}/{stage_dir.parent.name}/{stage.name}/seed{seed}"
            logger.init_args.group = str(exp.name)
    if stage.get("init_from"):
        cfg.model.init_args.pretrained_checkpoint = checkpoints[stage.init_from]
    return OmegaConf.to_container(cfg, resolve=True)


def run_stage(config: dict, test: bool) -> tuple[str, dict | None]:
    """Fit one stage; returns (selected checkpoint, test results or None).

    The test results carry the validation macro error of the selected checkpoint
    (``selected_val_macro_err``), the figure to choose hyperparameters by, and that
    checkpoint's validation metrics and confusion matrix (``val``).
    """
    from clusterlight.cli import ClusterlightCLI

    with mock.patch.object(sys, "argv", sys.argv[:1]):  # the config is passed whole, not on the command line
        cli = ClusterlightCLI(args=config, run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    ckpt = cli.trainer.checkpoint_callback.best_model_path or cli.trainer.checkpoint_callback.last_model_path
    if not test:
        return ckpt, None
    best_val = cli.trainer.checkpoint_callback.best_model_score
    cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt or None, verbose=False)
    test_results = cli.model.results["test"]
    cli.trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt or None, verbose=False)
    return ckpt, {
        **test_results,
        "selected_val_macro_err": None if best_val is None else float(best_val),
        "val": cli.model.results["val"],
    }


def _stats(vals: list[float]) -> dict:
    return {
        "mean": statistics.fmean(vals),
        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
        "values": vals,
    }


def pooled_errors(confusions: list[list[list[int]]], class_names: list[str]) -> dict:
    """Per-class and macro error of the summed confusion matrices (rows: true class): over
    cross-validation folds, the error on every validation clip at once."""
    total = [
        [sum(cells) for cells in zip(*rows)] for rows in zip(*confusions)
    ]  # element-wise sum of the matrices
    errs = {
        f"err_{c}": 1 - total[i][i] / sum(total[i]) if sum(total[i]) else float("nan")
        for i, c in enumerate(class_names)
    }
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

        def mean_over(name: str, k: str) -> float:
            return statistics.fmean(runs[name][s]["metrics"][k] for s in seeds)

        reductions[method] = {
            k: relative_error_reduction(mean_over(reference, k), mean_over(method, k))
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
    """Two tables: error per class and macro (mean ± std over seeds) per method, then each
    method's relative error reduction against ``reference`` (positive = fewer errors)."""
    keys = [*(f"err_{c}" for c in class_names), "macro_err"]
    head = "| {} | " + " | ".join([*class_names, "**macro**"]) + " |"
    rule = "|---" * (len(keys) + 1) + "|"
    lines = [
        head.format("test error (1 - recall)")[:-1] + "| val macro (selection) | seeds |",
        rule + "---|---|",
    ]

    def cell(stats: dict | None) -> str:
        return "n/a" if stats is None else f"{stats['mean']:.3f} ± {stats['std']:.3f}"

    for m, summary in result["summary"].items():
        cells = [cell(summary[k]) for k in keys] + [
            cell(summary.get("selected_val_macro_err")),
            str(len(summary["macro_err"]["values"])),
        ]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", head.format(f"error reduction vs {reference}"), rule]
    for m, red in result["reduction"].items():
        lines.append(
            f"| {m} | "
            + " | ".join("n/a" if math.isnan(red[k]) else f"{100 * red[k]:+.1f}%" for k in keys)
            + " |"
        )
    pooled = {m: s["val_pooled"] for m, s in result["summary"].items() if "val_pooled" in s}
    if pooled:
        lines += ["", head.format("validation error, pooled over seeds (selected checkpoints)"), rule]
        lines += [f"| {m} | " + " | ".join(f"{p[k]:.3f}" for k in keys) + " |" for m, p in pooled.items()]
    return "\n".join(lines)


def write_results(out: Path, exp, runs: dict, class_names: list[str], reference: str) -> dict:
    """Write ``results.json`` and ``results.md`` for the runs finished so far (called after every run);
    ``wall_s`` is the sum of their wall times."""
    done = {m: dict(sorted(per.items())) for m, per in runs.items() if per}
    wall_s = sum(r["wall_s"] for per in done.values() for r in per.values())
    seeds = sorted({s for per in done.values() for s in per})
    result = {
        "name": exp.name,
        "seeds": seeds,
        "reference": reference,
        "classes": class_names,
        "wall_s": wall_s,
    }
    result.update(
        summarize(done, class_names, reference) if reference in done else {"summary": {}, "reduction": {}}
    )
    result["runs"] = {m: {str(s): r for s, r in per.items()} for m, per in done.items()}
    result["experiment"] = OmegaConf.to_container(exp, resolve=True)
    table = markdown_table(result, class_names, reference)
    seeds_of = "; ".join(f"{m}: {list(per)}" for m, per in done.items())
    with atomic_file(out / "results.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    with atomic_file(out / "results.md") as tmp:
        tmp.write_text(
            f"# {exp.name}\n\nTest-split error per class (1 - recall), mean ± std over seeds ({seeds_of}); "
            f"relative error reduction = (err_{reference} - err_method) / err_{reference}, on the seeds both share.\n\n{table}\n\nWall time: {wall_s:.0f} s\n"
        )
    return result


def run_hash(exp, spec, seed: int, exp_file: Path) -> str:
    """Hash of a method's resolved stage configs for one seed, wherever its run folder is:
    a saved result is reused only if it matches."""
    placeholders = {stage.name: f"<{stage.name} checkpoint>" for stage in spec.stages}
    configs = [
        stage_config(exp, stage, seed, Path("<run>") / stage.name, exp_file, placeholders)
        for stage in spec.stages
    ]
    return hashlib.sha1(json.dumps(configs, sort_keys=True, default=str).encode()).hexdigest()


def _saved_result(path: Path, config_hash: str) -> dict | None:
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    return saved["result"] if saved.get("config_hash") == config_hash else None


def run_experiment(
    exp_file: str | Path,
    output_dir: str | None = None,
    seeds: list[int] | None = None,
    exp=None,
    methods: list[str] | None = None,
) -> dict:
    """Run the experiment in ``exp_file`` (or the already loaded/edited ``exp``, whose relative
    paths are still resolved against ``exp_file``'s folder); write and return the results.

    ``methods`` restricts what runs; the results still cover every method of the experiment
    with a finished run in ``output_dir`` (for any seed) whose configs are unchanged.
    """
    exp_file = Path(exp_file)
    exp = exp if exp is not None else OmegaConf.load(exp_file)
    seeds = seeds if seeds is not None else list(exp.seeds)
    unknown = sorted(set(methods or []) - set(exp.methods))
    if unknown:
        raise ValueError(f"{exp_file}: no method(s) {unknown}; the experiment has {list(exp.methods)}")
    out = Path(output_dir or exp.get("output_dir", f"runs/{exp.name}"))
    out.mkdir(parents=True, exist_ok=True)
    reference = exp.get("reference", "baseline")
    runs: dict[str, dict[int, dict]] = {m: {} for m in exp.methods}
    for method, spec in exp.methods.items():  # finished runs from earlier calls, any seed
        for seed_dir in sorted(out.glob("seed*/")):
            seed = int(seed_dir.name[4:])
            saved = _saved_result(seed_dir / method / "result.json", run_hash(exp, spec, seed, exp_file))
            if saved is not None:
                runs[method][seed] = saved
    class_names: list[str] = next((list(r["classes"]) for per in runs.values() for r in per.values()), [])
    t0 = time.time()
    result = write_results(out, exp, runs, class_names, reference)
    for si, seed in enumerate(seeds):
        for method, spec in exp.methods.items():
            if methods and method not in methods:
                continue
            tag = f"[experiment {exp.name}] seed {seed} ({si + 1}/{len(seeds)}) | {method}"
            if seed in runs[method]:
                print(
                    f"{tag}: reusing the finished run (test macro error {runs[method][seed]['metrics']['macro_err']:.3f})",
                    flush=True,
                )
                continue
            method_dir = out / f"seed{seed}" / method
            config_hash = run_hash(exp, spec, seed, exp_file)
            checkpoints: dict[str, str] = {}
            ts = time.time()
            for sti, stage in enumerate(spec.stages):
                last = sti == len(spec.stages) - 1
                print(
                    f"{tag} | stage {stage.name} ({sti + 1}/{len(spec.stages)}) | {time.time() - t0:.0f}s elapsed",
                    flush=True,
                )
                cfg = stage_config(exp, stage, seed, method_dir / stage.name, exp_file, checkpoints)
                checkpoints[stage.name], test = run_stage(cfg, test=last)
            test["wall_s"] = time.time() - ts  # all stages of the method
            test["classes"] = [k[4:] for k in test["metrics"] if k.startswith("err_")]
            runs[method][seed] = test
            class_names = test["classes"]
            with atomic_file(method_dir / "result.json") as tmp:
                tmp.write_text(json.dumps({"config_hash": config_hash, "result": test}, indent=2))
            print(f"{tag}: test macro error {test['metrics']['macro_err']:.3f}", flush=True)
            result = write_results(out, exp, runs, class_names, reference)
    print(
        f"\n{markdown_table(result, class_names, reference)}\n\nwall time {time.time() - t0:.0f} s; wrote {out / 'results.json'} and {out / 'results.md'}",
        flush=True,
    )
    return result


def experiment_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(
        prog="clusterlight experiment", description="Run every method for every seed and compare them."
    )
    p.add_argument("--config", required=True, help="experiment YAML (see configs/experiment/)")
    p.add_argument("--output_dir", default=None, help="run folder (default: the file's output_dir)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="override the file's seeds")
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="run only these methods (the table still covers every finished run)",
    )
    a = p.parse_args(argv)
    run_experiment(a.config, a.output_dir, a.seeds, methods=a.methods)
