"""On a device: the streaming detector scoring with an exported ONNX file and no torch, int8 exports
(static for the CNN, calibrated on the run's training split; dynamic for the LSTM) that run in
onnxruntime alone and agree with fp32, and the numpy windowing that both use."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers.cli import clusterlight
from helpers.configs import CONFIGS, model_configs, tiny_data, write_yaml
from helpers.models import tiny_parts

from clusterlight.data.cropping import PADDING_MODES, crop_offset, fit_length
from clusterlight.data.long_synth import generate_long
from clusterlight.detection import median_filter, scores_to_events
from clusterlight.inference import OnnxModel
from clusterlight.inference.calibration import split_windows, spread_sample
from clusterlight.inference.export import export_onnx
from clusterlight.inference.quantize import choose_method, quantize_onnx
from clusterlight.inference.windows import windows
from clusterlight.modules import Classifier

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
onnx = pytest.importorskip("onnx")
CLASSES = ["dog_bark", "baby_cry", "gunshot", "background"]
SR = 8000


# ---- numpy windows ------------------------------------------------------------------------------
@pytest.mark.parametrize("padding", PADDING_MODES)
@pytest.mark.parametrize("m", [1, 7, 799, 800, 1500, 4001])
def test_numpy_windows_follow_the_crop_pad_rule(padding, m):
    n, hop = 800, 300
    wave = np.random.default_rng(m).standard_normal(m).astype(np.float32)
    got = windows(wave, n, hop, padding)
    if m <= n:
        expected = fit_length(wave, n, padding, crop_offset(m, n, padding))[None]
    else:
        starts = sorted({*range(0, m - n + 1, hop), m - n})
        expected = np.stack([wave[s : s + n] for s in starts])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_spread_sample_takes_every_class_in_turn():
    labels = np.array([0] * 100 + [1] * 3 + [2] * 10)
    picked = spread_sample(labels, 12, seed=1)
    assert len(picked) == 12 and len(set(picked.tolist())) == 12
    assert np.bincount(labels[picked], minlength=3).tolist() == [5, 3, 4]  # the rare class whole
    assert len(spread_sample(labels, 1000)) == len(labels)


# ---- the quantization method --------------------------------------------------------------------
def graph_with(op: str):
    helper = onnx.helper
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])
    return helper.make_model(helper.make_graph([helper.make_node(op, ["x"], ["y"])], "g", [x], [y]))


def test_recurrent_networks_are_quantized_dynamically_others_statically():
    assert choose_method(graph_with("LSTM"))[0] == "dynamic"
    assert choose_method(graph_with("Relu"))[0] == "static"
    assert choose_method(graph_with("Relu"), "dynamic") == ("dynamic", "chosen by the caller")
    with pytest.raises(ValueError, match="no kernel for LSTM"):
        choose_method(graph_with("LSTM"), "static")
    with pytest.raises(ValueError, match="method must be one of"):
        choose_method(graph_with("Relu"), "int4")


# ---- streaming with an ONNX file, no torch -------------------------------------------------------
@pytest.fixture(scope="module")
def exported_stream_model(tmp_path_factory):
    """An untrained tiny LSTM classifier (1 s windows at 8 kHz) exported to ONNX, and a 20 s recording."""
    folder = tmp_path_factory.mktemp("onnx_stream")
    torch.manual_seed(0)
    model = Classifier(*tiny_parts(), CLASSES).eval()
    model.card = {"class_names": CLASSES, "audio": {"sample_rate": SR, "duration": 1.0, "padding": "loop"}}
    path = export_onnx(model, folder / "model.onnx")
    generate_long(folder / "gen", 1, minutes=20 / 60, sample_rate=SR, events_per_minute=12, seed=3)
    wave, _ = sf.read(folder / "gen" / "rec_00000.wav", dtype="float32")
    return path, wave


def offline_events(onnx_model: OnnxModel, wave: np.ndarray, thresholds: dict, length: int) -> list:
    """Offline detection's events (``clusterlight.inference.recordings``) with the ONNX file's scores."""
    n, hop = SR, SR // 2
    scored = wave[: n + (len(wave) - n) // hop * hop]
    scores = onnx_model.probabilities(windows(scored, n, hop, "loop"))
    settings = dict(hop_s=0.5, window_s=1.0, median_filter_length=length, background="background")
    return scores_to_events(scores, CLASSES, thresholds, **settings)


def spaced_thresholds(onnx_model: OnnxModel, wave: np.ndarray, length: int) -> dict:
    """Per-class thresholds in the gap nearest the median filtered score that is wider than 1e-5: many
    events, and no score close enough to a threshold to flip with float round-off."""
    filtered = median_filter(onnx_model.probabilities(windows(wave, SR, SR // 2, "loop")), length)
    thresholds = {}
    for c, name in enumerate(CLASSES[:-1]):
        values = np.unique(filtered[:, c])
        gaps = np.flatnonzero(np.diff(values) > 1e-5)
        k = int(gaps[np.argmin(np.abs(gaps - len(values) // 2))])
        thresholds[name] = float((values[k] + values[k + 1]) / 2)
    return thresholds


# Run as `python STREAM_SCRIPT MODEL WAVE.npy THRESHOLDS_JSON MEDIAN CHUNK...`: torch, torchaudio and
# Lightning are blocked before clusterlight is imported; prints {"blocked", "events": {chunk: [...]}}.
STREAM_SCRIPT = """
import json, sys
for name in ("torch", "torchaudio", "lightning", "lightning.pytorch"):
    sys.modules[name] = None
