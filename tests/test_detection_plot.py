"""``clusterlight detect --plot DIR``: a PNG per recording of the score curves over the spectrogram."""

import struct

import numpy as np
import pytest
from helpers.cli import train_tiny_classifier

from clusterlight.data.long_synth import generate_long
from clusterlight.detection import Event, plot_detection, read_events_csv
from clusterlight.detection.plot import DEFAULT_SIZE
from clusterlight.inference import load
from clusterlight.inference.commands import detect_main
from clusterlight.inference.recordings import detect, detect_recording
from clusterlight.inference.thresholds import thresholds_of

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CLASSES = ["dog_bark", "baby_cry", "gunshot", "background"]


def png_size(path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny classifier (1 epoch through the CLI) and a 12 s recording with events, both at 8 kHz."""
    tmp = tmp_path_factory.mktemp("tiny")
    generate_long(tmp / "long", n_recordings=1, minutes=0.2, seed=3, sample_rate=8000, events_per_minute=10)
    return train_tiny_classifier(tmp, epochs=1), tmp / "long" / "rec_00000.wav"


@pytest.mark.slow
def test_detect_plot_writes_a_png_of_the_expected_size(tiny, tmp_path, capsys):
    ckpt, recording = tiny
    detect_main(
        ["--ckpt_path", str(ckpt), str(recording), "--out", str(tmp_path / "ev.csv"), "--plot", str(tmp_path)]
    )
    picture = tmp_path / "rec_00000.wav.png"
    assert png_size(picture) == DEFAULT_SIZE
    import matplotlib.image

    assert matplotlib.image.imread(picture).shape[:2] == DEFAULT_SIZE[::-1]  # the whole file decodes
    out = capsys.readouterr()
    source = thresholds_of(load(ckpt))[1]  # "checkpoint" when fit stored thresholds, else "default 0.5"
    assert str(picture) in out.err and f"(thresholds: {source})" in out.out


@pytest.mark.slow
def test_detect_recording_keeps_what_the_events_came_from(tiny):
    ckpt, recording = tiny
    model = load(ckpt)
    found = detect_recording(model, recording, hop_s=0.25, thresholds=0.3)
    assert found.events == detect(model, recording, hop_s=0.25, thresholds=0.3)
    assert found.thresholds_source == "given" and found.thresholds[:3].tolist() == [0.3] * 3
    assert found.scores.shape == (int((12.0 - 1.0) / 0.25) + 1, len(CLASSES))
    assert (found.hop_s, found.window_s, found.sample_rate) == (0.25, 1.0, 8000)


def test_thresholds_come_from_the_card_when_it_has_them():
    class Model:
        card = {"thresholds": {"dog_bark": 0.2, "baby_cry": 0.4, "gunshot": 0.6}}

    assert thresholds_of(Model()) == (Model.card["thresholds"], "checkpoint")
    assert thresholds_of(Model(), 0.7) == (0.7, "given")
    Model.card = {}
    assert thresholds_of(Model()) == (0.5, "default 0.5")


def test_plot_detection_draws_any_size_and_names_bad_shapes(tmp_path):
    scores = np.random.default_rng(0).uniform(size=(9, 4))
    events = [Event(1.0, 2.5, "gunshot", 0.9)]
    args = (np.zeros((16, 50)), 5.0, scores, CLASSES, 0.5, events, 0.5, 1.0)
    path = plot_detection(tmp_path / "a" / "p.png", *args, size=(640, 320))
    assert png_size(path) == (640, 320)
    with pytest.raises(ValueError, match=r"scores must be \[n_windows, 4\]"):
        plot_detection(tmp_path / "b.png", args[0], 5.0, scores[:, :3], *args[3:])
    with pytest.raises(ValueError, match=r"spectrogram must be \[n_mels, frames\]"):
        plot_detection(tmp_path / "c.png", np.zeros(5), *args[1:])


@pytest.mark.slow
def test_detect_refuses_two_recordings_of_one_name(tiny, tmp_path):
    ckpt, recording = tiny
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same.wav").write_bytes(recording.read_bytes())
    with pytest.raises(SystemExit, match="share the file name 'same.wav'"):
        detect_main(["--ckpt_path", str(ckpt), str(tmp_path / "a"), str(tmp_path / "b")])


@pytest.mark.slow
def test_detect_annotations_score_the_events_and_measure_the_trim(tiny, tmp_path, capsys):
    """``--annotations`` prints event-based F1/ER against the reference and the onset lead; detecting
    again with that ``--trim`` moves each onset later by it (offsets earlier)."""
    ckpt, recording = tiny
    annotations = recording.parent / "annotations.csv"
    common = ["--ckpt_path", str(ckpt), str(recording), "--hop", "0.25", "--thresholds", "0.1"]
    detect_main([*common, "--out", str(tmp_path / "raw.csv"), "--annotations", str(annotations)])
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith(f"against {annotations}: event-based F1 ") and "error rate" in line
    trim = float(line.rsplit("--trim ", 1)[1])
    assert trim >= 0
    detect_main([*common, "--out", str(tmp_path / "trimmed.csv"), "--trim", "0.25"])
    raw = read_events_csv(tmp_path / "raw.csv")["rec_00000.wav"]
    trimmed = read_events_csv(tmp_path / "trimmed.csv")["rec_00000.wav"]
    assert raw, "the tiny model detects something at threshold 0.1"
    pairs = [
        pair
        for c in CLASSES
        for pair in zip([e for e in raw if e.label == c], [e for e in trimmed if e.label == c], strict=True)
    ]
    long_enough = [(r, t) for r, t in pairs if r.offset - r.onset >= 0.75]
    assert all(t.onset == pytest.approx(r.onset + 0.25) for r, t in long_enough)
    assert all(t.offset == pytest.approx(r.offset - 0.25) for r, t in long_enough)
