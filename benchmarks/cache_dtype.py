"""Which ``cache_dtype`` to store waveforms in: bytes per hour of audio, and test error against float32.

For each ``data.cache_dtype`` (float32, float16, int16) it compares, against float32:

- **bytes per hour of audio** of the waveform cache the runs read (stored samples over the hours they
  hold);
- **the quickstart** (``configs/experiment/quickstart.yaml``: synthetic data, LSTM, every method, seeds
  0-2), trained once per dtype into ``--out/quickstart_<dtype>`` (finished runs are reused);
- **a rare4 pair** (``--rare4 RUNS``): class-weighted CE and the paper's recipe with the CNN, seeds 0-4,
  train fold 1 at 2:2:1:26, test fold 2, trained per dtype by ``benchmarks/rare4.py --out
  RUNS_<dtype>`` (RARE4_COMMAND; float32 in RUNS itself).

Each method's macro test error per dtype, and its relative change against float32 with the project's
paired bootstrap interval (seeds and test clips resampled, clips stratified by class:
``clusterlight.experiment.statistics``). Training on other samples can send a run down another path, as
another seed does, so these intervals are wide; the report also scores each float32 model on its test
clips stored once more in float16 and int16, which measures what the stored precision itself costs. The
per-clip predictions come from each run's selected checkpoint on its test split, read from the run's own
cache (in its dtype) and scored in float32; the report gives the largest difference between their macro
error and the one the run logged (a run with the log-mel feature cache logged errors on float16 log-mel
frames where the dtype is not float32).
Printout as Markdown to stdout and ``--results`` (default ``benchmarks/results/cache_dtype.md``).

    python benchmarks/cache_dtype.py          # the quickstart part: 2-3 min on 2 cores, +8 min to train
    python benchmarks/cache_dtype.py --rare4 runs/rare4     # and the rare4 pair (train it first)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from edge import change_against, macro_error, predictions, table  # benchmarks/edge.py, beside this script
from omegaconf import OmegaConf

from clusterlight.data.sample_codec import decode_samples, encode_samples
from clusterlight.experiment import run_experiment
from clusterlight.inference import load
from clusterlight.inference.calibration import run_datamodule, split_windows
from clusterlight.inference.streaming import torch_scores
from clusterlight.runs import selected_checkpoint
from clusterlight.version import __version__

ROOT = Path(__file__).resolve().parents[1]
DTYPES = ["float32", "float16", "int16"]
QUICKSTART = ROOT / "configs/experiment/quickstart.yaml"
RARE4_SETTING = "rare4_cnn_2-2-1-26_1to2"
RARE4_METHODS = ["weighted_ce", "clustered"]
RARE4_COMMAND = (
    "python benchmarks/rare4.py --data_root PATH --backbones cnn --directions 1to2 --ratios 2:2:1:26 "
    "--methods weighted_ce clustered --seeds 0 1 2 3 4 --out RUNS_<dtype> --results_dir RUNS_<dtype> "
    "--data.init_args.cache_dtype <dtype>"
)
RESULTS = ROOT / "benchmarks/results/cache_dtype.md"


def stage_of(experiment: dict, method: str) -> str:
    return experiment["methods"][method]["stages"][-1]["name"]


def quickstart_runs(out: Path) -> dict[str, tuple[Path, dict]]:
    """{dtype: (experiment folder, results.json)}, training what is not there yet."""
    found = {}
    for dtype in DTYPES:
        folder = out / f"quickstart_{dtype}"
        # float32 is the data config's own dtype
        overrides = {} if dtype == "float32" else {"data.init_args.cache_dtype": dtype}
        results = run_experiment(QUICKSTART, str(folder), overrides=overrides)
        found[dtype] = (folder, results)
    return found


def rare4_runs(runs: Path) -> dict[str, tuple[Path, dict]]:
    """{dtype: (experiment folder, results.json)} of the rare4 CNN pair per dtype; exits naming the
    training command when a dtype's runs are missing."""
    found = {}
    for dtype in DTYPES:
        base = runs if dtype == "float32" else runs.with_name(f"{runs.name}_{dtype}")
        results = base / RARE4_SETTING / "results.json"
        done = json.loads(results.read_text()) if results.is_file() else {}
        if not all(done.get("runs", {}).get(m) for m in RARE4_METHODS):
            command = RARE4_COMMAND.replace("RUNS", str(runs)).replace("<dtype>", dtype)
            if dtype == "float32":  # the data config's own dtype, in RUNS itself
                command = command.replace(
                    f"{runs}_float32 --results_dir {runs}_float32 --data.init_args.cache_dtype float32",
                    f"{runs} --results_dir {runs}",
                )
            sys.exit(
                f"cache_dtype benchmark: no runs of {RARE4_METHODS} in {results.parent}; train them with\n"
                f"  {command}"
            )
        found[dtype] = (results.parent, done)
    return found


