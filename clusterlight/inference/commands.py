"""``clusterlight predict --ckpt_path X INPUT...``, ``clusterlight detect --ckpt_path X RECORDING...``,
``clusterlight export`` (ONNX, int8 ONNX, TorchScript) and ``clusterlight stream --ckpt_path X`` or
``--onnx MODEL`` (events of a live stream)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from clusterlight.detection import event_based_scores, onset_lead, read_events_csv, write_events_csv
from clusterlight.inference.loading import load
from clusterlight.inference.predict import Predictor, audio_inputs, write_predictions
from clusterlight.inference.recordings import detect_recording, plot
from clusterlight.inference.thresholds import thresholds_of
from clusterlight.labels import BACKGROUND
from clusterlight.progress import progress


def is_file_prediction(args: list[str]) -> bool:
    """``predict`` on files (this module) rather than LightningCLI's ``predict`` on a DataModule split:
    a checkpoint is given and no ``--config``."""
    return "--ckpt_path" in " ".join(args).replace("=", " ").split() and not any(
        a == "--config" or a.startswith("--config=") for a in args
    )


def predict_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(
        prog="clusterlight predict", description="Class probabilities of audio files."
    )
    p.add_argument("--ckpt_path", required=True, help="a checkpoint written by clusterlight fit/experiment")
    p.add_argument(
        "inputs", nargs="+", help="audio files, folders (recursive) or manifests (CSV with 'path')"
    )
    p.add_argument("--out", default="predictions.csv", help="CSV to write (and the same name .jsonl)")
    p.add_argument("--embeddings", default=None, help="also write each file's mean embedding to this .npy")
    p.add_argument(
        "--hop", type=float, default=None, help="window hop in s for long files (default: half a clip)"
    )
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    model = load(a.ckpt_path, a.device)
    paths = audio_inputs(a.inputs)
    predictor = Predictor(model, a.hop)
    rows = progress(predictor.predict(paths), "predict", unit="files", total=len(paths))
    out = Path(a.out)
    written, skipped = write_predictions(
        rows, predictor.class_names, out, Path(a.embeddings) if a.embeddings else None
    )
    for row in skipped:
        print(f"[clusterlight] skipped {row['path']}: {row['error']}", file=sys.stderr)
    print(
        f"wrote {written} predictions to {out} and {out.with_suffix('.jsonl')}; "
        f"skipped {len(skipped)} file(s)"
    )


def add_detection_options(p: argparse.ArgumentParser) -> None:
    """The options ``detect`` and ``stream`` share: how window scores become events."""
    p.add_argument("--hop", type=float, default=None, help="window hop in s (default: half a clip)")
    p.add_argument(
        "--thresholds",
        type=json.loads,
        default=None,
        help='a number or JSON {"class": threshold}; default: the checkpoint\'s, else 0.5',
    )
    p.add_argument("--median_filter", type=int, default=3, help="median filter length in windows (odd)")
    p.add_argument("--min_gap", type=float, default=0.0, help="merge same-class events closer than this (s)")
    p.add_argument(
        "--trim",
        type=float,
        default=0.0,
        help="shorten each event by this at both ends (s): the onset lead detect --annotations measures",
    )


def detect_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="clusterlight detect", description="Sound events in long recordings.")
    p.add_argument("--ckpt_path", required=True)
    p.add_argument("recordings", nargs="+", help="audio files, folders or manifests")
    p.add_argument("--out", default="events.csv", help="CSV of file, onset, offset, event_label, score")
    add_detection_options(p)
    p.add_argument(
        "--annotations",
        default=None,
        metavar="CSV",
        help="reference events (file,onset,offset,event_label) of these recordings: print event-based "
        "F1/ER (500 ms onset collar) and the onset lead, the --trim to use on other recordings",
    )
    p.add_argument(
        "--plot",
        default=None,
        metavar="DIR",
        help="also write DIR/<recording>.png: score curves, thresholds and events over the spectrogram",
    )
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    model = load(a.ckpt_path, a.device)
    paths = audio_inputs(a.recordings)
    _check_unique_names(paths)
    events, window = {}, 0.0
    for path in progress(paths, "detect", unit="recordings"):
        found = detect_recording(model, path, a.hop, a.thresholds, a.median_filter, a.min_gap, a.trim)
        events[path.name], window = found.events, found.window_s
        picture = f", {plot(model, found, Path(a.plot) / (path.name + '.png'))}" if a.plot else ""
        print(f"[clusterlight] {path}: {len(found.events)} events{picture}", file=sys.stderr)
    write_events_csv(a.out, events)
    print(
        f"wrote {sum(map(len, events.values()))} events in {len(events)} recording(s) to {a.out} "
        f"(thresholds: {thresholds_of(model, a.thresholds)[1]})"
    )
    if a.annotations:
        classes = [c for c in model.card["class_names"] if c != BACKGROUND]
        _score_against(a.annotations, events, classes, window, a.trim)


def _score_against(annotations: str, events: dict, classes: list[str], window_s: float, trim: float) -> None:
    """Event-based scores of ``events`` against the annotation CSV, and the trim that centres their
    onset errors (the trim used plus how early the onsets still come)."""
    reference = read_events_csv(annotations, list(events))
    scores = event_based_scores(reference, events, classes)
    lead = onset_lead(reference, events, within=window_s)
    print(
        f"against {annotations}: event-based F1 {scores.f1:.3f}, error rate {scores.error_rate:.3f} "
        f"(500 ms onset collar, class-wise); onsets {lead:.2f} s early (median): detect other "
        f"recordings with --trim {trim + lead:.2f}"
    )


def _check_unique_names(paths: list[Path]) -> None:
    """Events (and pictures) are keyed by file name: two recordings of one name would overwrite."""
    seen: dict[str, Path] = {}
    for path in paths:
        if path.name in seen:
            raise SystemExit(
                f"clusterlight detect: {seen[path.name]} and {path} share the file name {path.name!r}, "
                "by which events and plots are keyed; rename one or detect them separately"
            )
        seen[path.name] = path


def export_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="clusterlight export", description="A checkpoint as a model to ship.")
    p.add_argument("--ckpt_path", required=True)
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    p.add_argument("--out", required=True, help="the file to write (ONNX: a <out>.json sidecar beside it)")
    p.add_argument("--no_frontend", action="store_true", help="ONNX from log-mel features, not waveforms")
    p.add_argument(
        "--stft", choices=("conv", "onnx"), default="conv", help="ONNX: the STFT as a Conv1d or the STFT op"
    )
    p.add_argument(
        "--quantize",
        choices=("int8",),
        default=None,
        help="ONNX in int8 (onnxruntime quantization; the front end stays float32)",
    )
    p.add_argument(
        "--method",
        choices=("auto", "static", "dynamic"),
        default="auto",
        help="int8: static (calibrated activations; CNN) or dynamic (LSTM); auto picks by the network",
    )
    p.add_argument(
        "--calibration",
        nargs="+",
        default=None,
        metavar="AUDIO",
        help="int8 static: audio files, folders or manifests to calibrate on (default: the run's training "
        "split, rebuilt from the config.yaml beside the checkpoints folder)",
    )
    p.add_argument(
        "--calibration_windows", type=int, default=256, help="int8 static: how many windows to calibrate on"
    )
    a = p.parse_args(argv)
    if a.quantize and (a.format != "onnx" or a.no_frontend or a.stft != "conv"):
        p.error("--quantize int8 takes an ONNX export with the front end inside and --stft conv")
    from clusterlight.inference.export import export_onnx, export_torchscript

    model = load(a.ckpt_path)
    t0 = time.time()
    if a.quantize:
        out = _export_int8(model, a)
    elif a.format == "onnx":
        out = export_onnx(model, a.out, include_frontend=not a.no_frontend, stft=a.stft)
    else:
        out = export_torchscript(model, a.out)
    print(f"wrote {out} ({a.quantize or a.format}) in {time.time() - t0:.1f} s")


def _export_int8(model, a: argparse.Namespace) -> Path:
    import onnx

    from clusterlight.inference.calibration import file_windows, training_windows
    from clusterlight.inference.export import export_onnx
    from clusterlight.inference.quantize import choose_method, quantize_onnx

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx")
        method, why = choose_method(onnx.load(str(fp32)), a.method)
        calibration = None
        if method == "static":
            if a.calibration:
                audio = model.card["audio"]
                n = int(round(audio["sample_rate"] * audio["duration"]))
                paths = audio_inputs(a.calibration)
                calibration = file_windows(
                    paths, audio["sample_rate"], n, audio["padding"] or "loop", a.calibration_windows
                )
            else:
                calibration = training_windows(a.ckpt_path, a.calibration_windows)
        print(f"[clusterlight] export: int8 {method} ({why})", file=sys.stderr)
        return quantize_onnx(fp32, a.out, calibration, a.method)
