"""Long synthetic recordings: annotations exact, events apart, deterministic, fast."""

from __future__ import annotations

import csv
import time

import numpy as np
import pytest
import soundfile as sf

from clusterlight.data import long_synth
from clusterlight.data.long_synth import ACTIVE_LEVEL, generate_long, synth_recording

SR = 8000


def rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_files_manifest_and_annotations(tmp_path):
    manifest = generate_long(
        tmp_path / "rec", 3, 0.5, seed=0, sample_rate=SR, events_per_minute=10, snr_db=(-3, 3), min_gap_s=1.5
    )
    assert manifest == tmp_path / "rec" / "manifest.csv"
    listed = rows(manifest)
    assert [r["file"] for r in listed] == ["rec_00000.wav", "rec_00001.wav", "rec_00002.wav"]
    assert list(listed[0]) == ["file", "duration", "sample_rate", "n_events", "backgrounds"]
    ann = rows(manifest.parent / "annotations.csv")
    assert list(ann[0]) == ["file", "onset", "offset", "event_label", "snr_db"]
    for r in listed:
        x, sr = sf.read(manifest.parent / r["file"])
        assert sr == SR and len(x) == 30 * SR and float(r["duration"]) == 30.0
        assert np.max(np.abs(x)) == pytest.approx(0.5, abs=1e-3)
        events = [a for a in ann if a["file"] == r["file"]]
        assert len(events) == int(r["n_events"]) == 5  # round(10 per minute * 0.5 minutes)
        onsets = [float(a["onset"]) for a in events]
        offsets = [float(a["offset"]) for a in events]
        assert onsets == sorted(onsets) and onsets[0] >= 0 and offsets[-1] <= 30.0
        assert all(b - a >= 1.5 - 1e-9 for a, b in zip(offsets, onsets[1:])), "events closer than min_gap_s"
        assert all(off > on for on, off in zip(onsets, offsets))
        assert all(a["event_label"] in ("dog_bark", "baby_cry", "gunshot") for a in events)
        assert all(-3 <= float(a["snr_db"]) <= 3 for a in events)
        assert set(r["backgrounds"].split(";")) <= {"hum", "traffic", "rain", "babble", "music"}
    assert not list(tmp_path.glob(".tmp-*"))


def test_deterministic_by_seed_and_independent_of_the_number_of_recordings(tmp_path):
    kw = dict(minutes=0.25, sample_rate=SR, events_per_minute=8)
    a = generate_long(tmp_path / "a", 2, seed=5, **kw).parent
    b = generate_long(tmp_path / "b", 1, seed=5, **kw).parent
    c = generate_long(tmp_path / "c", 1, seed=6, **kw).parent
    assert (a / "rec_00000.wav").read_bytes() == (b / "rec_00000.wav").read_bytes()
    first = [r for r in rows(a / "annotations.csv") if r["file"] == "rec_00000.wav"]
    assert first == rows(b / "annotations.csv")
    assert rows(a / "annotations.csv") != rows(c / "annotations.csv")
    assert (a / "rec_00000.wav").read_bytes() != (c / "rec_00000.wav").read_bytes()


def test_annotations_span_exactly_the_audible_event_at_its_snr(monkeypatch):
    """With a silent background, the mix is the events alone: non-zero exactly inside the annotations,
    loud (>= ACTIVE_LEVEL of the event's peak) at both ends, and the active RMS ratios match the SNRs."""
    monkeypatch.setattr(long_synth, "background", lambda rng, kind, n, sr: np.zeros(n))
    x, events, _ = synth_recording(np.random.default_rng(3), 40 * SR, SR, n_events=8, min_gap_s=1.0)
    assert len(events) == 8 and len({e["event_label"] for e in events}) > 1
    inside = np.zeros(len(x), bool)
    rms = []
    for e in events:
        on, off = round(e["onset"] * SR), round(e["offset"] * SR)
        assert (on, off) == (e["onset"] * SR, e["offset"] * SR)  # whole samples
        seg = x[on:off].astype(np.float64)
        peak = np.max(np.abs(seg))
        assert abs(seg[0]) >= ACTIVE_LEVEL * peak * 0.999 and abs(seg[-1]) >= ACTIVE_LEVEL * peak * 0.999
        rms.append(np.sqrt(np.mean(seg[np.abs(seg) > ACTIVE_LEVEL * peak] ** 2)))
        inside[on:off] = True
    assert not np.any(x[~inside])
    snr = np.array([e["snr_db"] for e in events])
    np.testing.assert_allclose(20 * np.log10(np.array(rms) / rms[0]), snr - snr[0], atol=0.05)


def test_too_many_events_bad_classes_and_existing_folder(tmp_path):
    with pytest.raises(ValueError, match="do not fit"):
        generate_long(tmp_path / "x", 1, 0.1, sample_rate=SR, events_per_minute=60, min_gap_s=2.0)
    with pytest.raises(ValueError, match="subset"):
        generate_long(tmp_path / "y", 1, 0.1, sample_rate=SR, classes=("cat",))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    out = generate_long(tmp_path / "z", 1, 0.1, sample_rate=SR, events_per_minute=0).parent
    assert rows(out / "annotations.csv") == []
    with pytest.raises(FileExistsError):
        generate_long(out, 2, 0.1, sample_rate=SR)
    generate_long(out, 2, 0.1, sample_rate=SR, overwrite=True)
    assert len(rows(out / "manifest.csv")) == 2


def test_one_minute_at_16k_is_fast(tmp_path):
    start = time.perf_counter()
    generate_long(tmp_path / "fast", 1, 1.0, seed=0)
    assert time.perf_counter() - start < 5.0  # about 0.5 s here; generous for a busy machine


def test_data_synth_long_command_writes_recordings_and_annotations(tmp_path, capsys):
    from clusterlight.cli import main

    out = tmp_path / "long"
    main(["data", "synth", "--long", "--out", str(out), "--recordings", "2", "--minutes", "0.25"])
    assert sorted(p.name for p in out.glob("*.wav")) == ["rec_00000.wav", "rec_00001.wav"]
    assert (out / "annotations.csv").read_text().splitlines()[0] == "file,onset,offset,event_label,snr_db"
    assert f"wrote 2 recording(s) of 0.25 min, {out / 'annotations.csv'}" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):  # kept unless --overwrite
        main(["data", "synth", "--long", "--out", str(out), "--recordings", "1", "--minutes", "0.25"])
