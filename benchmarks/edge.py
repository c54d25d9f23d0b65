"""The edge benchmark: int8 against fp32 models, and the streaming detector, on one CPU thread.

1. **Train** (or reuse) the quickstart's LSTM runs (``configs/experiment/quickstart.yaml``) and the same
   job with the CNN (``configs/experiment/quickstart_cnn.yaml``): the class-weighted baseline and the
   clustered method with the centroid-initialised head, seeds 0-2, into ``runs/`` (git-ignored).
2. **Export** each run's selected checkpoint to ONNX fp32 and int8 (``clusterlight export --quantize
   int8``: static, calibrated on 256 clips of the run's training split, for the CNN; dynamic for the
   LSTM; the front end stays float32).
3. **Size and speed**: file bytes, and clips/s at batch 1 and 64 on one thread for PyTorch fp32,
   onnxruntime fp32 and onnxruntime int8 (seed 0's baseline of each network).
4. **Accuracy**: macro test error (1 - recall, averaged over classes) of int8 against fp32 on each run's
   test split, with the project's paired bootstrap interval of the relative change (seeds and test
   clips resampled, clips stratified by class: ``clusterlight.experiment.statistics``), and the share of
   clips on which the two predict the same class.
5. **Streaming**: ``StreamingDetector`` over long synthetic recordings (``clusterlight.data.long_synth``,
   seed ``--long_seed``) in 100 ms chunks, on one thread: the real-time factor (time spent in ``push``
   and ``flush`` over the audio's duration), the emission delay of each event (stream time when it is
   returned minus its end before the trim: median, 95th percentile, largest) against the bound of one
   window plus the median filter's span, whether the events equal offline detection's, and event-based
   F1 / ER of both (500 ms onset collar; each event shortened by the onset lead measured offline on other
   recordings, seed ``--long_seed`` + 1, as ``clusterlight detect --annotations`` measures it).
6. **On real recordings** (``--rare4 RUNS``): steps 2-4 for the rare4 pair that ``benchmarks/rare4.py
   --out RUNS`` trained (RARE4_COMMAND: class-weighted CE and the paper's recipe, LSTM and CNN, 5
   seeds, train fold 1 at 2:2:1:26, test fold 2). Needs the data root the runs were trained with.

Prints Markdown, also written to ``--results`` (default ``benchmarks/results/edge.md``); each target is
stated as met or missed.

    python benchmarks/edge.py      # about 20 min on a 2-core CPU with the runs trained (40 min without)
    python benchmarks/edge.py --rare4 runs/rare4   # and the rare4 pair (train it first: RARE4_COMMAND)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from clusterlight.data.long_synth import generate_long
from clusterlight.detection import event_based_scores, onset_lead, read_events_csv
from clusterlight.experiment import run_experiment
from clusterlight.experiment.statistics import relative_reduction_ci
from clusterlight.inference import OnnxModel, StreamingDetector, load
from clusterlight.inference.calibration import split_windows, training_windows
from clusterlight.inference.export import export_onnx
from clusterlight.inference.quantize import quantize_onnx
from clusterlight.inference.recordings import detect_recording
from clusterlight.inference.streaming import torch_scores
from clusterlight.labels import BACKGROUND
from clusterlight.runs import selected_checkpoint
from clusterlight.version import __version__

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = {
    "LSTM": ROOT / "configs/experiment/quickstart.yaml",
    "CNN": ROOT / "configs/experiment/quickstart_cnn.yaml",
}
METHODS = ["baseline", "clustered_centroid_head"]
# the rare4 pair (benchmarks/rare4.py's runs): class-weighted CE and the paper's two-stage recipe, LSTM and
# CNN, train fold 1 at 2:2:1:26, test fold 2
RARE4 = {"rare4 LSTM": "rare4_lstm_2-2-1-26_1to2", "rare4 CNN": "rare4_cnn_2-2-1-26_1to2"}
RARE4_METHODS = ["weighted_ce", "clustered"]
RARE4_COMMAND = (
    "python benchmarks/rare4.py --data_root PATH --backbones lstm cnn --directions 1to2 --ratios 2:2:1:26 "
    "--methods weighted_ce clustered --seeds 0 1 2 3 4"
)
RESULTS = ROOT / "benchmarks/results/edge.md"
LONG_SEED = 31000
CHUNK_S = 0.1
STREAMING_NOTE = re.sub(
    r"\s+",
    " ",
    """Real-time factor: seconds in `push`/`flush` over seconds of audio. Delay: stream time when an event
    is returned minus its end before the trim (at most one chunk of it is the chunking). Bound: one window
    plus the median filter's span (median_filter x hop). Event F1 / ER: 500 ms onset collar, class-wise
    average, offsets ignored. Offline: `clusterlight.inference.detect_recording` over each whole recording
    with the same settings and the same runtime's scores.""",
)
RARE4_NOTE = re.sub(
    r"\s+",
    " ",
    """rare4 models: the selected checkpoints of `{command} --out {runs}` (`benchmarks/rare4.py`):
    UrbanSound8K folds 1 and 2 reduced to dog_bark, car_horn, gun_shot and a pooled background; trained on
    fold 1 at 2:2:1:26 (validation carved from it by source recording), tested on all of fold 2 at its
    natural ratio; 4 s clips at 16 kHz, short ones loop-padded; class-weighted CE (weighted_ce) and the
    paper's two-stage recipe (clustered). The CNN is calibrated on 256 clips of fold 1's training split.
    No streaming rows: the long recordings are synthetic, with the quickstart's classes.""",
)
TARGETS = {"bytes": 0.35, "speed_b1": 1.5, "error_change": 0.05, "rtf": 0.05}


