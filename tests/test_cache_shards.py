"""The sharded waveform cache: the same bytes from any number of workers, resuming a killed build, a damaged
shard rebuilt alone, stored dtypes and their round trips, memory bounded by shards, progress lines."""

import logging
import os
import signal
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from helpers.data import write_tone

from clusterlight import progress as progress_module
from clusterlight.data import decode as decoding
from clusterlight.data.audio import load_waveforms
from clusterlight.data.records import Clip
from clusterlight.data.shard_build import KILL_AFTER_ENV


def _mixed_clips(folder, n=6):
    """Tones at 8 and 11.025 kHz (so some are resampled to the cache's 8 kHz), 0.3-0.8 s."""
    return [
        Clip(str(write_tone(folder / f"c{i}.wav", sr=(8000, 11025)[i % 2], seconds=0.3 + 0.1 * i)), "x")
        for i in range(n)
    ]


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _identity(folder):
    return {
        str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*.npy")
    }


def _counting_decode(monkeypatch):
    calls = []
    real = decoding.decode

    def counted(path, sr):
        calls.append(path)
        return real(path, sr)

    monkeypatch.setattr(decoding, "decode", counted)
    return calls


@pytest.mark.slow  # starts two spawned decoding workers
def test_one_and_two_workers_write_the_same_bytes(tmp_path):
    clips = _mixed_clips(tmp_path / "audio")
    one = load_waveforms(clips, 8000, tmp_path / "one", decode_workers=1, clips_per_shard=2)
    two = load_waveforms(clips, 8000, tmp_path / "two", decode_workers=2, clips_per_shard=2)
    assert one.folder.name == two.folder.name and len(one.shards) == 3
    assert _files(one.folder) == _files(two.folder)
    assert all(np.array_equal(one.wave(i), two.wave(i)) for i in range(len(clips)))


def test_store_reads_across_shards_like_decoding(tmp_path):
    clips = _mixed_clips(tmp_path / "audio", 5)
    store = load_waveforms(clips, 8000, tmp_path / "cache", decode_workers=1, clips_per_shard=2)
    assert len(store) == 5 and sorted(p.name for p in store.folder.iterdir()) == [
        "index.json",
        "shard-00000",
        "shard-00001",
        "shard-00002",
    ]
    for i, c in enumerate(clips):
        assert np.array_equal(store.wave(i), decoding.decode(c.path, 8000))
        assert store.length(i) == len(store.wave(i)) == store.lengths()[i]
    assert np.array_equal(store.all_waves(), np.concatenate([store.wave(i) for i in range(5)]))


_KILLED_BUILD = """
import sys
from clusterlight.data.audio import load_waveforms
from clusterlight.data.records import Clip
clips = [Clip(p, "x") for p in sys.argv[2:]]
load_waveforms(clips, 8000, sys.argv[1], decode_workers=1, clips_per_shard=2)
"""


@pytest.mark.slow  # a build in a subprocess, SIGKILLed
def test_a_killed_build_resumes_from_its_finished_shards(tmp_path, monkeypatch):
    clips = _mixed_clips(tmp_path / "audio")
    cache = tmp_path / "cache"
    env = {**os.environ, KILL_AFTER_ENV: "2"}
    cmd = [sys.executable, "-c", textwrap.dedent(_KILLED_BUILD), str(cache)] + [c.path for c in clips]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    (partial,) = cache.glob("waves-*.partial")
    assert sorted(p.name for p in partial.glob("shard-*")) == ["shard-00000", "shard-00001"]
    assert not (partial / "index.json").exists()
    before = _identity(partial)
    calls = _counting_decode(monkeypatch)
    store = load_waveforms(clips, 8000, cache, decode_workers=1, clips_per_shard=2)
    assert calls == [clips[4].path, clips[5].path], "finished shards were decoded again"
    after = _identity(store.folder)
    assert {k: after[k] for k in before} == before
    assert not partial.exists() and not (store.folder / ".lock").exists()
    assert all(np.array_equal(store.wave(i), decoding.decode(c.path, 8000)) for i, c in enumerate(clips))


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("verify", ["size", "full"])
def test_a_damaged_shard_is_rebuilt_alone(tmp_path, monkeypatch, caplog, verify):
    clips = _mixed_clips(tmp_path / "audio")
    cache = tmp_path / "cache"
    first = load_waveforms(clips, 8000, cache, decode_workers=1, clips_per_shard=2)
    expected = [first.wave(i).copy() for i in range(len(clips))]
    before = _identity(first.folder)
    damaged = first.folder / "shard-00001" / "waves.npy"
    raw = bytearray(damaged.read_bytes())
    if verify == "size":
        raw = raw[:-8]
    else:  # same size: only the checksum sees it
        raw[-8:] = bytes(b ^ 0xFF for b in raw[-8:])
    damaged.write_bytes(bytes(raw))
    calls = _counting_decode(monkeypatch)
    with caplog.at_level(logging.WARNING):
        store = load_waveforms(clips, 8000, cache, verify=verify, decode_workers=1, clips_per_shard=2)
    (message,) = _warnings(caplog)
    assert str(first.folder) in message and "shard-00001 is unusable" in message and "alone" in message
    assert calls == [clips[2].path, clips[3].path]
    after = _identity(store.folder)
    kept = [k for k in before if not k.startswith("shard-00001")]
    assert {k: after[k][0] for k in kept} == {k: before[k][0] for k in kept}, "kept shards were rewritten"
    assert all(np.array_equal(store.wave(i), expected[i]) for i in range(len(clips)))
    assert sorted(p.name for p in cache.iterdir()) == [first.folder.name]


