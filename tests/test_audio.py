import logging

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers.data import write_tone

from clusterlight.data import decode as decoding
from clusterlight.data.audio import load_waveforms
from clusterlight.data.cropping import clip_positions, fit_length
from clusterlight.data.decode import decode
from clusterlight.data.records import Clip, DataError


def test_decode_resamples_and_mixes_to_mono(tmp_path):
    p = write_tone(tmp_path / "s.wav", sr=8000, seconds=0.5, channels=2)
    x = decode(str(p), 16000)
    assert x.ndim == 1 and x.dtype == np.float32
    assert abs(len(x) - 8000) <= 1


def test_fit_length_modes():
    w = np.arange(1, 5, dtype=np.float32)
    assert fit_length(np.arange(10, dtype=np.float32), 4, "loop", 3).tolist() == [3, 4, 5, 6]
    assert fit_length(np.arange(10, dtype=np.float32), 4, "zero", 100).tolist() == [6, 7, 8, 9]
    assert fit_length(w, 10, "loop", 1).tolist() == [2, 3, 4, 1, 2, 3, 4, 1, 2, 3]
    assert fit_length(w, 6, "zero", 1).tolist() == [0, 1, 2, 3, 4, 0]
    noisy = fit_length(w, 6, "noise", 0, np.random.default_rng(0))
    assert np.allclose(noisy[:4], w, atol=0.2) and 0 < np.abs(noisy[4:]).max() < 0.2
    with pytest.raises(DataError, match="padding must be one of"):
        fit_length(w, 6, "mirror", 0)


@pytest.mark.parametrize("mode", ["loop", "zero", "noise"])
def test_fit_length_follows_the_tensor_rule_of_clip_positions(mode):
    """The per-clip host path and the batched device path crop and pad alike, at every offset."""
    n = 7
    for m in (1, 3, 6, 7, 8, 20):
        wave = np.arange(1, m + 1, dtype=np.float32)
        for offset in range(-3, m + n + 3):
            pos, inside = clip_positions(torch.tensor([m]), torch.tensor([offset]), n, mode)
            expected = wave[pos[0].numpy()] * (1 if inside is None else inside[0].numpy())
            got = fit_length(wave, n, mode, offset, np.random.default_rng(0))
            if mode == "noise" and m < n:  # placed as with zero padding, then noise 40 dB down on top
                noise = got - fit_length(wave, n, "zero", offset)
                assert 0 < np.abs(noise).max() < 0.1 * np.sqrt(np.mean(wave**2))
                got = got - noise
            assert got.dtype == np.float32 and got.tolist() == expected.tolist(), (m, offset)


def _clips(tmp_path, n=3):
    return [Clip(str(write_tone(tmp_path / f"c{i}.wav", freq=200 + 100 * i)), "x") for i in range(n)]


def test_cache_is_reused_without_decoding(tmp_path, monkeypatch):
    clips = _clips(tmp_path)
    first = load_waveforms(clips, 8000, tmp_path / "cache")
    assert np.allclose(first.wave(1), decode(clips[1].path, 8000), atol=1e-3)

    def boom(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(decoding, "decode", boom)
    second = load_waveforms(clips, 8000, tmp_path / "cache")
    assert np.array_equal(second.wave(2), first.wave(2))
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_cache_key_follows_files_and_settings(tmp_path):
    clips = _clips(tmp_path)
    load_waveforms(clips, 8000, tmp_path / "cache")
    load_waveforms(clips, 16000, tmp_path / "cache")
    write_tone(tmp_path / "c0.wav", seconds=0.75)  # content change
    load_waveforms(clips, 8000, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("waves-*"))) == 3


def test_failed_build_leaves_no_cache(tmp_path):
    clips = _clips(tmp_path) + [Clip(str(tmp_path / "missing.wav"), "x")]
    with pytest.raises(DataError, match=r"missing\.wav does not exist"):
        load_waveforms(clips, 8000, tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@pytest.mark.parametrize(
    "kind, match", [("missing", "does not exist"), ("empty", "is empty"), ("corrupt", "could not be decoded")]
)
def test_bad_files_are_named(tmp_path, kind, match):
    bad = tmp_path / "bad.wav"
    if kind == "empty":
        bad.write_bytes(b"")
    elif kind == "corrupt":
        bad.write_bytes(b"RIFF" + bytes(range(200)))
    with pytest.raises(DataError, match=rf"bad\.wav {match}"):
        decode(str(bad), 8000)


def test_skip_bad_files_counts_and_names_them(tmp_path, caplog):
    clips = _clips(tmp_path, 2)
    (tmp_path / "bad.wav").write_bytes(b"garbage")
    clips.append(Clip(str(tmp_path / "bad.wav"), "x"))
    with caplog.at_level(logging.WARNING):
        store = load_waveforms(clips, 8000, tmp_path / "cache", on_bad_file="skip")
    assert len(store) == 2 and store.skipped == [str(tmp_path / "bad.wav")]
    assert "skipped 1 unreadable audio file(s)" in caplog.text and "bad.wav" in caplog.text


def test_silent_zero_length_file_is_an_error(tmp_path):
    p = tmp_path / "zero.wav"
    sf.write(p, np.zeros(0), 8000)
    with pytest.raises(DataError, match="zero.wav"):
        decode(str(p), 8000)


@pytest.mark.parametrize("subtype, channels", [("PCM_16", 1), ("PCM_24", 2), ("FLOAT", 2)])
def test_complete_wav_with_extra_chunks_is_not_called_truncated(tmp_path, subtype, channels):
    x = 0.3 * np.sin(np.arange(8001) / 5)
    with sf.SoundFile(tmp_path / "m.wav", "w", 8000, channels, subtype) as f:
        f.title, f.artist = "odd", "abc"  # a LIST chunk before the data chunk
        f.write(np.stack([x] * channels, axis=1))
    assert len(decode(str(tmp_path / "m.wav"), 8000)) == 8001
