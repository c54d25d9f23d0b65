"""``clusterlight stream``: events of a live stream, one JSON line each as soon as it is final.

Audio comes as 16-bit mono little-endian PCM on stdin (``arecord -f S16_LE -r RATE -c 1 - | clusterlight
stream ...``) or from a file played at real speed (``--realtime FILE``). The end of the input and SIGINT
(Ctrl-C) both end the stream cleanly: the events still open are flushed and printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from clusterlight.inference.commands import add_detection_options


def stream_main(argv: list[str]) -> None:
    a = _parser().parse_args(argv)
    from clusterlight.inference.onnx_model import OnnxModel
    from clusterlight.inference.streaming import StreamingDetector

    model: Any
    if a.onnx:
        model = OnnxModel(a.onnx, a.threads)
    else:
        from clusterlight.inference.loading import load

        model = load(a.ckpt_path, a.device)
    detector = StreamingDetector(model, a.hop, a.thresholds, a.median_filter, a.min_gap, a.trim)
    rate = detector.sample_rate
    chunk = max(1, int(round(rate * a.chunk_ms / 1000)))
    source = f"{a.realtime} at real speed" if a.realtime else f"16-bit mono PCM at {rate} Hz from stdin"
    _note(
        f"stream: {source}; window {detector.window_s:g} s, hop {detector.hop_s:g} s, "
        f"thresholds: {detector.thresholds_source}"
    )
    emitted = 0
    with _Sigint() as sigint:
        chunks = _file_chunks(a.realtime, rate, chunk, sigint) if a.realtime else _stdin_chunks(chunk, sigint)
        for samples in chunks:
            emitted += _emit(detector, detector.push(samples))
        emitted += _emit(detector, detector.flush())
    _note(f"stream: {detector.time_s:.1f} s of audio, {emitted} events")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clusterlight stream",
        description="Sound events in a live stream: 16-bit mono little-endian PCM at the model's sample "
        "rate on stdin (e.g. arecord -f S16_LE -r RATE -c 1 -), or a file played at real speed; one "
        "JSON line per event as soon as it is final.",
    )
    model_arg = p.add_mutually_exclusive_group(required=True)
    model_arg.add_argument("--ckpt_path", help="a checkpoint (scored with PyTorch)")
    model_arg.add_argument(
        "--onnx", metavar="MODEL", help="a clusterlight export, with its .json (scored by onnxruntime)"
    )
    p.add_argument("--threads", type=int, default=1, help="--onnx: onnxruntime threads")
    p.add_argument("--chunk_ms", type=_positive, default=100.0, help="read this much audio at a time (ms)")
    p.add_argument(
        "--realtime", default=None, metavar="FILE", help="play FILE at real speed instead of reading stdin"
    )
    add_detection_options(p)
    p.add_argument("--device", default="cpu")
    return p


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _note(text: str) -> None:
    print(f"[clusterlight] {text}", file=sys.stderr, flush=True)


def _emit(detector, events) -> int:
    """Print one JSON line per event (with its delay from the reported offset); how many."""
    for e in events:
        line = {"onset": e.onset, "offset": e.offset, "label": e.label, "score": e.score}
        line["delay_s"] = detector.time_s - e.offset
        print(json.dumps(line), flush=True)
    return len(events)


class _Sigint:
    """SIGINT ends the stream: a read blocked in :meth:`waiting` is interrupted at once; otherwise the
    loop stops after the chunk it is scoring."""

    def __init__(self) -> None:
        self.stopping = self.reading = False

    def __enter__(self) -> _Sigint:
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self.previous)

    def _handle(self, signum, frame) -> None:
        self.stopping = True
        if self.reading:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        self.reading = True
        try:
            yield
        finally:
            self.reading = False


def _file_chunks(path: str, rate: int, chunk: int, sigint: _Sigint) -> Iterator[np.ndarray]:
    """``path`` decoded at ``rate``, each chunk given when its last sample would have been recorded."""
    from clusterlight.data.decode import decode

    wave, t0 = decode(path, rate), time.monotonic()
    for start in range(0, len(wave), chunk):
        if sigint.stopping:
            return
        end = min(start + chunk, len(wave))
        try:
            with sigint.waiting():
                time.sleep(max(0.0, t0 + end / rate - time.monotonic()))
        except KeyboardInterrupt:
            return
        yield wave[start:end]


def _stdin_chunks(chunk: int, sigint: _Sigint) -> Iterator[np.ndarray]:
    """16-bit little-endian samples from stdin as float32, ``chunk`` at a time (an odd byte waits for
    its pair)."""
    stdin, odd = sys.stdin.buffer, b""
    while not sigint.stopping:
        try:
            with sigint.waiting():
                data = stdin.read(2 * chunk)
        except KeyboardInterrupt:
            return
        if not data:
            return
        data, odd = odd + data, b""
        if len(data) % 2:
            data, odd = data[:-1], data[-1:]
        yield np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
