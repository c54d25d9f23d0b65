"""Streaming detection: a stream cut into chunks of any size gives offline ``detect``'s events, each as
soon as it is final; ``clusterlight stream`` reads PCM from stdin (or plays a file at real speed)."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers.cli import subprocess_env
from helpers.models import tiny_parts

import clusterlight
from clusterlight.data.long_synth import generate_long
from clusterlight.detection import Event, median_filter
from clusterlight.inference import Predictor, StreamingDetector, detect, score_curves
from clusterlight.inference.stream_command import stream_main
from clusterlight.inference.streaming import torch_scores
from clusterlight.init_args import init_config
from clusterlight.model_card import CARD_KEY, model_card
from clusterlight.modules import Classifier

CLASSES = ["dog_bark", "baby_cry", "gunshot", "background"]
AUDIO = {"sample_rate": 8000, "duration": 1.0, "padding": "loop"}
SR = 8000


@pytest.fixture(scope="module")
def model():
    """An untrained tiny LSTM classifier (1 s windows at 8 kHz): its scores wander enough for events."""
    torch.manual_seed(0)
    model = Classifier(*tiny_parts(), CLASSES).eval()
    model.card = {"class_names": CLASSES, "audio": dict(AUDIO)}
    return model


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A 40 s synthetic recording with events (float WAV: the stream gets exactly decode's samples)."""
    folder = tmp_path_factory.mktemp("long")
    generate_long(folder / "gen", 1, minutes=40 / 60, sample_rate=SR, events_per_minute=12, seed=3)
    wave, sr = sf.read(folder / "gen" / "rec_00000.wav", dtype="float32")
    assert sr == SR
    path = folder / "rec.wav"
    sf.write(path, wave, SR, subtype="FLOAT")
    return path, wave


def thresholds_for(model, path, hop_s=None, length=3) -> dict:
    """Per-class thresholds halfway between two filtered scores near the median: many events, and no
    score within float error of a threshold."""
    scores, _, _ = score_curves(Predictor(model, hop_s), path)
    filtered = median_filter(scores, length)
    out = {}
    for c, name in enumerate(CLASSES[:-1]):
        values = np.unique(filtered[:, c])
        k = len(values) // 2
        out[name] = float((values[k - 1] + values[k]) / 2)
    return out


def stream(detector: StreamingDetector, wave: np.ndarray, chunk: int) -> tuple[list, list]:
    """All events (sorted as offline) and (event, stream time when returned) pairs."""
    returned = []
    for start in range(0, len(wave), chunk):
        for e in detector.push(wave[start : start + chunk]):
            returned.append((e, detector.time_s))
    returned += [(e, detector.time_s) for e in detector.flush()]
    order = {c: i for i, c in enumerate(CLASSES)}
    return sorted((e for e, _ in returned), key=lambda e: (e.onset, order[e.label])), returned


def assert_same_events(got, expected):
    assert len(got) == len(expected), (got, expected)
    for g, e in zip(got, expected):
        assert g.label == e.label
        assert g.onset == pytest.approx(e.onset, abs=1e-6) and g.offset == pytest.approx(e.offset, abs=1e-6)
        assert g.score == pytest.approx(e.score, abs=1e-6)


SETTINGS = {
    "defaults": dict(hop_s=None, median_filter=3, min_gap_s=0.0, trim_s=0.0),
    "gap_trim_median5": dict(hop_s=None, median_filter=5, min_gap_s=1.2, trim_s=0.1),
    "hop_not_dividing_window": dict(hop_s=0.3, median_filter=1, min_gap_s=0.0, trim_s=0.0),
    "hop_above_window": dict(hop_s=1.5, median_filter=3, min_gap_s=2.5, trim_s=0.0),
}


