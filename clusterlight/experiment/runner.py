"""Training the stages of every method for every seed; finished runs saved and reused."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger
from omegaconf import OmegaConf

from clusterlight.data.atomic import atomic_file
from clusterlight.experiment.choice import ValidationChoice
from clusterlight.experiment.configs import (
    OverrideError,
    run_hash,
    stage_config,
    stage_epochs,
    stage_hashes,
    uses_wandb,
)
from clusterlight.experiment.overrides import check_overrides
from clusterlight.experiment.progress import (
    ExperimentProgress,
    PlannedStage,
    epochs_text,
    lightning_output,
    quiet_trainer,
)
from clusterlight.experiment.report import markdown_table, write_results
from clusterlight.lightning_cli import ClusterlightCLI


def _finish_wandb_runs(trainer, ok: bool) -> None:
    """Finish the W&B run of each ``WandbLogger`` that started one, so the next stage gets its own run
    (a WandbLogger otherwise reuses the run in progress). wandb is only touched when such a logger is
    there, so it is never imported otherwise."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and getattr(logger, "_experiment", None) is not None:
            logger.experiment.finish(exit_code=0 if ok else 1)


def run_stage(
    config: dict, test: bool, callbacks: Sequence[Callback] = (), verbose: bool = False
) -> tuple[str, dict | None]:
    """Fit one stage; returns (selected checkpoint, test results or None).

    The config is passed whole, as a dict: ``sys.argv`` (the ``clusterlight experiment``
    command line) is never read. The test results carry the validation macro error of the
    selected checkpoint (``selected_val_macro_err``), the figure to choose hyperparameters by,
    and that checkpoint's validation metrics and confusion matrix (``val``).

    ``callbacks`` are added to the trainer after it is built (display only, e.g. the experiment's
    ``ProgressCallback``: the config, and so the run hash, does not mention them). Unless ``verbose``,
    Lightning's progress bar, model summary and info lines are off (``progress.lightning_output``);
    warnings stay. A W&B run the stage started is finished before this returns.
    """
    if not verbose:
        config = quiet_trainer(config)
    with lightning_output(verbose):
        cli = ClusterlightCLI(args=config, run=False)
        cli.trainer.callbacks.extend(callbacks)
        ok = False
        try:
            result = _fit_and_test(cli, test)
            ok = True
        finally:
            _finish_wandb_runs(cli.trainer, ok)
    return result


def _fit_and_test(cli, test: bool) -> tuple[str, dict | None]:
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


STAGE_RECORD = "stage.json"


def record_stage(stage_dir: Path, chain_hash: str, checkpoint: str) -> None:
    """Note a finished intermediate stage (e.g. pretraining) and its selected checkpoint, so a method
    (or a rerun) whose stages up to it are identical reuses it (:func:`shared_stage`)."""
    with atomic_file(stage_dir / STAGE_RECORD) as tmp:
        tmp.write_text(json.dumps({"chain_hash": chain_hash, "checkpoint": checkpoint}, indent=2))


def shared_stage(seed_dir: Path, stage_name: str, chain_hash: str) -> str | None:
    """The checkpoint of a finished stage of any method of this seed with the same stage hash
    (:func:`~clusterlight.experiment.configs.stage_hashes`: same configs up to and including this
    stage), or ``None``. Training it again would give the same checkpoint: one seed, one config."""
    for record in sorted(seed_dir.glob(f"*/{stage_name}/{STAGE_RECORD}")):
        saved = _saved(record)
        if saved and saved.get("chain_hash") == chain_hash and Path(saved["checkpoint"]).is_file():
            return saved["checkpoint"]
    return None