def test_int16_is_exact_for_16_bit_pcm_and_half_the_bytes(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "pcm.wav"
    sf.write(path, rng.integers(-32768, 32768, 4000).astype(np.int16), 8000, subtype="PCM_16")
    clips = [Clip(str(path), "x")]
    exact = load_waveforms(clips, 8000, tmp_path / "cache", cache_dtype="float32")
    small = load_waveforms(clips, 8000, tmp_path / "cache", cache_dtype="int16")
    assert small.shards[0].dtype == np.int16 and small.wave(0).dtype == np.float32
    assert np.array_equal(small.wave(0), exact.wave(0)) and small.nbytes * 2 == exact.nbytes
    assert exact.folder != small.folder, "the dtype is part of the cache key"


def test_float16_and_resampled_int16_stay_within_their_bounds(tmp_path):
    clips = _mixed_clips(tmp_path / "audio", 2)  # the second is resampled: not k / 32768
    exact = load_waveforms(clips, 8000, tmp_path / "cache")
    half = load_waveforms(clips, 8000, tmp_path / "cache", cache_dtype="float16")
    pcm = load_waveforms(clips, 8000, tmp_path / "cache", cache_dtype="int16")
    for i in range(2):
        x = exact.wave(i)
        big = np.abs(x) >= 2**-14
        assert (np.abs(half.wave(i) - x)[big] <= np.abs(x[big]) * 2**-11).all()
        assert (np.abs(half.wave(i) - x)[~big] <= 2**-25).all()
        assert np.abs(pcm.wave(i) - x).max() <= 2**-16
    assert half.shards[0].dtype == np.float16


def test_int16_clipping_is_counted_and_named(tmp_path, caplog):
    path = tmp_path / "loud.wav"
    sf.write(path, np.array([0.5, 1.5, -1.5, 1.0, -1.0, 0.0] * 100, dtype=np.float32), 8000, subtype="FLOAT")
    with caplog.at_level(logging.WARNING):
        store = load_waveforms([Clip(str(path), "x")], 8000, tmp_path / "cache", cache_dtype="int16")
    assert store.clipped == {str(path): 300}  # 1.5, -1.5 and 1.0 (32768 > 32767), per repeat
    assert store.wave(0)[1] == 32767 / 32768 and store.wave(0)[2] == -1.0 and store.wave(0)[4] == -1.0
    assert any("300 sample(s) of 1 clip(s) were clipped" in m and "loud.wav" in m for m in _warnings(caplog))


def test_building_holds_a_few_shards_not_the_data_set(tmp_path):
    rng = np.random.default_rng(0)
    clips = []
    for i in range(128):
        path = tmp_path / "audio" / f"{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, rng.uniform(-0.5, 0.5, 32000).astype(np.float32), 8000, subtype="FLOAT")
        clips.append(Clip(str(path), "x"))
    dataset_bytes = 128 * 32000 * 4  # 16 MiB; a shard of 4 clips is 512 KiB
    tracemalloc.start()
    try:
        store = load_waveforms(clips, 8000, tmp_path / "cache", decode_workers=1, clips_per_shard=4)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert store.nbytes == dataset_bytes
    assert peak < dataset_bytes / 4, f"peak {peak} bytes while building {dataset_bytes} bytes of cache"


def test_progress_prints_counts_rate_and_eta_off_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert list(progress_module.progress(range(3), "decoding", "files", every=0.0)) == [0, 1, 2]
    with progress_module.progress(total=10, desc="verifying", unit="shards", every=3600.0) as bar:
        bar.update(4)  # shorter than `every`: silent
    with progress_module.progress(total=10, desc="building", unit="files", every=0.0) as bar:
        bar.update(4)
        bar.every = 3600.0
        bar.update(2)  # not printed now, but a loop that printed ends with a last line
    lines = capsys.readouterr().err.splitlines()
    assert "[clusterlight] decoding: 1/3 files (33%)" in lines[0] and "files/s, ETA" in lines[0]
    assert lines[2].startswith("[clusterlight] decoding: 3/3 files (100%)") and len(lines) == 5
    assert not any("verifying" in line for line in lines)
    assert [line.split(" (")[0] for line in lines[3:]] == [
        "[clusterlight] building: 4/10 files",
        "[clusterlight] building: 6/10 files",
    ]
    monkeypatch.setenv("CLUSTERLIGHT_PROGRESS_EVERY", "7.5")
    assert progress_module.default_every() == 7.5
