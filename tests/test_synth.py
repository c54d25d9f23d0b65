import numpy as np
import soundfile as sf

from clusterlight.data.synth import BACKGROUND_TYPES, CLASSES, background, generate, synth_clip


def _spectrum(x):
    return np.abs(np.fft.rfft(x))


def test_generation_is_deterministic_by_seed(tmp_path):
    counts = {"train": {"dog_bark": 2, "background": 2}}
    a = generate(tmp_path / "a", counts, seed=3, sample_rate=8000, duration=0.5)
    b = generate(tmp_path / "b", counts, seed=3, sample_rate=8000, duration=0.5)
    c = generate(tmp_path / "c", counts, seed=4, sample_rate=8000, duration=0.5)
    assert a.read_text() == b.read_text()
    rel = "train/dog_bark/dog_bark_00001.wav"
    xa, xb, xc = (sf.read(p.parent / rel)[0] for p in (a, b, c))
    assert np.array_equal(xa, xb)
    assert not np.allclose(xa, xc)


def test_manifest_lists_requested_counts(tmp_path):
    counts = {"train": {"dog_bark": 3, "gunshot": 1}, "test": {"background": 2}}
    manifest = generate(tmp_path / "d", counts, sample_rate=8000, duration=0.25)
    rows = manifest.read_text().strip().splitlines()
    assert rows[0] == "path,label,split,group"
    labels = [r.split(",")[1] for r in rows[1:]]
    assert sorted(labels) == ["background", "background", "dog_bark", "dog_bark", "dog_bark", "gunshot"]
    assert not list(tmp_path.glob(".tmp-*")), "temporary folder left behind"


def test_failed_generation_leaves_nothing(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="'cat'"):
        generate(tmp_path / "bad", {"train": {"dog_bark": 1, "cat": 1}}, sample_rate=8000, duration=0.25)
    assert list(tmp_path.iterdir()) == []


def test_background_subtypes_are_spectrally_distinct():
    """The big class has internal structure: its sub-types are told apart by coarse band energies."""
    sr, n = 16000, 16000

    def bands(kind, seed):
        s = _spectrum(background(np.random.default_rng(seed), kind, n, sr))
        return np.log(np.array([b.sum() for b in np.array_split(s, 24)]) + 1e-6)

    train = {k: np.mean([bands(k, s) for s in range(4)], axis=0) for k in BACKGROUND_TYPES}
    hits = sum(
        min(train, key=lambda m: np.linalg.norm(bands(k, s) - train[m])) == k
        for k in BACKGROUND_TYPES
        for s in range(10, 14)
    )
    assert len(BACKGROUND_TYPES) >= 4
    assert hits / (4 * len(BACKGROUND_TYPES)) >= 0.9


def test_classes_carry_their_structure():
    """Gunshots are impulsive (high crest factor), cries are long voiced tones, barks are short bursts."""
    sr = 16000

    def crest(label, seed):
        x = synth_clip(np.random.default_rng(seed), label, sr, 2.0, (20.0, 20.0))
        return np.max(np.abs(x)) / np.sqrt(np.mean(x**2))

    gun = np.mean([crest("gunshot", s) for s in range(8)])
    cry = np.mean([crest("baby_cry", s) for s in range(8)])
    bg = np.mean([crest("background", s) for s in range(8)])
    assert gun > 1.5 * cry and gun > 1.5 * bg
    assert set(CLASSES) == {"dog_bark", "baby_cry", "gunshot", "background"}


def test_a_nearest_mean_spectrum_classifier_beats_chance():
    """The classes are learnable: a trivial spectral nearest-mean rule beats 25% chance clearly."""
    sr = 8000
    feats = {
        c: [
            np.log(
                _spectrum(synth_clip(np.random.default_rng(100 * i + j), c, sr, 1.0, (0.0, 6.0)))[::40] + 1e-3
            )
            for j in range(20)
        ]
        for i, c in enumerate(CLASSES)
    }
    means = {c: np.mean(v[:10], axis=0) for c, v in feats.items()}
    hits = sum(
        min(means, key=lambda m: np.linalg.norm(f - means[m])) == c for c, v in feats.items() for f in v[10:]
    )
    assert hits / 40 > 0.5