def _saved(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def is_failed(saved: dict | None) -> bool:
    """Whether a saved ``result.json`` records a failed run (``status: failed``; a record without a
    status is a finished run written before failures were recorded)."""
    return saved is not None and saved.get("status") == "failed"


class ExperimentRunsFailed(RuntimeError):
    """Raised by :func:`run_experiment` after every run was tried and the results were written, when
    runs failed in this call; ``failed`` maps (method, seed) to the failure record, ``result`` is the
    results dict written to ``results.json``."""

    def __init__(self, message: str, failed: dict[tuple[str, int], dict], result: dict) -> None:
        super().__init__(message)
        self.failed, self.result = failed, result


def failure_text(failure: dict) -> str:
    return f"stage {failure.get('stage')}: {failure.get('error')}"


def _overrides_text(overrides: Mapping[str, Any]) -> str:
    return " ".join(f"--{k} {json.dumps(v) if not isinstance(v, str) else v}" for k, v in overrides.items())


def run_experiment(
    exp_file: str | Path,
    output_dir: str | None = None,
    seeds: list[int] | None = None,
    exp=None,
    methods: list[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    verbose: bool = False,
) -> dict | None:
    """Run the experiment in ``exp_file`` (or the already loaded/edited ``exp``, whose relative
    paths are still resolved against ``exp_file``'s folder); write and return the results.

    ``methods`` restricts what runs; the results still cover every method of the experiment
    with a finished run in ``output_dir`` (for any seed) whose configs are unchanged.
    ``overrides`` (``{"trainer.max_epochs": 2, ...}``) are set in every stage of every method after
    the file's own overrides, and are part of the run hash. ``dry_run`` prints the plan (what would
    be reused, what would run) and returns ``None`` without training or writing anything.
    ``verbose`` keeps Lightning's own output (progress bar, model summary, info lines).
    """
    exp_file = Path(exp_file)
    exp = exp if exp is not None else OmegaConf.load(exp_file)
    seeds = seeds if seeds is not None else list(exp.seeds)
    overrides = dict(overrides or {})
    unknown = sorted(set(methods or []) - set(exp.methods))
    if unknown:
        raise ValueError(f"{exp_file}: no method(s) {unknown}; the experiment has {list(exp.methods)}")
    selected = [m for m in exp.methods if not methods or m in methods]
    choice = ValidationChoice.from_experiment(exp, exp.methods)  # checked before anything trains
    check_overrides(exp, exp_file, overrides, selected, seeds[0] if seeds else 0)
    out = Path(output_dir or exp.get("output_dir", f"runs/{exp.name}"))
    reference = exp.get("reference", "baseline")
    hashes = {}
    for m, spec in exp.methods.items():
        for s in sorted({*seeds, *(int(d.name[4:]) for d in out.glob("seed*/") if d.name[4:].isdigit())}):
            # an override an unselected method cannot take (selected ones are checked): none of its runs match
            with contextlib.suppress(OverrideError):
                hashes[m, s] = run_hash(exp, spec, s, exp_file, overrides)
    runs: dict[str, dict[int, dict]] = {m: {} for m in exp.methods}
    failed: dict[str, dict[int, dict]] = {m: {} for m in exp.methods}  # shown as failed, never averaged
    stale: set[tuple[str, int]] = set()  # a finished run with other configs, which running replaces
    for (method, seed), config_hash in hashes.items():  # finished runs from earlier calls, any seed
        saved = _saved(out / f"seed{seed}" / method / "result.json")
        if saved is not None and saved.get("config_hash") == config_hash:
            if is_failed(saved):
                failed[method][seed] = saved  # retried when selected: a failed run is never reused
            else:
                runs[method][seed] = saved["result"]
        elif saved is not None and not is_failed(saved):
            stale.add((method, seed))
    class_names: list[str] = next((list(r["classes"]) for per in runs.values() for r in per.values()), [])

    plan: list[PlannedStage] = []
    configs: dict[tuple[str, int, str], dict] = {}
    wandb_args = None
    for si, seed in enumerate(seeds):
        for method in selected:
            stages = exp.methods[method].stages
            placeholders = {stage.name: f"<{stage.name} checkpoint>" for stage in stages}
            for sti, stage in enumerate(stages):
                stage_dir = out / f"seed{seed}" / method / stage.name
                cfg = stage_config(exp, stage, seed, stage_dir, exp_file, placeholders, overrides, method)
                wandb_args = wandb_args if wandb_args is not None else uses_wandb(cfg)
                configs[method, seed, stage.name] = cfg
                if seed in runs[method]:
                    continue
                plan.append(
                    PlannedStage(
                        method, seed, si + 1, len(seeds), stage.name, sti + 1, len(stages), stage_epochs(cfg)
                    )
                )
    if dry_run:
        _print_plan(exp, out, seeds, selected, runs, stale, configs, plan, overrides, failed, choice)
        return None

    out.mkdir(parents=True, exist_ok=True)
    progress = ExperimentProgress(str(exp.name), plan)
    result = write_results(out, exp, runs, class_names, reference, overrides, failed, choice)
    failed_now: dict[tuple[str, int], dict] = {}
    n_runs = len({(p.method, p.seed) for p in plan})
    n_epochs = sum(p.epochs or 0 for p in plan)
    print(
        f"[experiment {exp.name}] {len(selected)} method(s) x {len(seeds)} seed(s): {n_runs} to run "
        f"({len(plan)} stages, {n_epochs} epochs), "
        f"{sum(s in runs[m] for m in selected for s in seeds)} finished; output {out}"
        + (f"; overrides {_overrides_text(overrides)}" if overrides else ""),
        flush=True,
    )
    i = 0
    for si, seed in enumerate(seeds):
        for method in selected:
            spec = exp.methods[method]
            tag = f"[experiment {exp.name}] seed {seed} ({si + 1}/{len(seeds)}) | {method}"
            if seed in runs[method]:
                err = runs[method][seed]["metrics"]["macro_err"]
                print(f"{tag}: reusing the finished run (test macro error {err:.3f})", flush=True)
                continue
            method_dir = out / f"seed{seed}" / method
            checkpoints: dict[str, str] = {}
            ts = time.time()
            first = i
            chain = stage_hashes(exp, spec, seed, exp_file, overrides)
            try:
                for sti, stage in enumerate(spec.stages):
                    last = sti == len(spec.stages) - 1
                    shared = None if last else shared_stage(out / f"seed{seed}", stage.name, chain[sti])
                    if shared is not None:
                        checkpoints[stage.name] = shared
                        progress.done.add(i)
                        print(f"{tag} | stage {stage.name}: the same stage already ran: {shared}", flush=True)
                        i += 1
                        continue
                    progress.stage_start(i)
                    cfg = stage_config(
                        exp, stage, seed, method_dir / stage.name, exp_file, checkpoints, overrides, method
                    )
                    checkpoints[stage.name], test = run_stage(
                        cfg, test=last, callbacks=[progress.callback()], verbose=verbose
                    )
                    if not last:
                        record_stage(method_dir / stage.name, chain[sti], checkpoints[stage.name])
                    progress.stage_end(i)
                    i += 1
            except Exception as e:  # the run failed (e.g. NonFiniteError): record it, go on with the others
                traceback.print_exc(file=sys.stderr)
                failure = {
                    "config_hash": hashes[method, seed],
                    "status": "failed",
                    "stage": spec.stages[i - first].name,
                    "error": f"{type(e).__name__}: {e}",
                    "wall_s": time.time() - ts,
                }
                i = first + len(spec.stages)  # the failed stage and those after it will not run
                progress.done.update(range(first, i))
                progress.current = None
                failed[method][seed] = failed_now[method, seed] = failure
                runs[method].pop(seed, None)
                with atomic_file(method_dir / "result.json") as tmp:
                    tmp.write_text(json.dumps(failure, indent=2))
                print(f"{tag}: FAILED in {failure_text(failure)}", flush=True)
                result = write_results(out, exp, runs, class_names, reference, overrides, failed, choice)
                continue
            test["wall_s"] = time.time() - ts  # all stages of the method
            test["classes"] = [k[4:] for k in test["metrics"] if k.startswith("err_")]
            runs[method][seed] = test
            failed[method].pop(seed, None)
            class_names = test["classes"]
            with atomic_file(method_dir / "result.json") as tmp:
                record = {"config_hash": hashes[method, seed], "status": "finished", "result": test}
                tmp.write_text(json.dumps(record, indent=2))
            print(f"{tag}: test macro error {test['metrics']['macro_err']:.3f}", flush=True)
            result = write_results(out, exp, runs, class_names, reference, overrides, failed, choice)
    print(
        f"\n{markdown_table(result, class_names, reference)}\n\nwall time {time.time() - progress.t0:.0f} s; "
        f"wrote {out / 'results.json'} and {out / 'results.md'}",
        flush=True,
    )
    if wandb_args is not None:
        _wandb_summary(out, exp, result, wandb_args, verbose)
    if failed_now:
        which = "; ".join(f"seed {s} | {m}: {failure_text(f)}" for (m, s), f in failed_now.items())
        n_tried = n_runs
        raise ExperimentRunsFailed(
            f"[experiment {exp.name}] {len(failed_now)} of {n_tried} run(s) failed (recorded as failed in "
            f"their result.json and the tables, not averaged in; a rerun retries them): {which}",
            failed_now,
            result,
        )
    return result


def _wandb_summary(out: Path, exp, result: dict, wandb_args: dict, verbose: bool) -> None:
    from clusterlight.experiment.wandb_summary import log_summary, summary_up_to_date

    tag = f"[experiment {exp.name}] W&B"
    if not result["summary"]:
        print(f"{tag}: no summary run yet (the reference method has no finished run)", flush=True)
    elif summary_up_to_date(out):
        print(
            f"{tag}: the summary run already holds these results (see {out / 'wandb_summary.json'})",
            flush=True,
        )
    else:
        with lightning_output(verbose):
            log_summary(out, result, wandb_args)
    offline = (
        os.environ.get("WANDB_MODE") in ("offline", "dryrun")
        or wandb_args.get("offline")
        or wandb_args.get("mode") == "offline"
    )
    if offline:
        print(
            f"{tag}: runs are offline; upload them with: "
            f"wandb sync {out}/wandb/offline-run-* {out}/seed*/*/*/wandb/offline-run-*",
            flush=True,
        )


def _print_plan(
    exp, out, seeds, selected, runs, stale, configs, plan, overrides, failed=None, choice=None
) -> None:
    name = f"[experiment {exp.name}]"
    print(
        f"{name} dry run: {len(exp.methods)} method(s) x {len(seeds)} seed(s) x their stages; output {out}",
        flush=True,
    )
    if overrides:
        print(f"{name} overrides (every stage): {_overrides_text(overrides)}")
    width = max(len(m) for m in exp.methods)
    for seed in seeds:
        for method, spec in exp.methods.items():
            stages = ", ".join(
                f"{stage.name} ({epochs_text(stage_epochs(configs[method, seed, stage.name]))[:-3]})"
                if (method, seed, stage.name) in configs and stage_epochs(configs[method, seed, stage.name])
                else stage.name
                for stage in spec.stages
            )
            if seed in runs[method]:
                err = runs[method][seed]["metrics"]["macro_err"]
                status = f"reuse the finished run (test macro error {err:.3f})"
            elif method not in selected:
                status = "skip (not in --methods)"
            elif failed and seed in failed.get(method, {}):
                status = f"run (retries a failed run: {failure_text(failed[method][seed])})"
            elif (method, seed) in stale:
                status = "run (replaces a finished run made with other configs)"
            else:
                status = "run"
            print(f"  seed {seed} | {method:<{width}} | {stages} | {status}")
    n_runs = len({(p.method, p.seed) for p in plan})
    known = [p.epochs for p in plan if p.epochs is not None]
    epochs = f"{sum(known)} epochs" + ("" if len(known) == len(plan) else " + stages not bounded by epochs")
    n_reused = sum(s in runs[m] for m in exp.methods for s in seeds)
    print(
        f"{name} would run {n_runs} (method, seed) run(s): {len(plan)} stages, {epochs}; "
        f"reuse {n_reused}; nothing was trained",
        flush=True,
    )
    if choice is not None:
        print(
            f"{name} then {choice.name}: whichever of {', '.join(choice.among)} has the lowest validation "
            f"macro error ({choice.min_seeds}+ seeds)",
            flush=True,
        )
