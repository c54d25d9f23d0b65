"""Exports of a trained model: ONNX (front end inside, or log-mel input + numpy front end), TorchScript,
a run where neither torch nor clusterlight can be imported, and the throughput comparison."""

import inspect
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers.benchmarks import load_benchmark
from helpers.cli import train_tiny_classifier

from clusterlight.features import LogMel
from clusterlight.inference import load
from clusterlight.inference.export import (
    DFTLogMel,
    Probabilities,
    export_onnx,
    export_torchscript,
    logmel_numpy,
    numpy_logmel,
)
from clusterlight.modules import Classifier, EmbeddingPretrain
from clusterlight.nets import CNNEmbedder, LSTMEmbedder

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")  # the dynamo exporter needs it (and onnx)
pytest.importorskip("onnx")
CLASSES = ["dog_bark", "baby_cry", "gunshot", "background"]

# Run as `python -I STANDALONE ONNX_FILE`: torch and clusterlight are blocked before anything is
# imported; the sidecar JSON (and, when the front end is outside the graph, the filterbank .npy and
# the numpy front end pasted below) is all it has. Prints {"imports_blocked", "probabilities"}.
STANDALONE = """
import sys
sys.modules["torch"] = None
sys.modules["torchaudio"] = None
sys.modules["clusterlight"] = None
import json
from pathlib import Path
import numpy as np
import onnxruntime as ort

blocked = []
for name in ("torch", "clusterlight"):
    try:
        __import__(name)
    except ImportError:
        blocked.append(name)

{logmel_source}

onnx_path = Path(sys.argv[1])
info = json.loads(onnx_path.with_name(onnx_path.name + ".json").read_text())
rng = np.random.default_rng(int(sys.argv[2]))
wave = (0.1 * rng.standard_normal((int(sys.argv[3]), info["samples"]))).astype(np.float32)
x = wave
if not info["include_frontend"]:
    fe = info["frontend"]
    fb = np.load(onnx_path.parent / fe["mel_filterbank"])
    x = logmel_numpy(wave, fb, fe["n_fft"], fe["win_length"], fe["hop_length"], fe["time_pool"],
                     fe["log_offset"])
session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
probs = session.run(None, {{info["input"]["name"]: x}})[0]
result = {{"imports_blocked": blocked, "classes": info["class_names"], "probabilities": probs.tolist()}}
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny LSTM classifier trained through the CLI (as tests/test_inference.py), loaded."""
    ckpt = train_tiny_classifier(tmp_path_factory.mktemp("export_trained"), epochs=1)
    return ckpt, load(ckpt)


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The trained model exported to ONNX with the front end inside and from log-mel features."""
    out = tmp_path_factory.mktemp("exported")
    _, model = trained
    return {
        True: export_onnx(model, out / "with_frontend.onnx"),
        False: export_onnx(model, out / "logmel_input.onnx", include_frontend=False),
    }


def waves(batch: int, seed: int = 0, samples: int = 8000) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal((batch, samples))).astype(np.float32)


def torch_probabilities(model, wave: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        scores = model.scores_from_features(model.features(torch.from_numpy(wave)))
        return torch.softmax(scores, dim=1).numpy()


def onnx_probabilities(path, wave: np.ndarray, model=None) -> np.ndarray:
    info = json.loads(path.with_name(path.name + ".json").read_text())
    x = wave if info["include_frontend"] else numpy_logmel(wave, model.frontend)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {info["input"]["name"]: x})[0]


def tiny_model(backbone) -> Classifier:
    model = Classifier(LogMel(sample_rate=8000, n_mels=64, time_pool=4), backbone, CLASSES).eval()
    model.card = {"class_names": CLASSES, "audio": {"sample_rate": 8000, "duration": 1.0, "padding": "loop"}}
    return model


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("include_frontend", [True, False], ids=["frontend_inside", "logmel_input"])
@pytest.mark.slow
def test_onnx_matches_pytorch(trained, exported, include_frontend, batch):
    _, model = trained
    wave = waves(batch, seed=batch)
    got = onnx_probabilities(exported[include_frontend], wave, model)
    assert got.shape == (batch, 4)
    np.testing.assert_allclose(got, torch_probabilities(model, wave), atol=1e-4, rtol=0)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_onnx_file_and_sidecar_describe_the_input(exported):
    import onnx

    graph = onnx.load(str(exported[True])).graph
    (inp,) = graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert inp.name == "waveform" and dims == ["batch", 8000]
    ops = {n.op_type for n in graph.node}
    assert {"Conv", "Log", "LSTM"} <= ops and "STFT" not in ops  # the front end is inside, its DFT a Conv
    info = json.loads(exported[True].with_name("with_frontend.onnx.json").read_text())
    assert info["class_names"] == CLASSES and info["include_frontend"] is True
    assert (info["sample_rate"], info["duration"], info["samples"]) == (8000, 1.0, 8000)
    assert info["input"] == {"name": "waveform", "shape": ["batch", 8000], "dtype": "float32"}
    assert info["exporter"] == "torch.onnx.export(dynamo=True)" and info["stft"] == "conv"
    assert info["export_seconds"] > 0
    outside = json.loads(exported[False].with_name("logmel_input.onnx.json").read_text())
    assert outside["include_frontend"] is False and outside["input"]["shape"] == ["batch", 64, 13]
    fb = np.load(exported[False].parent / outside["frontend"]["mel_filterbank"])
    assert fb.shape == (257, 64)


@pytest.mark.parametrize("include_frontend", [True, False], ids=["frontend_inside", "logmel_input"])
@pytest.mark.slow
def test_onnx_runs_without_torch_or_clusterlight(trained, exported, include_frontend, tmp_path):
    _, model = trained
    script = tmp_path / "standalone.py"
    script.write_text(STANDALONE.format(logmel_source=inspect.getsource(logmel_numpy)))
    done = subprocess.run(
        [sys.executable, "-I", str(script), str(exported[include_frontend]), "7", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["imports_blocked"] == ["torch", "clusterlight"] and out["classes"] == CLASSES
    expected = torch_probabilities(model, waves(3, seed=7))
    np.testing.assert_allclose(np.array(out["probabilities"]), expected, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_torchscript_loads_and_matches(trained, tmp_path):
    _, model = trained
    path = export_torchscript(model, tmp_path / "model.pt")
    scripted = torch.jit.load(str(path))
    for batch in (1, 3):
        wave = waves(batch, seed=10 + batch)
        with torch.no_grad():
            got = scripted(torch.from_numpy(wave)).numpy()
        np.testing.assert_allclose(got, torch_probabilities(model, wave), atol=1e-5, rtol=0)
    assert json.loads(path.with_name("model.pt.json").read_text())["exporter"] == "torch.jit.trace"


@pytest.mark.parametrize(
    "settings",
    [
        {"sample_rate": 8000, "time_pool": 4},
        {"sample_rate": 16000, "time_pool": 1},
        {"sample_rate": 16000, "n_fft": 1024, "win_length": 1024, "hop_length": 320, "time_pool": 3},
    ],
    ids=["8k_pool4", "16k_nopool", "16k_fullwindow_pool3"],
)
def test_numpy_and_conv_front_ends_match_the_torch_one(settings):
    frontend = LogMel(n_mels=64, **settings).eval()
    sr = settings["sample_rate"]
    rng = np.random.default_rng(3)
    wave = (rng.choice([0.02, 0.2, 0.7], (4, 1)) * rng.standard_normal((4, sr))).astype(np.float32)
    wave[1, : sr // 2] = 0.0  # silence: the log(1e-6) floor
    tone = (0.9 * np.sin(2 * np.pi * 1000 * np.arange(sr) / sr) + 0.001 * rng.standard_normal(sr))[None]
    with torch.no_grad():
        expected, expected_tone = (
            frontend(torch.from_numpy(w.astype(np.float32))).numpy() for w in (wave, tone)
        )
        conv, conv_tone = (
            DFTLogMel(frontend)(torch.from_numpy(w.astype(np.float32))).numpy() for w in (wave, tone)
        )
    got = numpy_logmel(wave, frontend)
    assert got.shape == expected.shape == conv.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(numpy_logmel(wave[0], frontend), expected[0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(conv, expected, atol=1e-4, rtol=0)
    # a loud pure tone (~100 dB between mel bands): float32 round-off of the strong bins reaches the
    # weak ones; torch's own float32 front end is ~6e-4 from the float64 value there
    np.testing.assert_allclose(
        numpy_logmel(tone.astype(np.float32), frontend), expected_tone, atol=2e-3, rtol=0
    )
    np.testing.assert_allclose(conv_tone, expected_tone, atol=2e-3, rtol=0)


@pytest.mark.slow
def test_cnn_with_the_stft_op_and_the_torchscript_based_exporter(tmp_path):
    import onnx

    torch.manual_seed(0)
    model = tiny_model(CNNEmbedder(64, (8, 16), 32))
    wave = waves(3, seed=5)
    expected = torch_probabilities(model, wave)
    stft_op = export_onnx(model, tmp_path / "stft_op.onnx", stft="onnx")
    assert "STFT" in {n.op_type for n in onnx.load(str(stft_op)).graph.node}
    np.testing.assert_allclose(onnx_probabilities(stft_op, wave), expected, atol=1e-4, rtol=0)
    for include_frontend in (True, False):  # the legacy exporter, with the Conv1d DFT or from log-mel
        path = export_onnx(model, tmp_path / f"legacy{include_frontend}.onnx", include_frontend, dynamo=False)
        np.testing.assert_allclose(onnx_probabilities(path, wave, model), expected, atol=1e-4, rtol=0)
    with pytest.raises(RuntimeError, match="cannot export the STFT"):
        export_onnx(model, tmp_path / "legacy_stft.onnx", dynamo=False, stft="onnx")
    assert not model.training


def test_a_module_that_cannot_classify_alone_is_refused(tmp_path):
    model = EmbeddingPretrain(LogMel(sample_rate=8000), LSTMEmbedder(64, 16), CLASSES, plot_embeddings=False)
    model.card = {"class_names": CLASSES, "audio": {"sample_rate": 8000, "duration": 1.0, "padding": "loop"}}
    with pytest.raises(ValueError, match="cannot classify outside training"):
        export_onnx(model.eval(), tmp_path / "pretrain.onnx")


@pytest.mark.slow
def test_wrapper_shares_the_module_weights(trained):
    _, model = trained
    wrapper = Probabilities(model)
    assert wrapper.parts["head"] is model.head and "reports" not in wrapper.parts
    wave = waves(2)
    with torch.no_grad():
        np.testing.assert_allclose(wrapper(torch.from_numpy(wave)).numpy(), torch_probabilities(model, wave))


@pytest.mark.slow
def test_throughput_compares_both_runtimes(trained, exported, tmp_path):
    ckpt, model = trained
    bench = load_benchmark("throughput")
    result = bench.inference_throughput(model, exported[True], batch_sizes=(1, 4), seconds=0.05)
    assert set(result["batches"]) == {1, 4} and result["export_seconds"] > 0 and result["stft"] == "conv"
    for row in result["batches"].values():
        assert row["torch_clips_per_s"] > 0 and row["onnxruntime_clips_per_s"] > 0
    outside = bench.inference_throughput(model, exported[False], batch_sizes=(2,), seconds=0.05)
    assert outside["include_frontend"] is False and outside["batches"][2]["onnxruntime_clips_per_s"] > 0
    threads = torch.get_num_threads()
    one = bench.inference_throughput(model, exported[True], batch_sizes=(2,), seconds=0.05, threads=1)
    assert one["threads"] == 1 and torch.get_num_threads() == threads
    # figure 9 of the benchmark (--export_only): both exports of a checkpoint, then the comparison
    timings = bench.export_timings(ckpt, tmp_path, seconds=0.05)
    assert timings["onnx"]["export_s"] > 0 and timings["torchscript"]["export_s"] > 0
    assert set(timings["throughput"]["batches"]) == {1, 64} and timings["throughput"]["threads"] == 1
    assert torch.get_num_threads() == threads
