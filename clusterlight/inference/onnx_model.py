"""An exported model run by onnxruntime with numpy alone: no torch, no Lightning.

:class:`OnnxModel` reads a file written by ``clusterlight export`` (fp32 or int8) and its
``<file>.json``, and offers what scoring needs from a loaded checkpoint: a ``card`` (class names, the
audio settings, the detection thresholds chosen on validation) and the class probabilities of a batch
of clip-length windows. :class:`~clusterlight.inference.streaming.StreamingDetector` takes one in place
of a checkpoint, so a device needs numpy, onnxruntime and this package's inference modules, not torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class OnnxModel:
    """``path``: an ONNX file exported with its front end inside (the default of ``clusterlight
    export``); ``threads``: onnxruntime's intra-op threads (1: one core, as on a small device).

    A dynamically quantized int8 model (the LSTM's) quantizes its activations at each call from the
    range of everything in the call, so a window's probabilities would depend on the other windows of
    its batch; such a model is run one window at a time, which makes its answers independent of the
    batching (a stream's windows and a whole recording's get the same scores) and, on one thread, is
    no slower."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        sidecar = self.path.with_name(self.path.name + ".json")
        if not sidecar.is_file():
            raise FileNotFoundError(
                f"{sidecar} is missing: OnnxModel reads the class names and audio settings that "
                f"clusterlight export writes beside {self.path.name}"
            )
        info = json.loads(sidecar.read_text())
        if not info.get("include_frontend", False):
            raise ValueError(
                f"{self.path} takes log-mel features (exported with --no_frontend): OnnxModel needs an "
                "export with the front end inside, which takes waveforms"
            )
        self.info = info
        self.card = {
            "class_names": list(info["class_names"]),
            "audio": {k: info[k] for k in ("sample_rate", "duration", "padding")},
            "thresholds": info.get("thresholds"),
        }
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input_name = info["input"]["name"]
        self.one_at_a_time = info.get("quantization", {}).get("method") == "dynamic"

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """Class probabilities ``[b, classes]`` of windows ``[b, samples]`` (float32)."""
        batch = np.ascontiguousarray(windows, dtype=np.float32)
        if self.one_at_a_time:
            return np.concatenate([self.session.run(None, {self.input_name: w[None]})[0] for w in batch])
        return self.session.run(None, {self.input_name: batch})[0]