def scored(score, windows: np.ndarray, labels: np.ndarray) -> dict:
    """Predictions of ``score`` on ``windows``, as the statistics take a run."""
    predicted = predictions(score, windows)
    return {
        "labels": labels.tolist(),
        "predictions": predicted.tolist(),
        "metrics": {"macro_err": macro_error(labels, predicted)},
    }


def scored_test_split(ckpt: Path, stored_as: list[str]) -> dict[str, dict]:
    """{dtype: run} of the run's test split scored by its checkpoint: as read from the run's cache
    (``"cache"``), and with those samples stored once more in each dtype of ``stored_as``."""
    windows, labels = split_windows(ckpt, "test")
    score = torch_scores(load(ckpt))
    out = {"cache": scored(score, windows, labels)}
    for dtype in stored_as:
        out[dtype] = scored(score, decode_samples(encode_samples(windows, dtype)[0]), labels)
    return out


def store_bytes_per_hour(ckpt: Path) -> float:
    """Stored sample bytes per hour of audio of the waveform cache the run reads."""
    datamodule = run_datamodule(ckpt)
    store = datamodule.datasets["train"].store  # one store holds every split's clips
    hours = float(store.lengths().sum()) / datamodule.sample_rate / 3600
    return store.nbytes / hours


def compare(task: str, found: dict[str, tuple[Path, dict]], methods: list[str]) -> dict:
    """Per method and dtype: mean macro error, the change against float32 with its interval, and the
    largest gap between the recomputed errors and the logged ones."""
    rows: dict = {"bytes_per_hour": {}, "methods": {}, "test_audio": {}}
    per_run: dict = {}
    for dtype, (folder, results) in found.items():
        experiment = results["experiment"]
        for method in methods:
            for seed in sorted(int(s) for s in results["runs"].get(method, {})):
                ckpt = selected_checkpoint(folder, method, seed, stage_of(experiment, method))
                scores = scored_test_split(ckpt, DTYPES[1:] if dtype == "float32" else [])
                run = scores.pop("cache")
                for stored_as, same_model in scores.items():  # the float32 model on test audio stored so
                    per_run.setdefault((method, "test audio " + stored_as), {})[seed] = same_model
                logged = results["runs"][method][str(seed)]["metrics"]["macro_err"]
                run["gap"] = abs(run["metrics"]["macro_err"] - logged)
                per_run.setdefault((method, dtype), {})[seed] = run
                if dtype not in rows["bytes_per_hour"]:
                    rows["bytes_per_hour"][dtype] = store_bytes_per_hour(ckpt)
                print(f"[cache_dtype] {task} {dtype} {method} seed {seed}: {run['metrics']}", file=sys.stderr)
    class_names = found["float32"][1]["classes"]
    for method in methods:
        shared = set.intersection(*(set(per_run[(method, d)]) for d in DTYPES))
        if not shared:
            sys.exit(f"cache_dtype benchmark: {task} {method} has no seed trained with every dtype")
        reference = {s: per_run[(method, "float32")][s] for s in shared}
        for dtype in DTYPES:
            runs = {s: per_run[(method, dtype)][s] for s in sorted(shared)}
            entry: dict = {
                "mean": statistics.mean(r["metrics"]["macro_err"] for r in runs.values()),
                "std": statistics.stdev(r["metrics"]["macro_err"] for r in runs.values())
                if len(runs) > 1
                else 0.0,
                "seeds": sorted(runs),
                "clips": len(next(iter(runs.values()))["labels"]),
                "gap": max(r["gap"] for r in runs.values()),
            }
            if dtype != "float32":
                entry |= change_against(reference, runs, class_names)
            rows["methods"].setdefault(method, {})[dtype] = entry
        for dtype in DTYPES[1:]:
            runs = {s: per_run[(method, "test audio " + dtype)][s] for s in sorted(shared)}
            same = np.mean(
                [np.mean(np.equal(runs[s]["predictions"], reference[s]["predictions"])) for s in runs]
            )
            rows["test_audio"].setdefault(method, {})[dtype] = {
                "mean": statistics.mean(r["metrics"]["macro_err"] for r in runs.values()),
                "same": float(same),
                **change_against(reference, runs, class_names),
            }
    return rows


# ---- report -------------------------------------------------------------------------------------
def percent(x: float | None) -> str:
    return "n/a" if x is None else f"{round(x, 4) + 0.0:+.1%}"  # + 0.0: no "-0.0%"


def change_cell(e: dict) -> str:
    return f"{percent(e['change'])} [{percent(e['low'])}, {percent(e['high'])}]"


def task_table(rows: dict) -> list[str]:
    header = ["method", *(f"{d} macro error" for d in DTYPES)]
    header += [f"{d} vs float32 [95% interval]" for d in DTYPES[1:]]
    body = [
        [
            method,
            *(f"{per_dtype[d]['mean']:.3f} ± {per_dtype[d]['std']:.3f}" for d in DTYPES),
            *(change_cell(per_dtype[d]) for d in DTYPES[1:]),
        ]
        for method, per_dtype in rows["methods"].items()
    ]
    return table(header, body)