import numpy as np
from clusterlight.inference import StreamingDetector

model, wave = sys.argv[1], np.load(sys.argv[2])
thresholds, length = json.loads(sys.argv[3]), int(sys.argv[4])
events = {}
for chunk in map(int, sys.argv[5:]):
    detector = StreamingDetector(model, thresholds=thresholds, median_filter=length)
    found = []
    for start in range(0, len(wave), chunk):
        found += detector.push(wave[start : start + chunk])
    found += detector.flush()
    order = {name: c for c, name in enumerate(detector.class_names)}  # as offline detection sorts them
    events[chunk] = [list(e) for e in sorted(found, key=lambda e: (e.onset, order[e.label]))]
blocked = [m for m in ("torch", "lightning") if m not in sys.modules or sys.modules[m] is None]
print(json.dumps({"blocked": blocked, "events": events}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("length", [1, 3])
def test_stream_with_an_onnx_file_and_no_torch_equals_offline(exported_stream_model, length, tmp_path):
    path, wave = exported_stream_model
    onnx_model = OnnxModel(path)
    thresholds = spaced_thresholds(onnx_model, wave, length)
    expected = offline_events(onnx_model, wave, thresholds, length)
    assert len(expected) >= 5
    np.save(tmp_path / "wave.npy", wave)
    script = tmp_path / "stream.py"
    script.write_text(STREAM_SCRIPT)
    chunks = [1, 777, 4001, len(wave)]
    args = [str(path), str(tmp_path / "wave.npy"), json.dumps(thresholds), str(length), *map(str, chunks)]
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["blocked"] == ["torch", "lightning"]
    for chunk in chunks:
        got = out["events"][str(chunk)]
        assert [e[2] for e in got] == [e.label for e in expected], chunk
        np.testing.assert_allclose([e[:2] for e in got], [e[:2] for e in expected], atol=1e-9)
        np.testing.assert_allclose([e[3] for e in got], [e.score for e in expected], atol=1e-6)


def test_onnx_model_needs_its_sidecar_and_the_front_end(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"m\.onnx\.json is missing"):
        OnnxModel(tmp_path / "m.onnx")
    (tmp_path / "m.onnx.json").write_text(json.dumps({"include_frontend": False}))
    with pytest.raises(ValueError, match="takes log-mel features"):
        OnnxModel(tmp_path / "m.onnx")


# ---- int8 exports through the command line ------------------------------------------------------
def fit_tiny(tmp_path, net: str, backbone_args: list[str]):
    """``clusterlight fit`` of a tiny classifier (shipped configs, tiny data, 2 epochs); its checkpoint."""
    clusterlight(
        [
            "fit",
            "--config", str(CONFIGS / "trainer/cpu.yaml"),
            "--config", write_yaml(tmp_path, "data.yaml", tiny_data(tmp_path)),
            *model_configs("baseline", net),
            "--model.init_args.frontend.init_args.sample_rate", "8000",
            *backbone_args,
            "--trainer.max_epochs", "2",
            "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path / "run"),
        ]
    )  # fmt: skip
    return next((tmp_path / "run").rglob("best-*.ckpt"))


NETS = {
    "cnn": ["--model.init_args.backbone.init_args.channels", "[8, 16]"],
    "lstm": ["--model.init_args.backbone.init_args.hidden", "16"],
}


@pytest.fixture(scope="module", params=list(NETS))
def int8_export(request, tmp_path_factory):
    """(net, checkpoint, fp32 file, int8 file) of a tiny classifier exported by ``clusterlight export``."""
    tmp = tmp_path_factory.mktemp(f"int8_{request.param}")
    ckpt = fit_tiny(tmp, request.param, NETS[request.param])
    clusterlight(["export", "--ckpt_path", str(ckpt), "--out", str(tmp / "fp32.onnx")])
    quantize = ["--quantize", "int8", "--out", str(tmp / "int8.onnx")]
    done = clusterlight(["export", "--ckpt_path", str(ckpt), *quantize])
    assert "(int8)" in done.stdout
    return request.param, ckpt, tmp / "fp32.onnx", tmp / "int8.onnx"


@pytest.mark.slow
def test_int8_export_says_how_it_was_quantized(int8_export):
    net, _, fp32, int8 = int8_export
    info = json.loads(int8.with_name("int8.onnx.json").read_text())
    q = info["quantization"]
    assert q["method"] == {"cnn": "static", "lstm": "dynamic"}[net]
    # static: the 256 default, or all of the tiny training split (120 clips)
    assert q["calibration_windows"] == (120 if net == "cnn" else 0)
    assert q["frontend"] == "float32 (kept)" and q["fp32_bytes"] == fp32.stat().st_size
    assert q["bytes"] == int8.stat().st_size < fp32.stat().st_size
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert ops & ({"QuantizeLinear", "DequantizeLinear"} if net == "cnn" else {"DynamicQuantizeLSTM"})
    assert "Conv" in ops  # the front end's DFT stays a float convolution
    assert info["class_names"] == CLASSES and info["include_frontend"]


# Run as `python -I INT8_SCRIPT FP32 INT8 WINDOWS.npy`: torch and clusterlight cannot be imported.
INT8_SCRIPT = """
import json, sys
for name in ("torch", "torchaudio", "clusterlight"):
    sys.modules[name] = None
import numpy as np
import onnxruntime as ort

blocked = []
for name in ("torch", "clusterlight"):
    try:
        __import__(name)
    except ImportError:
        blocked.append(name)
x = np.load(sys.argv[3])
probs = [
    ort.InferenceSession(p, providers=["CPUExecutionProvider"]).run(None, {"waveform": x})[0]
    for p in sys.argv[1:3]
]
print(json.dumps({"blocked": blocked, "fp32": probs[0].tolist(), "int8": probs[1].tolist()}))
"""


@pytest.mark.slow
def test_int8_runs_in_onnxruntime_alone_and_agrees_with_fp32(int8_export, tmp_path):
    net, ckpt, fp32, int8 = int8_export
    test, _ = split_windows(ckpt, "test")
    np.save(tmp_path / "windows.npy", test)
    script = tmp_path / "int8.py"
    script.write_text(INT8_SCRIPT)
    cmd = [sys.executable, "-I", str(script), str(fp32), str(int8), str(tmp_path / "windows.npy")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["blocked"] == ["torch", "clusterlight"]
    p32, p8 = np.array(out["fp32"]), np.array(out["int8"])
    assert p32.shape == p8.shape == (len(test), len(CLASSES))
    agreement = float((p32.argmax(1) == p8.argmax(1)).mean())
    assert agreement >= 0.9, f"{net}: int8 agrees with fp32 on {agreement:.0%} of {len(test)} test clips"
    assert np.abs(p32 - p8).max() < 0.2


@pytest.mark.slow
def test_int8_calibrates_on_given_audio_and_refuses_what_it_cannot_quantize(int8_export, tmp_path):
    net, ckpt, fp32, _ = int8_export
    if net != "cnn":
        pytest.skip("calibration is for static quantization")
    audio = sorted((ckpt.parents[4] / "synth").rglob("*.wav"))[:5]
    out = tmp_path / "given.onnx"
    args = ["export", "--ckpt_path", str(ckpt), "--quantize", "int8", "--out", str(out)]
    clusterlight([*args, "--calibration", *map(str, audio), "--calibration_windows", "3"])
    info = json.loads(out.with_name("given.onnx.json").read_text())
    assert info["quantization"]["calibration_windows"] == 3
    with pytest.raises(ValueError, match="needs calibration windows"):
        quantize_onnx(fp32, tmp_path / "none.onnx", None, "static")
    cmd = [sys.executable, "-m", "clusterlight", *args, "--format", "torchscript"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 2 and "--quantize int8 takes an ONNX export" in done.stderr


@pytest.mark.slow
def test_int8_scores_do_not_depend_on_the_batch(int8_export):
    """A stream scores a window or two at a time, a recording 64: their scores must agree. Dynamic
    quantization ranges each call's activations over the whole call, so OnnxModel runs it per window."""
    net, _, _, int8 = int8_export
    model = OnnxModel(int8)
    assert model.one_at_a_time == (net == "lstm")
    windows = (0.1 * np.random.default_rng(0).standard_normal((5, model.info["samples"]))).astype(np.float32)
    windows[0] *= 20  # a loud window: with one range for the batch, it would squeeze the others
    alone = np.concatenate([model.probabilities(w[None]) for w in windows])
    np.testing.assert_array_equal(model.probabilities(windows), alone)


@pytest.mark.slow
def test_stream_command_with_an_onnx_file_prints_the_offline_events(exported_stream_model, tmp_path):
    path, wave = exported_stream_model
    pcm = np.clip(np.round(wave * 32768), -32768, 32767).astype("<i2")
    samples = pcm.astype(np.float32) / 32768  # what the command reads back from the 16-bit stream
    onnx_model = OnnxModel(path)
    thresholds = spaced_thresholds(onnx_model, samples, 3)
    expected = offline_events(onnx_model, samples, thresholds, 3)
    assert len(expected) >= 5
    cmd = [sys.executable, "-m", "clusterlight", "stream", "--onnx", str(path)]
    cmd += ["--thresholds", json.dumps(thresholds)]
    done = subprocess.run(cmd, input=pcm.tobytes(), capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    lines = [json.loads(x) for x in done.stdout.decode().splitlines()]
    order = {c: i for i, c in enumerate(CLASSES)}
    got = sorted(lines, key=lambda x: (x["onset"], order[x["label"]]))
    expected_rows = [(e.label, e.onset, e.offset) for e in expected]
    assert [(x["label"], x["onset"], x["offset"]) for x in got] == expected_rows
    assert all(x["delay_s"] >= 0 for x in lines)
    assert f"{len(wave) / SR:.1f} s of audio, {len(lines)} events" in done.stderr.decode()