# ---- runs and exports ---------------------------------------------------------------------------
def trained_runs(seeds: list[int] | None) -> dict[tuple[str, str, int], Path]:
    """{(net, method, seed): selected checkpoint}, training what is not there yet."""
    found = {}
    for net, config in EXPERIMENTS.items():
        exp = OmegaConf.load(config)
        out = ROOT / exp.output_dir
        run_seeds = seeds or list(exp.seeds)
        run_experiment(config, str(out), run_seeds, methods=METHODS)
        for method in METHODS:
            stage = exp.methods[method].stages[-1].name
            for seed in run_seeds:
                found[(net, method, seed)] = selected_checkpoint(out, method, seed, stage)
    return found


def rare4_runs(folder: Path, speed_seed: int) -> dict[tuple[str, str, int], Path]:
    """{(net, method, seed): selected checkpoint} of the rare4 pair that ``benchmarks/rare4.py --out
    folder`` trained (RARE4_COMMAND); exits naming that command when a setting, a method or the speed
    seed's baseline is missing."""
    train = f"train them with\n  {RARE4_COMMAND} --out {folder} --results_dir {folder}"
    found = {}
    for net, setting in RARE4.items():
        results = folder / setting / "results.json"
        if not results.is_file():
            sys.exit(f"edge benchmark: no rare4 runs in {results.parent}; {train}")
        done = json.loads(results.read_text())
        for method in RARE4_METHODS:
            seeds = sorted(int(seed) for seed in done["runs"].get(method, {}))
            if not seeds or (method == RARE4_METHODS[0] and speed_seed not in seeds):
                sys.exit(
                    f"edge benchmark: {results} has {method} for seeds {seeds} (--speed_seed {speed_seed}); "
                    + train
                )
            stage = done["experiment"]["methods"][method]["stages"][-1]["name"]
            for seed in seeds:
                found[(net, method, seed)] = selected_checkpoint(folder / setting, method, seed, stage)
    return found


