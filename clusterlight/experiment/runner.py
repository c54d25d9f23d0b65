"""Training the stages of every method for every seed; finished runs saved and reused."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
from clusterlight.trainer_attrs import callbacks_of


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
        callbacks_of(cli.trainer).extend(callbacks)
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


@dataclass
class _Experiment:
    """What every step of :func:`run_experiment` reads: the experiment, its file, where its runs go, the
    seeds to run, the methods selected to run, the command-line overrides, the reference, the choice."""

    exp: Any
    exp_file: Path
    out: Path
    seeds: list[int]
    selected: list[str]
    overrides: dict[str, Any]
    reference: str
    choice: ValidationChoice | None
    verbose: bool

    @property
    def name(self) -> str:
        return f"[experiment {self.exp.name}]"


@dataclass
class _Runs:
    """The runs of every method by seed, as they stand: ``finished`` (test results, averaged in the
    tables), ``failed`` (failure records, shown as failed, never averaged), ``stale`` (a finished run with
    other configs, which running replaces), the run hash of each (method, seed) and the class names."""

    hashes: dict[tuple[str, int], str]
    finished: dict[str, dict[int, dict]]
    failed: dict[str, dict[int, dict]]
    stale: set[tuple[str, int]]
    class_names: list[str]


@dataclass
class _Plan:
    """The stages to train, in order (the progress lines' plan), each selected (method, seed, stage)'s
    resolved config (for the dry run's epochs) and the first stage's W&B logger arguments (None: no
    WandbLogger)."""

    stages: list[PlannedStage]
    configs: dict[tuple[str, int, str], dict]
    wandb_args: dict | None

    def index(self, method: str, seed: int, stage: str) -> int:
        """The position of a planned stage in ``stages`` (the progress counter)."""
        return next(
            i for i, p in enumerate(self.stages) if (p.method, p.seed, p.stage) == (method, seed, stage)
        )


class _StageFailed(Exception):
    """A stage of a run raised: its name and the error, as the failure record gives them."""

    def __init__(self, stage: str, error: str) -> None:
        super().__init__(error)
        self.stage, self.error = stage, error


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
    ctx = _Experiment(exp, exp_file, out, seeds, selected, overrides, reference, choice, verbose)
    runs = load_finished_runs(ctx)
    plan = plan_stages(ctx, runs)
    if dry_run:
        _print_plan(ctx, runs, plan)
        return None
    return _run_plan(ctx, runs, plan)


def load_finished_runs(ctx: _Experiment) -> _Runs:
    """The runs earlier calls saved in ``ctx.out`` (``seed<s>/<method>/result.json``), for every method
    and every seed asked for or with a folder there, kept when their run hash matches the configs now."""
    exp, out = ctx.exp, ctx.out
    hashes = {}
    for m, spec in exp.methods.items():
        for s in sorted({*ctx.seeds, *(int(d.name[4:]) for d in out.glob("seed*/") if d.name[4:].isdigit())}):
            # an override an unselected method cannot take (selected ones are checked): none of its runs match
            with contextlib.suppress(OverrideError):
                hashes[m, s] = run_hash(exp, spec, s, ctx.exp_file, ctx.overrides)
    runs = _Runs(hashes, {m: {} for m in exp.methods}, {m: {} for m in exp.methods}, set(), [])
    for (method, seed), config_hash in hashes.items():
        saved = _saved(out / f"seed{seed}" / method / "result.json")
        if saved is not None and saved.get("config_hash") == config_hash:
            if is_failed(saved):
                runs.failed[method][seed] = saved  # retried when selected: a failed run is never reused
            else:
                runs.finished[method][seed] = saved["result"]
        elif saved is not None and not is_failed(saved):
            runs.stale.add((method, seed))
    runs.class_names = next((list(r["classes"]) for per in runs.finished.values() for r in per.values()), [])
    return runs


def plan_stages(ctx: _Experiment, runs: _Runs) -> _Plan:
    """Every stage of every selected (method, seed) without a finished run, seed by seed, in the order they
    will train; and the resolved config of every selected (method, seed, stage), finished or not.
    Checkpoints of earlier stages are placeholders here: they are known once those stages have run."""
    plan = _Plan([], {}, None)
    for si, seed in enumerate(ctx.seeds):
        for method in ctx.selected:
            stages = ctx.exp.methods[method].stages
            placeholders = {stage.name: f"<{stage.name} checkpoint>" for stage in stages}
            for sti, stage in enumerate(stages):
                stage_dir = ctx.out / f"seed{seed}" / method / stage.name
                cfg = stage_config(
                    ctx.exp, stage, seed, stage_dir, ctx.exp_file, placeholders, ctx.overrides, method
                )
                plan.wandb_args = plan.wandb_args if plan.wandb_args is not None else uses_wandb(cfg)
                plan.configs[method, seed, stage.name] = cfg
                if seed in runs.finished[method]:
                    continue
                plan.stages.append(
                    PlannedStage(
                        method,
                        seed,
                        si + 1,
                        len(ctx.seeds),
                        stage.name,
                        sti + 1,
                        len(stages),
                        stage_epochs(cfg),
                    )
                )
    return plan


def _run_plan(ctx: _Experiment, runs: _Runs, plan: _Plan) -> dict:
    """Train every planned run, seed by seed, each (method, seed) recorded as it finishes or fails and the
    results rewritten after each; then report (:func:`_report`)."""
    ctx.out.mkdir(parents=True, exist_ok=True)
    progress = ExperimentProgress(str(ctx.exp.name), plan.stages)
    result = _write(ctx, runs)
    failed_now: dict[tuple[str, int], dict] = {}
    n_epochs = sum(p.epochs or 0 for p in plan.stages)
    n_finished = sum(s in runs.finished[m] for m in ctx.selected for s in ctx.seeds)
    print(
        f"{ctx.name} {len(ctx.selected)} method(s) x {len(ctx.seeds)} seed(s): {_n_runs(plan)} to run "
        f"({len(plan.stages)} stages, {n_epochs} epochs), {n_finished} finished; output {ctx.out}"
        + (f"; overrides {_overrides_text(ctx.overrides)}" if ctx.overrides else ""),
        flush=True,
    )
    for si, seed in enumerate(ctx.seeds):
        for method in ctx.selected:
            tag = f"{ctx.name} seed {seed} ({si + 1}/{len(ctx.seeds)}) | {method}"
            if seed in runs.finished[method]:
                err = runs.finished[method][seed]["metrics"]["macro_err"]
                print(f"{tag}: reusing the finished run (test macro error {err:.3f})", flush=True)
                continue
            ts = time.time()
            try:
                test = run_one(ctx, method, seed, plan, progress, tag)
            except _StageFailed as e:
                failed_now[method, seed] = record_failure(ctx, runs, method, seed, e, time.time() - ts)
                print(f"{tag}: FAILED in {failure_text(failed_now[method, seed])}", flush=True)
            else:
                record_finished(ctx, runs, method, seed, test, time.time() - ts)
                print(f"{tag}: test macro error {test['metrics']['macro_err']:.3f}", flush=True)
            result = _write(ctx, runs)
    _report(ctx, runs, plan, result, progress, failed_now)
    return result


def _n_runs(plan: _Plan) -> int:
    return len({(p.method, p.seed) for p in plan.stages})


def _write(ctx: _Experiment, runs: _Runs) -> dict:
    return write_results(
        ctx.out,
        ctx.exp,
        runs.finished,
        runs.class_names,
        ctx.reference,
        ctx.overrides,
        runs.failed,
        ctx.choice,
    )


def run_one(
    ctx: _Experiment, method: str, seed: int, plan: _Plan, progress: ExperimentProgress, tag: str
) -> dict:
    """Train the stages of one (method, seed) in order, each from the checkpoints of those before it, and
    return the last stage's test results. An intermediate stage that an earlier run (of any method of
    this seed) already trained with the same configs is not trained again (:func:`shared_stage`).

    A stage that raises (e.g. ``NonFiniteError``) ends the run: its traceback is printed, its stage and
    those after it are marked done in the progress, and :class:`_StageFailed` is raised."""
    spec = ctx.exp.methods[method]
    method_dir = ctx.out / f"seed{seed}" / method
    checkpoints: dict[str, str] = {}
    chain = stage_hashes(ctx.exp, spec, seed, ctx.exp_file, ctx.overrides)
    for sti, stage in enumerate(spec.stages):
        i = plan.index(method, seed, stage.name)
        try:
            last = sti == len(spec.stages) - 1
            shared = None if last else shared_stage(ctx.out / f"seed{seed}", stage.name, chain[sti])
            if shared is not None:
                checkpoints[stage.name] = shared
                progress.done.add(i)
                print(f"{tag} | stage {stage.name}: the same stage already ran: {shared}", flush=True)
                continue
            progress.stage_start(i)
            cfg = stage_config(
                ctx.exp,
                stage,
                seed,
                method_dir / stage.name,
                ctx.exp_file,
                checkpoints,
                ctx.overrides,
                method,
            )
            checkpoints[stage.name], test = run_stage(
                cfg, test=last, callbacks=[progress.callback()], verbose=ctx.verbose
            )
            if not last:
                record_stage(method_dir / stage.name, chain[sti], checkpoints[stage.name])
            progress.stage_end(i)
        except Exception as e:  # the run failed: recorded by the caller, which goes on with the others
            traceback.print_exc(file=sys.stderr)
            progress.done.update(plan.index(method, seed, s.name) for s in spec.stages)
            progress.current = None
            raise _StageFailed(stage.name, f"{type(e).__name__}: {e}") from e
    assert test is not None  # the last stage is always run, with test=True
    return test


def record_failure(
    ctx: _Experiment, runs: _Runs, method: str, seed: int, failure: _StageFailed, wall_s: float
) -> dict:
    """Record a failed run in ``runs`` and its ``result.json`` (``status: failed``, the stage, the error,
    the run hash: a rerun retries it, never reuses it); returns the record."""
    record = {
        "config_hash": runs.hashes[method, seed],
        "status": "failed",
        "stage": failure.stage,
        "error": failure.error,
        "wall_s": wall_s,
    }
    runs.failed[method][seed] = record
    runs.finished[method].pop(seed, None)
    with atomic_file(ctx.out / f"seed{seed}" / method / "result.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    return record


def record_finished(ctx: _Experiment, runs: _Runs, method: str, seed: int, test: dict, wall_s: float) -> None:
    """Record a finished run (``test``: the last stage's test results, completed with the wall time of all
    its stages and the class names) in ``runs`` and its ``result.json``, with its run hash."""
    test["wall_s"] = wall_s
    test["classes"] = [k[4:] for k in test["metrics"] if k.startswith("err_")]
    runs.finished[method][seed] = test
    runs.failed[method].pop(seed, None)
    runs.class_names = test["classes"]
    with atomic_file(ctx.out / f"seed{seed}" / method / "result.json") as tmp:
        record = {"config_hash": runs.hashes[method, seed], "status": "finished", "result": test}
        tmp.write_text(json.dumps(record, indent=2))


def _report(
    ctx: _Experiment,
    runs: _Runs,
    plan: _Plan,
    result: dict,
    progress: ExperimentProgress,
    failed_now: dict[tuple[str, int], dict],
) -> None:
    """Print the tables and where they were written, log the W&B summary run when the stages log to W&B,
    and raise :class:`ExperimentRunsFailed` when runs failed in this call (after everything is written)."""
    print(
        f"\n{markdown_table(result, runs.class_names, ctx.reference)}\n\n"
        f"wall time {time.time() - progress.t0:.0f} s; "
        f"wrote {ctx.out / 'results.json'} and {ctx.out / 'results.md'}",
        flush=True,
    )
    if plan.wandb_args is not None:
        _wandb_summary(ctx.out, ctx.exp, result, plan.wandb_args, ctx.verbose)
    if failed_now:
        which = "; ".join(f"seed {s} | {m}: {failure_text(f)}" for (m, s), f in failed_now.items())
        raise ExperimentRunsFailed(
            f"{ctx.name} {len(failed_now)} of {_n_runs(plan)} run(s) failed (recorded as failed in "
            f"their result.json and the tables, not averaged in; a rerun retries them): {which}",
            failed_now,
            result,
        )


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


def _print_plan(ctx: _Experiment, runs: _Runs, plan: _Plan) -> None:
    """The dry run's printout: every (method, seed) with its stages (and epochs) and what a real run would
    do with it, then the totals, then the validation choice."""
    exp, seeds = ctx.exp, ctx.seeds
    print(
        f"{ctx.name} dry run: {len(exp.methods)} method(s) x {len(seeds)} seed(s) x their stages; "
        f"output {ctx.out}",
        flush=True,
    )
    if ctx.overrides:
        print(f"{ctx.name} overrides (every stage): {_overrides_text(ctx.overrides)}")
    width = max(len(m) for m in exp.methods)
    for seed in seeds:
        for method, spec in exp.methods.items():
            stages = ", ".join(
                _stage_text(plan.configs.get((method, seed, stage.name)), stage.name) for stage in spec.stages
            )
            print(f"  seed {seed} | {method:<{width}} | {stages} | {_plan_status(ctx, runs, method, seed)}")
    known = [p.epochs for p in plan.stages if p.epochs is not None]
    epochs = f"{sum(known)} epochs" + (
        "" if len(known) == len(plan.stages) else " + stages not bounded by epochs"
    )
    n_reused = sum(s in runs.finished[m] for m in exp.methods for s in seeds)
    print(
        f"{ctx.name} would run {_n_runs(plan)} (method, seed) run(s): {len(plan.stages)} stages, {epochs}; "
        f"reuse {n_reused}; nothing was trained",
        flush=True,
    )
    if ctx.choice is not None:
        print(
            f"{ctx.name} then {ctx.choice.name}: whichever of {', '.join(ctx.choice.among)} has the lowest "
            f"validation macro error ({ctx.choice.min_seeds}+ seeds)",
            flush=True,
        )


def _stage_text(cfg: dict | None, name: str) -> str:
    """A stage in the dry run: its name, and its epochs when its config bounds them."""
    epochs = stage_epochs(cfg) if cfg is not None else None
    return f"{name} ({epochs_text(epochs)[:-3]})" if epochs else name


def _plan_status(ctx: _Experiment, runs: _Runs, method: str, seed: int) -> str:
    """What a real run would do with (method, seed)."""
    if seed in runs.finished[method]:
        err = runs.finished[method][seed]["metrics"]["macro_err"]
        return f"reuse the finished run (test macro error {err:.3f})"
    if method not in ctx.selected:
        return "skip (not in --methods)"
    if seed in runs.failed.get(method, {}):
        return f"run (retries a failed run: {failure_text(runs.failed[method][seed])})"
    if (method, seed) in runs.stale:
        return "run (replaces a finished run made with other configs)"
    return "run"
