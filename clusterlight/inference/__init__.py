"""From a trained checkpoint to answers: load it, classify files, detect events in recordings and
streams, run an exported model.

The names below load on first use (PEP 562): :class:`StreamingDetector` and :class:`OnnxModel` work
with numpy and onnxruntime alone, the others need torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clusterlight.lazy import lazy_names

_EXPORTS = {  # name: the module that defines it
    "Detection": "clusterlight.inference.recordings",
    "OnnxModel": "clusterlight.inference.onnx_model",
    "Predictor": "clusterlight.inference.predict",
    "StreamingDetector": "clusterlight.inference.streaming",
    "audio_inputs": "clusterlight.inference.predict",
    "detect": "clusterlight.inference.recordings",
    "detect_recording": "clusterlight.inference.recordings",
    "load": "clusterlight.inference.loading",
    "predict_files": "clusterlight.inference.predict",
    "score_curves": "clusterlight.inference.recordings",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # what the names above are, for type checkers and editors
    from clusterlight.inference.loading import load as load
    from clusterlight.inference.onnx_model import OnnxModel as OnnxModel
    from clusterlight.inference.predict import Predictor as Predictor
    from clusterlight.inference.predict import audio_inputs as audio_inputs
    from clusterlight.inference.predict import predict_files as predict_files
    from clusterlight.inference.recordings import Detection as Detection
    from clusterlight.inference.recordings import detect as detect
    from clusterlight.inference.recordings import detect_recording as detect_recording
    from clusterlight.inference.recordings import score_curves as score_curves
    from clusterlight.inference.streaming import StreamingDetector as StreamingDetector

__getattr__, __dir__ = lazy_names(__name__, _EXPORTS)
