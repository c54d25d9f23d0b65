"""From a trained checkpoint to answers: load it, classify files, detect events in recordings."""

from clusterlight.inference.detect import detect, score_curves
from clusterlight.inference.load import load, read_checkpoint
from clusterlight.inference.predict import Predictor, audio_inputs, predict_files

__all__ = ["Predictor", "audio_inputs", "detect", "load", "predict_files", "read_checkpoint", "score_curves"]
