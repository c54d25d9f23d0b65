"""From a trained checkpoint to answers: load it, classify files, detect events in recordings."""

from clusterlight.inference.detect import Detection, detect, detect_recording, score_curves
from clusterlight.inference.load import load
from clusterlight.inference.predict import Predictor, audio_inputs, predict_files
from clusterlight.inference.streaming import StreamingDetector

__all__ = [
    "Detection",
    "Predictor",
    "StreamingDetector",
    "audio_inputs",
    "detect",
    "detect_recording",
    "load",
    "predict_files",
    "score_curves",
]