def test_audio_table(rows: dict) -> list[str]:
    header = ["method"]
    header += [f"test audio in {d}: macro error, change [95% interval], same class" for d in DTYPES[1:]]
    body = [
        [
            method,
            *(
                f"{e['mean']:.3f}, {change_cell(e)}, {e['same']:.1%}"
                for e in (per_dtype[d] for d in DTYPES[1:])
            ),
        ]
        for method, per_dtype in rows["test_audio"].items()
    ]
    return table(header, body)


def verdicts(tasks: dict[str, dict]) -> list[str]:
    """Per dtype: the intervals that lie above zero (a loss), else that none does, and the largest loss
    the intervals leave open."""
    lines = []
    for dtype in DTYPES[1:]:
        entries = [(t, m, e[dtype]) for t, rows in tasks.items() for m, e in rows["methods"].items()]
        worse = [
            f"{t} {m} [{percent(e['low'])}, {percent(e['high'])}]"
            for t, m, e in entries
            if (e["low"] or 0) > 0
        ]
        highs = [e["high"] for _, _, e in entries if e["high"] is not None]
        verdict = "a loss: " + ", ".join(worse) if worse else "no interval lies above zero (no loss shown)"
        if not highs:
            verdict += "; no interval could be formed"
        elif max(highs) > 0:
            verdict += f"; the largest upper end, {max(highs):+.1%}, is a loss these runs cannot rule out"
        else:
            verdict += "; every interval lies at or below zero (fewer errors)"
        stored = [e[dtype] for rows in tasks.values() for e in rows.get("test_audio", {}).values()]
        if stored:
            lows = [e["low"] for e in stored if e["low"] is not None]
            highs = [e["high"] for e in stored if e["high"] is not None]
            span = f"[{percent(min(lows, default=None))}, {percent(max(highs, default=None))}]"
            verdict += (
                f"; the float32 models on test audio stored in {dtype}: every interval within {span}, the "
                f"same class on at least {min(e['same'] for e in stored):.1%} of clips"
            )
        lines.append(f"- {dtype}: {verdict}.")
    return lines


def report(tasks: dict[str, dict], command: str, seconds: float) -> str:
    machine = f"{os.cpu_count()}-core {platform.machine()} CPU"
    lines = [
        "# Cache dtype: bytes and test error against float32",
        "",
        f"Command: `{command}`. Run: {machine}, clusterlight {__version__}, torch {torch.__version__}, "
        f"{datetime.date.today().isoformat()}; {seconds:.0f} s (training included where a run was not there "
        "yet).",
        "",
        "Macro test error (1 - recall, averaged over the classes), mean ± std over seeds, from each run's "
        "selected checkpoint on its test split read from its own cache. Change = (err_dtype - err_float32) "
        "/ err_float32, [95% paired percentile bootstrap interval, 2000 resamples of seeds and test clips, "
        "clips stratified by class]; a negative change is fewer errors.",
        "",
    ]
    for task, rows in tasks.items():
        bph = rows["bytes_per_hour"]
        lines += [
            f"## {task}",
            "",
            "Waveform cache, MB per hour of audio: "
            + ", ".join(f"{d} {bph[d] / 1e6:.1f} ({bph[d] / bph['float32']:.2f}x)" for d in DTYPES)
            + ".",
            "",
            *task_table(rows),
            "",
            "The float32 models on their test clips stored once more in float16 or int16 (what storing "
            "costs a trained model, without training's seed-to-seed chaos):",
            "",
            *test_audio_table(rows),
            "",
            f"Seeds x test clips: {len(rows['methods'][next(iter(rows['methods']))]['float32']['seeds'])} x "
            f"{next(iter(rows['methods'].values()))['float32']['clips']}. Largest gap between a recomputed "
            "macro error and the run's logged one: "
            + f"{max(e['gap'] for m in rows['methods'].values() for e in m.values()):.4f}.",
            "",
        ]
    lines += ["## Verdict", "", *verdicts(tasks), ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "runs/cache_dtype"), help="the quickstart runs per dtype")
    p.add_argument("--rare4", metavar="RUNS", help="the float32 rare4 runs (RUNS_float16, RUNS_int16 beside)")
    p.add_argument("--results", default=str(RESULTS))
    a = p.parse_args()
    t_start = time.perf_counter()
    rare4 = rare4_runs(Path(a.rare4)) if a.rare4 else None  # before training anything: it may exit
    quickstart = quickstart_runs(Path(a.out))
    methods = [m for m in OmegaConf.load(QUICKSTART).methods]
    tasks = {"Quickstart (synthetic, LSTM, 3 seeds)": compare("quickstart", quickstart, methods)}
    if rare4 is not None:
        tasks["rare4 pair (UrbanSound8K, CNN, 5 seeds)"] = compare("rare4", rare4, RARE4_METHODS)
    command = "python benchmarks/cache_dtype.py" + ("".join(f" {x}" for x in sys.argv[1:]))
    text = report(tasks, command, time.perf_counter() - t_start)
    Path(a.results).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
