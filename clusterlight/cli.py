"""Command line: ``clusterlight fit|validate|test|predict`` (LightningCLI), ``experiment``, ``data synth``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clusterlight.inference.commands import (
    detect_main,
    export_main,
    is_file_prediction,
    predict_main,
)
from clusterlight.inference.stream_command import stream_main
from clusterlight.lightning_cli import ClusterlightCLI
from clusterlight.packaged_configs import listing, resolve_config_args
from clusterlight.version import __version__


def synth_main(argv: list[str]) -> None:
    from clusterlight.data.synth import DEFAULT_COUNTS, generate

    p = argparse.ArgumentParser(
        prog="clusterlight data synth",
        description="Write the built-in synthetic dataset (WAV + manifest.csv).",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--duration", type=float, default=2.0, help="clip length in seconds")
    p.add_argument("--snr-db", type=float, nargs=2, default=(-16.0, -4.0), metavar=("LOW", "HIGH"))
    p.add_argument("--scale", type=float, default=1.0, help="multiply the default clip counts")
    p.add_argument(
        "--counts",
        type=json.loads,
        default=None,
        help='JSON {"train": {"dog_bark": 240, ...}, "val": ..., "test": ...}',
    )
    a = p.parse_args(argv)
    counts = a.counts or {
        s: {c: max(1, round(n * a.scale)) for c, n in per.items()} for s, per in DEFAULT_COUNTS.items()
    }
    manifest = generate(a.out, counts, a.seed, a.sample_rate, a.duration, tuple(a.snr_db))
    print(f"wrote {sum(sum(v.values()) for v in counts.values())} clips and {manifest}")


def long_synth_main(argv: list[str]) -> None:
    from clusterlight.data.long_synth import EVENT_CLASSES, generate_long
    from clusterlight.data.synth import DEFAULT_SNR_DB

    p = argparse.ArgumentParser(
        prog="clusterlight data synth --long",
        description="Write long synthetic recordings (WAV): the rare classes mixed into changing "
        "background at known onsets and SNRs, with annotations.csv (file,onset,offset,event_label,snr_db) "
        "and manifest.csv.",
    )
    p.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    p.add_argument("--recordings", type=int, default=3)
    p.add_argument("--minutes", type=float, default=2.0, help="length of each recording")
    p.add_argument("--events-per-minute", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--snr-db", type=float, nargs=2, default=DEFAULT_SNR_DB, metavar=("LOW", "HIGH"))
    p.add_argument("--classes", nargs="+", default=list(EVENT_CLASSES), choices=EVENT_CLASSES)
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    if Path(a.out).exists() and not a.overwrite:
        raise SystemExit(f"clusterlight data synth --long: {a.out} exists; pass --overwrite to replace it")
    manifest = generate_long(
        a.out,
        a.recordings,
        a.minutes,
        seed=a.seed,
        sample_rate=a.sample_rate,
        events_per_minute=a.events_per_minute,
        snr_db=tuple(a.snr_db),
        classes=a.classes,
        overwrite=a.overwrite,
    )
    print(f"wrote {a.recordings} recording(s) of {a.minutes:g} min, {manifest.parent / 'annotations.csv'}")


def main(argv: list[str] | None = None) -> None:
    args = resolve_config_args(sys.argv[1:] if argv is None else list(argv))
    if args[:1] == ["--version"]:
        print(f"clusterlight {__version__}")
    elif args[:2] == ["configs", "list"]:
        print(listing())
    elif args[:1] == ["predict"] and is_file_prediction(args[1:]):
        predict_main(args[1:])
    elif args[:1] == ["detect"]:
        detect_main(args[1:])
    elif args[:1] == ["export"]:
        export_main(args[1:])
    elif args[:1] == ["stream"]:
        stream_main(args[1:])
    elif args[:1] == ["experiment"]:
        from clusterlight.experiment import experiment_main

        experiment_main(args[1:])
    elif args[:2] == ["data", "synth"] and "--long" in args:
        long_synth_main([a for a in args[2:] if a != "--long"])
    elif args[:2] == ["data", "synth"]:
        synth_main(args[2:])
    else:
        if args[:1] in (["-h"], ["--help"]):
            print("clusterlight experiment --config FILE   every method, every seed, one comparison table")
            print("clusterlight data synth --out DIR       write the built-in synthetic dataset")
            print("clusterlight data synth --long --out DIR   long recordings with annotated events")
            print("clusterlight predict --ckpt_path X INPUT...   class probabilities of audio files")
            print("clusterlight detect --ckpt_path X RECORDING...   sound events in long recordings")
            print("clusterlight export --ckpt_path X --format onnx --out model.onnx   a model to ship")
            print("clusterlight stream --ckpt_path X < PCM   events of a live stream (e.g. from arecord)")
            print("clusterlight configs list               the packaged configs (--config clusterlight:NAME)")
            print("clusterlight --version\n")
        ClusterlightCLI(args=args)


if __name__ == "__main__":
    main()
