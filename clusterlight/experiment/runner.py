"""Training the stages of every method for every seed; finished runs saved and reused."""

from __future__ import annotations

import json
import time
from pathlib import Path

from omegaconf import OmegaConf

from clusterlight.data.atomic import atomic_file
from clusterlight.experiment.configs import run_hash, stage_config
from clusterlight.experiment.report import markdown_table, write_results
from clusterlight.lightning_cli import ClusterlightCLI


def run_stage(config: dict, test: bool) -> tuple[str, dict | None]:
    """Fit one stage; returns (selected checkpoint, test results or None).

    The config is passed whole, as a dict: ``sys.argv`` (the ``clusterlight experiment``
    command line) is never read. The test results carry the validation macro error of the
    selected checkpoint (``selected_val_macro_err``), the figure to choose hyperparameters by,
    and that checkpoint's validation metrics and confusion matrix (``val``).
    """
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
                err = runs[method][seed]["metrics"]["macro_err"]
                print(f"{tag}: reusing the finished run (test macro error {err:.3f})", flush=True)
                continue
            method_dir = out / f"seed{seed}" / method
            config_hash = run_hash(exp, spec, seed, exp_file)
            checkpoints: dict[str, str] = {}
            ts = time.time()
            for sti, stage in enumerate(spec.stages):
                last = sti == len(spec.stages) - 1
                print(
                    f"{tag} | stage {stage.name} ({sti + 1}/{len(spec.stages)}) | "
                    f"{time.time() - t0:.0f}s elapsed",
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
        f"\n{markdown_table(result, class_names, reference)}\n\nwall time {time.time() - t0:.0f} s; "
        f"wrote {out / 'results.json'} and {out / 'results.md'}",
        flush=True,
    )
    return result
