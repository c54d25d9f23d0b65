"""The detection benchmark: class-weighted baseline vs the clustered pipeline, detecting rare events in
long recordings.

1. **Train** the baseline and clustered methods of the README's quickstart experiment
   (``configs/experiment/quickstart.yaml``: same data and budget, seeds 0-2) into ``--out`` (default
   ``runs/detection``, git-ignored); finished runs there are reused (``clusterlight.experiment``), so a
   rerun only detects and scores.
2. **Generate** ``--recordings`` recordings of ``--minutes`` each (``clusterlight.data.long_synth``):
   background with the rare classes mixed in at known onsets and SNRs, seed ``--long_seed`` (none of
   the training seeds), and their ``annotations.csv``.
3. **Detect** with each run's selected checkpoint (the last stage's, chosen by validation macro error)
   through ``clusterlight.inference.recordings``: windows of one clip every ``--hop`` seconds, the
   checkpoint's per-class thresholds when it has them (else 0.5; the table says which), median filter.
4. **Score** with event-based F1 and error rate, class-wise averaged, onsets within a 500 ms collar,
   offsets ignored (the DCASE 2017 task 2 rule, ``clusterlight.detection.scoring``), and print mean ±
   std over seeds per method, per-class F1, and the time taken; also written to
   ``benchmarks/results/detection.md``.

A window classifier fires for an event anywhere inside its window, so a run of active windows
starts early by up to a window, which the 500 ms collar does not forgive (the "onset offset" columns
show it). The first table trims each event by the median onset lead of that run's untrimmed
detections on other annotated recordings (seed ``--long_seed`` + 1: validation, never the recordings
scored), as ``clusterlight detect --annotations`` measures it and ``--trim`` applies it. The second
table is ``clusterlight detect`` without a trim; the third scores the same score curves with each
window's score standing for its central hop (a diagnostic).

    python benchmarks/detection.py                      # about 6 min on a 2-core CPU, training included
    python benchmarks/detection.py --out runs/quickstart   # reuse the README quickstart's runs
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from clusterlight.data.long_synth import EVENT_CLASSES, generate_long
from clusterlight.data.synth import DEFAULT_SNR_DB
from clusterlight.detection import (
    Event,
    event_based_scores,
    onset_errors,
    onset_lead,
    read_events_csv,
    scores_to_events,
)
from clusterlight.experiment import run_experiment
from clusterlight.inference import load
from clusterlight.inference.recordings import Detection, detect_recording
from clusterlight.runs import selected_checkpoint
from clusterlight.version import __version__

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "configs" / "experiment" / "quickstart.yaml"
METHODS = ["baseline", "clustered"]  # the quickstart's reference and the paper's recipe (not its read-outs)
RESULTS = ROOT / "benchmarks" / "results" / "detection.md"
LONG_SEED = 20170


def events_by_rule(d: Detection, **rule) -> list[Event]:
    """``d``'s score curves to events with its thresholds and median filter, and the window geometry
    of ``clusterlight detect`` unless ``rule`` changes it (``window_s``, ``start_s``, ``trim_s``)."""
    rule = {"window_s": d.window_s, **rule}
    return scores_to_events(
        d.scores,
        d.class_names,
        d.thresholds,
        hop_s=d.hop_s,
        median_filter_length=d.median_filter,
        background=d.background,
        **rule,
    )


def centre_events(d: Detection) -> list[Event]:
    """Each window's score standing for its central hop: window ``i`` covers
    ``[i * hop + (window - hop) / 2, i * hop + (window + hop) / 2)``."""
    return events_by_rule(d, window_s=d.hop_s, start_s=(d.window_s - d.hop_s) / 2)


def run_scores(reference, estimated, classes, window_s: float) -> dict:
    """Event-based figures of one run: class-wise F1 and ER, per-class F1, the median onset offset, and
    the F1 with a collar of one window (did it find the events, wherever it put their onsets)."""
    s = event_based_scores(reference, estimated, classes)
    offsets = onset_errors(reference, estimated, window_s)
    return {
        "f1": s.f1,
        "er": s.error_rate,
        "f1_window_collar": event_based_scores(reference, estimated, classes, collar=window_s).f1,
        **{f"f1_{c}": s.class_wise[c].f1 for c in classes},
        "onset_offset": float(np.median(offsets)) if offsets else float("nan"),
        "n_sys": s.overall.n_sys,
    }


def mean_std(values: list[float]) -> str:
    if any(np.isnan(values)):
        return "n/a"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {std:.3f}"


def table(per_run: dict[str, dict[int, dict]], rule: str, classes) -> str:
    """Mean ± std over seeds per method (one rule's figures)."""
    head = ["method", "event F1", "event ER", *(f"F1 {c}" for c in classes), "onset offset (s, median)"]
    head += ["F1, collar = 1 window", "detections", "thresholds", "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, runs in per_run.items():
        figures = [r[rule] for r in runs.values()]
        cells = [
            method,
            *(mean_std([f[k] for f in figures]) for k in ["f1", "er", *(f"f1_{c}" for c in classes)]),
        ]
        cells += [
            f"{statistics.fmean(f['onset_offset'] for f in figures):+.2f}",
            mean_std([f["f1_window_collar"] for f in figures]),
            f"{statistics.fmean(f['n_sys'] for f in figures):.0f}",
            ", ".join(sorted({r["thresholds"] for r in runs.values()})),
            str(len(runs)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(per_run: dict[str, dict[int, dict]], rule: str, reference: str = "baseline") -> str:
    """One plain sentence per method against the reference: it beats (or is worse than) the reference
    only when both F1 and ER say so and the F1 difference exceeds the larger seed spread (std)."""
    base = [r[rule] for r in per_run[reference].values()]
    out = []
    for method, runs in per_run.items():
        if method == reference:
            continue
        mine = [r[rule] for r in runs.values()]
        df1 = statistics.fmean(f["f1"] for f in mine) - statistics.fmean(f["f1"] for f in base)
        der = statistics.fmean(f["er"] for f in mine) - statistics.fmean(f["er"] for f in base)
        spread = max((statistics.stdev(f["f1"] for f in x) if len(x) > 1 else 0.0) for x in (mine, base))
        if abs(df1) <= spread:
            said = f"no difference beyond the seed spread from {reference}"
        elif df1 > 0 and der < 0:
            said = f"beats {reference}"
        elif df1 < 0 and der > 0:
            said = f"is worse than {reference}"
        else:
            said = f"is mixed against {reference} (F1 and ER disagree)"
        out.append(f"{method}: {said}: event F1 {df1:+.3f}, ER {der:+.3f} (F1 seed std up to {spread:.3f}).")
    return " ".join(out)


def per_seed_table(per_run: dict[str, dict[int, dict]], classes) -> str:
    head = ["method", "seed", "checkpoint", "test macro err (clips)", "event F1", "event ER"]
    head += [f"F1 {c}" for c in classes] + ["trim s", "F1 trimmed", "ER trimmed", "train s", "detect s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, runs in per_run.items():
        for seed, r in runs.items():
            w, t = r["window"], r["trimmed"]
            cells = [method, str(seed), r["checkpoint"], f"{r['test_macro_err']:.3f}"]
            cells += [f"{w['f1']:.3f}", f"{w['er']:.3f}", *(f"{w[f'f1_{k}']:.3f}" for k in classes)]
            cells += [f"{r['trim_s']:.2f}", f"{t['f1']:.3f}", f"{t['er']:.3f}"]
            cells += [f"{r['train_s']:.0f}", f"{r['detect_s']:.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_run(ckpt: Path, out: Path):
    try:
        return load(ckpt)
    except ValueError as e:
        sys.exit(f"{e}\nThe runs in {out} predate model cards: delete them or pass another --out.")


def evaluate_run(model, recordings, reference, validation, hop_s: float, median: int, classes) -> dict:
    """Detect with one model over every recording and score three ways (see the module docstring);
    ``validation`` = (recordings, reference) of the recordings the trim is measured on."""
    t0 = time.perf_counter()
    found = {p.name: detect_recording(model, p, hop_s, None, median) for p in recordings}
    seconds = time.perf_counter() - t0
    window = next(iter(found.values())).window_s
    val_recordings, val_reference = validation
    val_found = {p.name: detect_recording(model, p, hop_s, None, median).events for p in val_recordings}
    trim = onset_lead(val_reference, val_found, within=window)
    return {
        "thresholds": next(iter(found.values())).thresholds_source,
        "detect_s": seconds,
        "trim_s": trim,
        "trimmed": run_scores(
            reference, {f: events_by_rule(d, trim_s=trim) for f, d in found.items()}, classes, window
        ),
        "window": run_scores(reference, {f: d.events for f, d in found.items()}, classes, window),
        "centre": run_scores(reference, {f: centre_events(d) for f, d in found.items()}, classes, window),
    }


def recordings_with_annotations(folder: Path, a, seed: int, sample_rate: int):
    generate_long(
        folder,
        a.recordings,
        a.minutes,
        seed=seed,
        sample_rate=sample_rate,
        events_per_minute=a.events_per_minute,
        overwrite=True,
    )
    recordings = sorted(folder.glob("*.wav"))
    return recordings, read_events_csv(folder / "annotations.csv", [r.name for r in recordings])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "runs" / "detection"), help="the experiment's run folder")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the experiment's (0 1 2)")
    p.add_argument("--recordings", type=int, default=3)
    p.add_argument("--minutes", type=float, default=2.0, help="length of each recording")
    p.add_argument("--events_per_minute", type=float, default=6.0)
    p.add_argument("--long_seed", type=int, default=LONG_SEED, help="seed of the long recordings")
    p.add_argument("--hop", type=float, default=0.25, help="detection window hop (s)")
    p.add_argument("--median_filter", type=int, default=3, help="median filter length (windows)")
    p.add_argument("--results", default=str(RESULTS), help="the markdown file to write")
    a = p.parse_args()
    t_start = time.perf_counter()
    out = Path(a.out)
    exp = OmegaConf.load(EXPERIMENT)
    seeds = a.seeds or list(exp.seeds)
    result = run_experiment(EXPERIMENT, str(out), seeds, methods=METHODS)
    checkpoints = {
        (m, s): selected_checkpoint(out, m, s, exp.methods[m].stages[-1].name) for m in METHODS for s in seeds
    }
    times = {"train": time.perf_counter() - t_start}

    t0 = time.perf_counter()
    sample_rate = load_run(next(iter(checkpoints.values())), out).card["audio"]["sample_rate"]
    recordings, reference = recordings_with_annotations(
        out / f"long_seed{a.long_seed}", a, a.long_seed, sample_rate
    )
    validation = recordings_with_annotations(
        out / f"long_seed{a.long_seed + 1}", a, a.long_seed + 1, sample_rate
    )
    times["generate"] = time.perf_counter() - t0

    classes = list(EVENT_CLASSES)
    per_run: dict[str, dict[int, dict]] = {m: {} for m in METHODS}
    t0 = time.perf_counter()
    for (method, seed), ckpt in checkpoints.items():
        run = result["runs"][method][str(seed)]
        model = load_run(ckpt, out)
        figures = evaluate_run(model, recordings, reference, validation, a.hop, a.median_filter, classes)
        per_run[method][seed] = {
            "checkpoint": ckpt.name,
            "test_macro_err": run["metrics"]["macro_err"],
            "train_s": run["wall_s"],
            **figures,
        }
        trim = figures["trim_s"]
        print(f"[detection] {method} seed {seed}: trim {trim:.2f} s, {figures['trimmed']}", flush=True)
    times["detect"] = time.perf_counter() - t0
    times["total"] = time.perf_counter() - t_start

    n_events = sum(map(len, reference.values()))
    report = render(a, per_run, classes, seeds, n_events, sample_rate, times)
    Path(a.results).parent.mkdir(parents=True, exist_ok=True)
    Path(a.results).write_text(report)
    print(report)


def machine() -> str:
    """The machine kind, e.g. ``2-core x86-64 CPU`` (training and detection run on the CPU)."""
    return f"{os.cpu_count()}-core {platform.machine().replace('_', '-')} CPU"


def render(a, per_run, classes, seeds, n_events: int, sample_rate: int, times: dict) -> str:
    """The markdown report: the two tables with their verdicts, the per-seed figures, the times."""
    detect_s = [r["detect_s"] for runs in per_run.values() for r in runs.values()]
    trained_s = sum(r["train_s"] for runs in per_run.values() for r in runs.values())
    lines = [
        "# Detection benchmark",
        "",
        f"Command: `{' '.join(['python benchmarks/detection.py', *sys.argv[1:]])}`. Run: {machine()}, "
        f"clusterlight {__version__}, {datetime.date.today().isoformat()}.",
        "",
        f"Models: `configs/experiment/quickstart.yaml` (class-weighted baseline vs clustered, same budget), "
        f"seeds {seeds}, each run's selected checkpoint. Recordings: {a.recordings} x {a.minutes:g} min at "
        f"{sample_rate} Hz (`clusterlight.data.long_synth`, seed {a.long_seed}), {n_events} events of "
        f"{', '.join(classes)} mixed into background at {DEFAULT_SNR_DB[0]:g} to {DEFAULT_SNR_DB[1]:g} dB "
        f"SNR. Detection: windows of one clip every {a.hop:g} s, median filter {a.median_filter}, "
        "thresholds as the `thresholds` column says (`checkpoint`: chosen on the validation split and "
        "stored in the checkpoint; `default 0.5`: the checkpoint has none). Scoring: event-based, "
        "class-wise average, onset collar 500 ms, offsets ignored (DCASE 2017 task 2). Mean ± std over "
        "seeds. `onset offset`: median of (nearest same-class detected onset - true onset) over the "
        "events with such a detection within one window. `F1, collar = 1 window`: the same scoring with "
        "a collar as long as the window, i.e. whether the events were found at all.",
        "",
        "## clusterlight detect --trim (the trim measured on validation recordings)",
        "",
        f"Each run's trim is the median onset lead of its untrimmed detections on {a.recordings} other "
        f"recordings (seed {a.long_seed + 1}), never on the recordings scored: "
        + ", ".join(
            f"{m} {statistics.fmean(r['trim_s'] for r in runs.values()):.2f} s" for m, runs in per_run.items()
        )
        + " (mean over seeds).",
        "",
        table(per_run, "trimmed", classes),
        "",
        verdict(per_run, "trimmed"),
        "",
        "## clusterlight detect without --trim (an event spans its active windows)",
        "",
        table(per_run, "window", classes),
        "",
        verdict(per_run, "window"),
        "",
        "## Diagnostic: each window's score standing for its central hop",
        "",
        table(per_run, "centre", classes),
        "",
        verdict(per_run, "centre"),
        "",
        "## Per seed",
        "",
        per_seed_table(per_run, classes),
        "",
        f"Time: {times['total']:.0f} s in all: training {times['train']:.0f} s in this "
        f"call (the runs took {trained_s:.0f} s when trained; finished runs are reused), "
        f"generating the recordings {times['generate']:.1f} s, detection {times['detect']:.0f} s "
        f"({statistics.fmean(detect_s):.1f} s per run for {a.recordings * a.minutes:g} min of audio).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