@pytest.mark.parametrize("settings", list(SETTINGS), ids=list(SETTINGS))
@pytest.mark.parametrize("chunk", [7, 999, 4000, 4001, 12345, None], ids=lambda c: f"chunk{c or 'whole'}")
def test_stream_events_equal_offline_detect(model, recording, settings, chunk):
    path, wave = recording
    s = SETTINGS[settings]
    thresholds = thresholds_for(model, path, s["hop_s"], s["median_filter"])
    expected = detect(model, path, thresholds=thresholds, **s)
    assert len(expected) >= 5  # the comparison has events to compare
    detector = StreamingDetector(model, thresholds=thresholds, **s)
    got, returned = stream(detector, wave, chunk or len(wave))
    assert_same_events(got, expected)
    if chunk and chunk < 5000:  # events come out as they become final, not all at the end
        assert sum(t < len(wave) / SR for _, t in returned) >= len(expected) // 2


def test_one_sample_chunks_on_a_short_recording(model, recording, tmp_path):
    _, wave = recording
    short = tmp_path / "short.wav"
    sf.write(short, wave[: int(5.3 * SR)], SR, subtype="FLOAT")  # 5.3 s: a tail that is not scored
    thresholds = thresholds_for(model, short)
    expected = detect(model, short, thresholds=thresholds)
    assert expected
    got, returned = stream(StreamingDetector(model, thresholds=thresholds), wave[: int(5.3 * SR)], 1)
    assert_same_events(got, expected)


def test_a_stream_shorter_than_a_window_is_scored_once_padded(model, recording, tmp_path):
    _, wave = recording
    short = tmp_path / "short.wav"
    sf.write(short, wave[:5000], SR, subtype="FLOAT")
    expected = detect(model, short, thresholds=0.0)  # every window active: one event
    got, _ = stream(StreamingDetector(model, thresholds=0.0), wave[:5000], 600)
    assert len(expected) == 3 and [e.offset for e in expected] == [1.0] * 3
    assert_same_events(got, expected)
    assert StreamingDetector(model).flush() == []  # an empty stream
    with pytest.raises(ValueError, match="1-D"):
        StreamingDetector(model).push(np.zeros((2, 100), np.float32))


