"""int8 ONNX models: onnxruntime's quantization of an fp32 export, with the front end kept in float.

:func:`quantize_onnx` rewrites an fp32 file written by :func:`~clusterlight.inference.export.export_onnx`
(the front end inside) into int8, one of two ways (``method="auto"`` picks by the network):

- **static** (convolutional networks): weights int8 per output channel and activations int8, in QDQ
  form, the activation ranges calibrated (min/max) on clip-length windows of real audio, e.g. the run's
  training split. onnxruntime then runs the convolutions and the head as integer kernels.
- **dynamic** (recurrent networks): onnxruntime's static quantization has no LSTM kernel, so the LSTM
  and matrix products get int8 weights and activations quantized on the fly, per call
  (``DynamicQuantizeLSTM``, ``MatMulInteger``); no calibration is needed.

The log-mel front end (the DFT as a convolution, the mel filterbank, the logarithm) stays float32 in
both: the power spectrum spans ~100 dB, which 8 bits cannot hold (``quantize_frontend=True`` quantizes it
too; ``benchmarks/edge.py`` measures what that costs). The front end's nodes are the ones the export
marks (:func:`~clusterlight.inference.onnx_graph.mark_frontend`). ``<out>.json`` is the fp32 sidecar
plus a ``"quantization"`` entry saying what was done.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from clusterlight.inference.onnx_graph import fold_constants, frontend_nodes

QUANT_METHODS = ("auto", "static", "dynamic")
RECURRENT_OPS = {"LSTM", "GRU", "RNN"}


def choose_method(model, method: str = "auto") -> tuple[str, str]:
    """(``"static"`` | ``"dynamic"``, why) for an exported ``onnx.ModelProto``."""
    if method not in QUANT_METHODS:
        raise ValueError(f"method must be one of {QUANT_METHODS}, got {method!r}")
    recurrent = sorted({n.op_type for n in model.graph.node} & RECURRENT_OPS)
    if method == "static" and recurrent:
        raise ValueError(f"static quantization has no kernel for {', '.join(recurrent)}: use dynamic")
    if method != "auto":
        return method, "chosen by the caller"
    if recurrent:
        return "dynamic", f"the network has {', '.join(recurrent)}, which static quantization cannot run"
    return "static", "a feed-forward network: calibrated int8 activations run as integer kernels"


class _Windows:
    """onnxruntime's ``CalibrationDataReader`` over an array of windows, in batches."""

    def __init__(self, input_name: str, windows: np.ndarray, batch: int = 32) -> None:
        starts = range(0, len(windows), batch)
        self.batches = iter([{input_name: np.ascontiguousarray(windows[i : i + batch])} for i in starts])

    def get_next(self) -> dict | None:
        return next(self.batches, None)


def quantize_onnx(
    fp32_path: str | Path,
    out: str | Path,
    calibration: np.ndarray | None = None,
    method: str = "auto",
    quantize_frontend: bool = False,
) -> Path:
    """Write the int8 version of the fp32 export ``fp32_path`` at ``out`` (and ``<out>.json``).
    ``calibration``: float32 windows ``[n, samples]`` of real audio (static quantization needs them).
    ``quantize_frontend`` quantizes the front end as well (for measuring what that costs)."""
    import onnx

    fp32_path, out = Path(fp32_path), Path(out)
    info = json.loads(fp32_path.with_name(fp32_path.name + ".json").read_text())
    if not info.get("include_frontend"):
        raise ValueError(f"{fp32_path}: quantize an export with the front end inside (it takes waveforms)")
    model = onnx.load(str(fp32_path))
    chosen, why = choose_method(model, method)
    exclude = [] if quantize_frontend else frontend_nodes(model)
    if chosen == "static" and (calibration is None or len(calibration) == 0):
        raise ValueError("static quantization needs calibration windows of real audio")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        source = _frontend_folded(fp32_path, Path(tmp)) if quantize_frontend else fp32_path
        target = Path(tmp) / out.name  # written whole, then moved: no half-written model at ``out``
        _quantize(source, target, chosen, exclude, info["input"]["name"], calibration)
        shutil.move(str(target), out)
    info.update(
        file=out.name,
        quantization={
            "dtype": "int8",
            "method": chosen,
            "why": why,
            "tool": "onnxruntime.quantization",
            "frontend": "int8" if quantize_frontend else "float32 (kept)",
            "calibration_windows": 0 if calibration is None or chosen == "dynamic" else len(calibration),
            "fp32_bytes": fp32_path.stat().st_size,
            "bytes": out.stat().st_size,
        },
    )
    out.with_name(out.name + ".json").write_text(json.dumps(info, indent=2) + "\n")
    return out


def _frontend_folded(fp32_path: Path, folder: Path) -> Path:
    """A copy of the export with the front end's constants folded (its DFT kernel as a table, which
    the quantizer needs as an initializer)."""
    import onnx_ir

    model = onnx_ir.load(str(fp32_path))
    fold_constants(model, keep_frontend=False)
    path = folder / "frontend_folded.onnx"
    onnx_ir.save(model, str(path))
    return path


def _quantize(fp32_path: Path, target: Path, method: str, exclude: list[str], input_name: str, calibration):
    """onnxruntime's dynamic or static (QDQ, int8 activations and per-channel weights, min/max
    calibration) quantization of ``fp32_path`` into ``target``, leaving the nodes ``exclude`` in float."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    if method == "dynamic":
        quantize_dynamic(fp32_path, target, weight_type=QuantType.QInt8, nodes_to_exclude=exclude)
        return
    quantize_static(
        fp32_path,
        target,
        _Windows(input_name, np.asarray(calibration, dtype=np.float32)),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=exclude,
    )


@contextlib.contextmanager
def _quiet():
    """onnxruntime's quantization logs a pre-processing hint per call; mute it."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)