def export_pair(ckpt: Path, folder: Path) -> tuple[Path, Path, str]:
    """(fp32 ONNX, int8 ONNX, the quantization method) of a checkpoint, as ``clusterlight export``
    writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = export_onnx(load(ckpt), folder / "fp32.onnx")
    import onnx

    from clusterlight.inference.quantize import choose_method

    method, _ = choose_method(onnx.load(str(fp32)))
    calibration = training_windows(ckpt) if method == "static" else None
    int8 = quantize_onnx(fp32, folder / "int8.onnx", calibration)
    return fp32, int8, method


def frontend_int8(ckpt: Path, fp32: Path, method: str, out: Path) -> Path:
    """The int8 model with the front end quantized too (what keeping it float32 avoids)."""
    calibration = training_windows(ckpt) if method == "static" else None
    return quantize_onnx(fp32, out, calibration, quantize_frontend=True)


# ---- size, speed, accuracy ------------------------------------------------------------------------
def clips_per_second(score, windows: np.ndarray, batch: int, seconds: float) -> float:
    """Clips/s of ``score(batch of windows)`` over at least ``seconds`` after one warm-up call."""
    score(windows[:batch])
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for start in range(0, len(windows) - batch + 1, batch):
            score(windows[start : start + batch])
            done += batch
    return done / (time.perf_counter() - t0)


def speed_row(ckpt: Path, fp32: Path, int8: Path, windows: np.ndarray, seconds: float) -> dict:
    runtimes = {
        "PyTorch fp32": torch_scores(load(ckpt), batch_size=64),
        "ONNX fp32": OnnxModel(fp32, threads=1).probabilities,
        "ONNX int8": OnnxModel(int8, threads=1).probabilities,
    }
    out: dict = {"bytes": {"fp32": fp32.stat().st_size, "int8": int8.stat().st_size}}
    for name, score in runtimes.items():
        out[name] = {b: clips_per_second(score, windows, b, seconds) for b in (1, 64)}
    return out


def predictions(score, windows: np.ndarray) -> np.ndarray:
    return np.concatenate([score(windows[i : i + 64]).argmax(1) for i in range(0, len(windows), 64)])


def macro_error(labels: np.ndarray, predicted: np.ndarray) -> float:
    classes = np.unique(labels)
    return float(np.mean([np.mean(predicted[labels == k] != k) for k in classes]))


def accuracy_runs(ckpt: Path, fp32: Path, int8: Path) -> dict:
    """Per-clip test predictions of PyTorch fp32, ONNX fp32 and ONNX int8 (as the statistics take them)."""
    windows, labels = split_windows(ckpt, "test")
    scores = {
        "torch": torch_scores(load(ckpt)),
        "fp32": OnnxModel(fp32).probabilities,
        "int8": OnnxModel(int8).probabilities,
    }
    out = {}
    for name, score in scores.items():
        predicted = predictions(score, windows)
        out[name] = {
            "labels": labels.tolist(),
            "predictions": predicted.tolist(),
            "metrics": {"macro_err": macro_error(labels, predicted)},
        }
    return out


def change_against(reference: dict[int, dict], runs: dict[int, dict], class_names: list[str]) -> dict:
    """Relative change of macro error of ``runs`` against ``reference`` (per seed, with per-clip
    predictions), with its paired interval: minus the statistics' reduction, so the interval's ends swap."""
    ci = relative_reduction_ci(reference, runs, class_names)["macro_err"]
    flip = {k: None if ci[k] is None else -ci[k] for k in ("estimate", "low", "high")}
    return {"change": flip["estimate"], "low": flip["high"], "high": flip["low"]}


def error_change(runs: dict[int, dict], class_names: list[str]) -> dict:
    """Relative change of macro error, int8 against fp32 ONNX, over the seeds, with its interval."""
    fp32 = {s: r["fp32"] for s, r in runs.items()}
    int8 = {s: r["int8"] for s, r in runs.items()}
    agree = np.mean(
        [
            np.mean(np.array(r["fp32"]["predictions"]) == np.array(r["int8"]["predictions"]))
            for r in runs.values()
        ]
    )
    return {
        "fp32": statistics.mean(r["fp32"]["metrics"]["macro_err"] for r in runs.values()),
        "int8": statistics.mean(r["int8"]["metrics"]["macro_err"] for r in runs.values()),
        "torch": statistics.mean(r["torch"]["metrics"]["macro_err"] for r in runs.values()),
        **change_against(fp32, int8, class_names),
        "agree": float(agree),
        "seeds": sorted(runs),
        "clips": len(next(iter(runs.values()))["fp32"]["labels"]),
    }


# ---- streaming ----------------------------------------------------------------------------------
def long_recordings(folder: Path, seed: int, count: int, minutes: float, sample_rate: int):
    if not (folder / "annotations.csv").is_file():
        generate_long(folder, count, minutes, seed=seed, sample_rate=sample_rate, events_per_minute=6.0)
    recordings = sorted(folder.glob("*.wav"))
    return recordings, read_events_csv(folder / "annotations.csv", [r.name for r in recordings])


def stream_recording(detector: StreamingDetector, wave: np.ndarray) -> tuple[list, list[float], float]:
    """(events sorted as offline, emission delays, seconds spent scoring) of one recording in 100 ms
    chunks."""
    chunk = int(round(CHUNK_S * detector.sample_rate))
    found, delays, spent = [], [], 0.0
    for start in range(0, len(wave) + 1, chunk):
        t0 = time.perf_counter()
        events = detector.push(wave[start : start + chunk]) if start < len(wave) else detector.flush()
        spent += time.perf_counter() - t0
        found += events
        delays += [detector.time_s - (e.offset + detector.trim_s) for e in events]  # from the untrimmed end
    order = {c: i for i, c in enumerate(detector.class_names)}
    return sorted(found, key=lambda e: (e.onset, order[e.label])), delays, spent


def streaming_row(model, scorer, recordings, reference, settings: dict) -> dict:
    """Stream each recording with ``scorer`` (one runtime); compare with offline detection."""
    from clusterlight.data.decode import decode

    classes = [c for c in model.card["class_names"] if c != BACKGROUND]
    sample_rate = int(model.card["audio"]["sample_rate"])
    streamed, offline, delays, spent, audio_s = {}, {}, [], 0.0, 0.0
    for path in recordings:
        wave = decode(str(path), sample_rate)
        detector = StreamingDetector(model, scores=scorer, **settings)
        streamed[path.name], d, s = stream_recording(detector, wave)
        offline[path.name] = detect_recording(model, path, **settings, scores=scorer).events
        delays, spent, audio_s = delays + d, spent + s, audio_s + len(wave) / sample_rate
    same = all(
        [(e.label, round(e.onset, 6), round(e.offset, 6)) for e in streamed[k]]
        == [(e.label, round(e.onset, 6), round(e.offset, 6)) for e in offline[k]]
        for k in streamed
    )
    window_s = detector.window_s
    return {
        "rtf": spent / audio_s,
        "delay_median": float(np.median(delays)) if delays else float("nan"),
        "delay_p95": float(np.percentile(delays, 95)) if delays else float("nan"),
        "delay_max": float(np.max(delays)) if delays else float("nan"),
        "bound": window_s + settings["median_filter"] * detector.hop_s,
        "events": sum(map(len, streamed.values())),
        "identical": same,
        "stream": event_based_scores(reference, streamed, classes),
        "offline": event_based_scores(reference, offline, classes),
    }


def measured_trim(model, recordings, reference, hop_s: float, median: int) -> float:
    """The onset lead of untrimmed offline detections on annotated recordings (the trim to apply)."""
    found = {p.name: detect_recording(model, p, hop_s, None, median).events for p in recordings}
    return max(0.0, onset_lead(reference, found, within=model.card["audio"]["duration"]))


def measure_streams(net: str, ckpt: Path, fp32: Path, int8: Path, work: Path, a, streams: dict) -> float:
    """Stream the long recordings with each runtime into ``streams[(net, runtime)]``; returns the trim."""
    model = load(ckpt)
    sample_rate = int(model.card["audio"]["sample_rate"])
    recordings, reference = long_recordings(
        work / f"long{a.long_seed}", a.long_seed, a.recordings, a.minutes, sample_rate
    )
    val = long_recordings(
        work / f"long{a.long_seed + 1}", a.long_seed + 1, a.recordings, a.minutes, sample_rate
    )
    trim = measured_trim(model, *val, a.hop, a.median_filter)
    settings = dict(hop_s=a.hop, median_filter=a.median_filter, trim_s=trim)
    for runtime, scorer in (
        ("PyTorch fp32", torch_scores(model)),
        ("ONNX fp32", OnnxModel(fp32, threads=1).probabilities),
        ("ONNX int8", OnnxModel(int8, threads=1).probabilities),
    ):
        streams[(net, runtime)] = streaming_row(model, scorer, recordings, reference, settings)
        print(f"[edge] {net} {runtime} stream: rtf {streams[(net, runtime)]['rtf']:.4f}", file=sys.stderr)
    return trim


# ---- report -------------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def md_row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def table(header: list[str], rows: list[list]) -> list[str]:
    return [md_row(*header), md_row(*["---"] * len(header)), *(md_row(*r) for r in rows)]


def size_speed_table(speed: dict) -> list[str]:
    header = [
        "network",
        "fp32 bytes",
        "int8 bytes",
        "int8 / fp32",
        "runtime",
        "clips/s, batch 1",
        "clips/s, batch 64",
    ]
    rows = []
    for net, row in speed.items():
        b = row["bytes"]
        sizes = [f"{b['fp32']:,}", f"{b['int8']:,}", f"{b['int8'] / b['fp32']:.2f}"]
        for i, name in enumerate(("PyTorch fp32", "ONNX fp32", "ONNX int8")):
            lead = [net, *sizes] if i == 0 else ["", "", "", ""]
            rows.append([*lead, name, f"{row[name][1]:.1f}", f"{row[name][64]:.1f}"])
    return table(header, rows)


def accuracy_table(accuracy: dict) -> list[str]:
    header = ["network", "method", "int8 quantization", "PyTorch fp32", "ONNX fp32", "ONNX int8"]
    header += ["change, int8 vs fp32 [95% interval]", "same class as fp32", "seeds x test clips"]
    rows = [
        [
            net,
            method,
            a["quantization"],
            *(f"{a[k]:.3f}" for k in ("torch", "fp32", "int8")),
            f"{a['change']:+.1%} [{a['low']:+.1%}, {a['high']:+.1%}]",
            f"{a['agree']:.1%}",
            f"{len(a['seeds'])} x {a['clips']}",
        ]
        for (net, method), a in accuracy.items()
    ]
    return table(header, rows)


def streaming_table(streams: dict) -> list[str]:
    header = ["network", "runtime", "real-time factor", "delay median / p95 / max (s)", "bound (s)", "events"]
    header += ["same events as offline", "event F1 stream / offline", "event ER stream / offline"]
    rows = [
        [
            net,
            runtime,
            f"{r['rtf']:.4f}",
            f"{r['delay_median']:.2f} / {r['delay_p95']:.2f} / {r['delay_max']:.2f}",
            f"{r['bound']:.2f}",
            r["events"],
            "yes" if r["identical"] else "**no**",
            f"{r['stream'].f1:.3f} / {r['offline'].f1:.3f}",
            f"{r['stream'].error_rate:.3f} / {r['offline'].error_rate:.3f}",
        ]
        for (net, runtime), r in streams.items()
    ]
    return table(header, rows)


def targets_table(speed: dict, accuracy: dict, streams: dict) -> list[str]:
    rows = []
    for net, row in speed.items():
        ratio = row["bytes"]["int8"] / row["bytes"]["fp32"]
        rows.append([f"{net}: int8 bytes <= 0.35x fp32", f"{ratio:.2f}x", verdict(ratio <= TARGETS["bytes"])])
        gain = row["ONNX int8"][1] / row["ONNX fp32"][1]
        target = f"{net}: int8 clips/s >= 1.5x ONNX fp32 at batch 1"
        rows.append([target, f"{gain:.2f}x", verdict(gain >= TARGETS["speed_b1"])])
    for (net, method), a in accuracy.items():
        if "front end" in method:  # a measurement of the choice to keep it float, not a target
            continue
        within = -TARGETS["error_change"] <= a["low"] and a["high"] <= TARGETS["error_change"]
        target = f"{net} {method}: macro-error change interval within ±5%"
        rows.append([target, f"[{a['low']:+.1%}, {a['high']:+.1%}]", verdict(within)])
    for (net, runtime), r in streams.items():
        if net == "LSTM":
            target = f"LSTM {runtime}: real-time factor <= 0.05"
            rows.append([target, f"{r['rtf']:.4f}", verdict(r["rtf"] <= TARGETS["rtf"])])
        figure = f"max {r['delay_max']:.2f} s vs {r['bound']:.2f} s"
        rows.append(
            [f"{net} {runtime}: delay <= window + median span", figure, verdict(r["delay_max"] <= r["bound"])]
        )
        same = "identical" if r["identical"] else "differ"
        rows.append([f"{net} {runtime}: streamed events = offline", same, verdict(r["identical"])])
    return table(["target", "figure", ""], rows)


def report(a, speed, accuracy, streams, trims, seconds: float) -> str:
    machine = f"{os.cpu_count()}-core {platform.machine()} CPU"
    date = datetime.date.today().isoformat()
    lines = [
        "# Edge benchmark: int8 models and streaming detection on one CPU thread",
        "",
        f"Command: `python benchmarks/edge.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`. "
        f"Run: {machine}, one thread per runtime (torch.set_num_threads(1), onnxruntime intra-op 1), "
        f"clusterlight {__version__}, torch {torch.__version__}, onnxruntime {_ort_version()}, {date}; "
        f"{seconds:.0f} s.",
        "",
        "Models: the selected checkpoints of `configs/experiment/quickstart.yaml` (LSTM) and "
        "`configs/experiment/quickstart_cnn.yaml` (CNN), methods "
        + ", ".join(METHODS)
        + ", on the built-in synthetic data (2 s clips at 16 kHz). int8: `clusterlight export --quantize "
        "int8` (onnxruntime quantization; the log-mel front end stays float32; static QDQ with 256 "
        "calibration clips of the run's training split for the CNN, dynamic for the LSTM, whose LSTM op "
        "static quantization cannot run).",
        *(["", RARE4_NOTE.format(command=RARE4_COMMAND, runs=a.rare4)] if a.rare4 else []),
        "",
        "## Size and one-thread throughput",
        "",
        f"Seed {a.speed_seed}'s class-weighted baseline of each network; clips/s over at least "
        f"{a.seconds:g} s per cell.",
        "",
        *size_speed_table(speed),
        "",
        "## Accuracy: int8 against fp32",
        "",
        "Macro test error (1 - recall, averaged over the classes), mean over seeds. Change = (err_int8 - "
        "err_fp32) / err_fp32 against ONNX fp32, [95% paired percentile bootstrap interval, 2000 resamples "
        "of seeds and test clips, clips stratified by class] (`clusterlight.experiment.statistics`).",
        "",
        *accuracy_table(accuracy),
        "",
        "## Streaming",
        "",
        f"{a.recordings} recordings x {a.minutes:g} min (`clusterlight.data.long_synth`, "
        f"seed {a.long_seed}), pushed in {CHUNK_S * 1000:.0f} ms chunks; hop {a.hop:g} s, "
        f"median filter {a.median_filter}; each event trimmed by the onset lead measured offline on "
        f"other recordings (seed {a.long_seed + 1}): "
        + ", ".join(f"{net} {t:.2f} s" for net, t in trims.items())
        + ". "
        + STREAMING_NOTE,
        "",
        *streaming_table(streams),
        "",
        "## Targets",
        "",
        *targets_table(speed, accuracy, streams),
        "",
    ]
    return "\n".join(lines)


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


# ---- main ---------------------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the experiments' (0 1 2)")
    p.add_argument("--speed_seed", type=int, default=0, help="whose baseline the speed rows measure")
    p.add_argument("--seconds", type=float, default=3.0, help="measuring time per throughput cell")
    p.add_argument("--recordings", type=int, default=3)
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--long_seed", type=int, default=LONG_SEED)
    p.add_argument("--hop", type=float, default=0.25, help="detection window hop (s)")
    p.add_argument("--median_filter", type=int, default=3)
    p.add_argument("--work", default=str(ROOT / "runs/edge"), help="exports and recordings")
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument(
        "--rare4",
        metavar="RUNS",
        help="also the rare4 pair trained by benchmarks/rare4.py --out RUNS (e.g. runs/rare4): size, speed "
        "and int8 accuracy on real recordings, every seed found there (--seeds is the quickstart's)",
    )
    a = p.parse_args()
    t_start = time.perf_counter()
    torch.set_num_threads(1)
    rare4 = rare4_runs(Path(a.rare4), a.speed_seed) if a.rare4 else {}  # before training: it may exit
    runs = trained_runs(a.seeds) | rare4
    nets = {net: ("baseline", METHODS) for net in EXPERIMENTS}
    if rare4:
        nets |= {net: (RARE4_METHODS[0], RARE4_METHODS) for net in RARE4}
    work = Path(a.work)
    exports = {
        key: export_pair(ckpt, work / "{}_{}_seed{}".format(key[0].replace(" ", "_"), *key[1:]))
        for key, ckpt in runs.items()
    }
    speed, accuracy, streams, trims = {}, {}, {}, {}
    for net, (baseline, methods) in nets.items():
        ckpt = runs[(net, baseline, a.speed_seed)]
        fp32, int8, method = exports[(net, baseline, a.speed_seed)]
        windows, _ = split_windows(ckpt, "test", count=256)
        speed[net] = speed_row(ckpt, fp32, int8, windows, a.seconds)
        print(f"[edge] {net} speed: {json.dumps(speed[net])}", file=sys.stderr)
        if net in EXPERIMENTS:
            both = frontend_int8(ckpt, fp32, method, work / f"{net}_frontend_int8.onnx")
            accuracy[(net, f"baseline, front end int8 too (seed {a.speed_seed})")] = {
                **error_change(
                    {a.speed_seed: accuracy_runs(ckpt, fp32, both)}, load(ckpt).card["class_names"]
                ),
                "quantization": f"{method}, {both.stat().st_size:,} bytes",
            }
        for name in methods:
            keys = [k for k in runs if k[:2] == (net, name)]
            per_seed = {k[2]: accuracy_runs(runs[k], *exports[k][:2]) for k in keys}
            class_names = load(runs[keys[0]]).card["class_names"]
            accuracy[(net, name)] = {
                **error_change(per_seed, class_names),
                "quantization": exports[keys[0]][2],
            }
            print(f"[edge] {net} {name}: {accuracy[(net, name)]}", file=sys.stderr)
        if net in EXPERIMENTS:  # the long recordings are synthetic: the quickstart's classes only
            trims[net] = measure_streams(net, ckpt, fp32, int8, work, a, streams)
    text = report(a, speed, accuracy, streams, trims, time.perf_counter() - t_start)
    Path(a.results).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