def test_windows_are_scored_as_their_last_sample_arrives(model, recording):
    """The scores callable is injectable; it sees exactly the windows [k * hop, k * hop + n)."""
    _, wave = recording
    seen = []
    own = torch_scores(model)

    def scores(windows):
        seen.append(windows.copy())
        return own(windows)

    detector = StreamingDetector(model, thresholds=0.5, scores=scores)
    n, hop = detector.n, detector.hop
    assert detector.push(np.zeros(0, np.float32)) == [] and not seen
    pushed = 0
    for size in (n - 1, 1, hop - 1, 1, hop):  # windows complete at n, n + hop, n + 2 hop
        before = len(seen)
        detector.push(wave[pushed : pushed + size])
        pushed += size
        assert detector.scored == max(0, (pushed - n) // hop + 1)
        assert len(seen) == before + (detector.scored > 0 and pushed in (n, n + hop, n + 2 * hop))
    windows = np.concatenate(seen)
    for k, w in enumerate(windows):
        np.testing.assert_array_equal(w, wave[k * hop : k * hop + n])
    np.testing.assert_allclose(
        own(windows), Predictor(model).window_outputs(wave[: n + 2 * hop])[0], atol=1e-6, rtol=0
    )


def test_thresholds_default_to_the_checkpoints_and_emission_delay_is_bounded(model, recording, monkeypatch):
    path, wave = recording
    monkeypatch.setitem(model.card, "thresholds", thresholds_for(model, path))
    expected = detect(model, path, min_gap_s=0.5)
    detector = StreamingDetector(model, min_gap_s=0.5)
    assert detector.thresholds_source == "checkpoint"
    chunk = 800  # 0.1 s
    got, returned = stream(detector, wave, chunk)
    assert_same_events(got, expected)
    # final once the filter has seen L//2 windows past a gap too long to merge
    bound = detector.window_s + 0.5 + 2 * detector.hop_s + chunk / SR + 1e-9
    delays = [t - e.offset for e, t in returned if t < len(wave) / SR]  # not those of the flush
    assert delays and all(0 <= d <= bound for d in delays), (delays, bound)


def test_realtime_playback_prints_final_events_as_json(model, recording, tmp_path, capsys):
    path, wave = recording
    ckpt = checkpoint(model, tmp_path, thresholds_for(model, path))
    clip = tmp_path / "clip.wav"
    sf.write(clip, wave[: int(2.5 * SR)], SR, subtype="FLOAT")
    expected = detect(clusterlight.load(ckpt), clip, median_filter=1)
    t0 = time.monotonic()
    stream_main(
        ["--ckpt_path", str(ckpt), "--realtime", str(clip), "--chunk_ms", "250", "--median_filter", "1"]
    )
    assert time.monotonic() - t0 >= 2.5  # played at real speed
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert_same_events(
        [Event(*[x[k] for k in ("onset", "offset", "label", "score")]) for x in lines], expected
    )
    assert all(x["delay_s"] >= 0 for x in lines)


def checkpoint(model, folder, thresholds: dict):
    """``model`` saved as a checkpoint with its card and detection thresholds (no training)."""
    card = model_card(init_config(model), CLASSES, dict(AUDIO))
    card["thresholds"] = thresholds
    path = folder / "tiny.ckpt"
    torch.save({"state_dict": model.state_dict(), CARD_KEY: card}, path)
    return path


def run_stream(args, pcm: bytes, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "clusterlight", "stream", *args]
    return subprocess.run(cmd, input=pcm, capture_output=True, timeout=timeout, env=subprocess_env())


@pytest.mark.slow
def test_stream_command_reads_pcm_from_stdin(model, recording, tmp_path):
    path, wave = recording
    ckpt = checkpoint(model, tmp_path, thresholds_for(model, path))
    pcm = np.clip(np.round(wave * 32768), -32768, 32767).astype("<i2")
    wav = tmp_path / "pcm16.wav"
    sf.write(wav, pcm, SR, subtype="PCM_16")
    expected = detect(clusterlight.load(ckpt), wav, min_gap_s=0.5)
    assert expected
    done = run_stream(["--ckpt_path", str(ckpt), "--min_gap", "0.5", "--chunk_ms", "130"], pcm.tobytes())
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    lines = [json.loads(x) for x in done.stdout.decode().splitlines()]
    assert all(set(x) == {"onset", "offset", "label", "score", "delay_s"} for x in lines)
    order = {c: i for i, c in enumerate(CLASSES)}
    got = sorted(
        (Event(x["onset"], x["offset"], x["label"], x["score"]) for x in lines),
        key=lambda e: (e.onset, order[e.label]),
    )
    assert_same_events(got, expected)
    assert all(x["delay_s"] >= 0 for x in lines)


@pytest.mark.slow
def test_stream_command_exits_cleanly_on_sigint(model, recording, tmp_path):
    path, wave = recording
    ckpt = checkpoint(model, tmp_path, thresholds_for(model, path))
    # threshold 0: every window active, an event of each class open until the end
    # one read takes the 3 s whole, however slow the machine: the SIGINT comes while they are scored or
    # while the next read blocks
    cmd = [sys.executable, "-m", "clusterlight", "stream", "--ckpt_path", str(ckpt), "--thresholds", "0"]
    cmd += ["--chunk_ms", "3000"]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env()
    )
    try:
        proc.stdin.write(np.zeros(3 * SR, dtype="<i2").tobytes())  # 3 s, then no more (stdin stays open)
        proc.stdin.flush()
        banner = proc.stderr.readline().decode()
        assert "stream:" in banner, banner
        time.sleep(2)  # the 3 s are read and scored; the next read blocks
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-3000:]
    lines = [json.loads(x) for x in out.decode().splitlines()]
    assert [(x["label"], x["onset"], x["offset"]) for x in lines] == [
        (c, 0.0, 3.0) for c in ("dog_bark", "baby_cry", "gunshot")
    ]
    assert "3.0 s of audio, 3 events" in err.decode()
