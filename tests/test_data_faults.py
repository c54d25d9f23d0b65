"""Faults in the data path: a damaged waveform cache, bad manifests, cut or suspicious audio, file modes.

Every test writes tiny files into ``tmp_path`` and runs in well under a second.
"""

import csv
import json
import logging
import os
import stat

import numpy as np
import pytest
import soundfile as sf
from helpers.data import write_tone

from clusterlight.data import AudioDataModule, ManifestSource, UrbanSound8KSource
from clusterlight.data import decode as decoding
from clusterlight.data.array_store import file_digest
from clusterlight.data.atomic import atomic_file, atomic_folder
from clusterlight.data.audio import load_waveforms
from clusterlight.data.decode import decode
from clusterlight.data.records import Clip, DataError

# ---- helpers ---------------------------------------------------------------------------


def _clips(tmp_path, n=3, seconds=0.5):
    return [
        Clip(str(write_tone(tmp_path / f"c{i}.wav", seconds=seconds, freq=200 + 100 * i)), "x")
        for i in range(n)
    ]


def _cache_folder(cache):
    (folder,) = cache.glob("waves-*")
    return folder


def _shard(cache, i=0):
    return _cache_folder(cache) / f"shard-{i:05d}"


def _leftovers(cache):
    return sorted(p.name for p in cache.iterdir() if not p.name.startswith("waves-"))


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def _write_manifest(root, rows, header=("path", "label", "split")):
    root.mkdir(parents=True, exist_ok=True)
    with (root / "manifest.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _never_decode(*args, **kwargs):
    raise AssertionError("decoded audio before the manifest was validated")


# ---- cache integrity -------------------------------------------------------------------


def test_cache_meta_records_shapes_sizes_and_checksums(tmp_path):
    clips = _clips(tmp_path)
    load_waveforms(clips, 8000, tmp_path / "cache")
    folder = _shard(tmp_path / "cache")
    meta = json.loads((folder / "meta.json").read_text())
    index = json.loads((_cache_folder(tmp_path / "cache") / "index.json").read_text())
    assert index["shards"] == [{"name": folder.name, "n": len(clips), "arrays": meta["arrays"]}]
    for name in ("waves.npy", "offsets.npy"):
        record = meta["arrays"][name]
        arr = np.load(folder / name)
        assert record["shape"] == list(arr.shape) and record["dtype"] == str(arr.dtype)
        assert record["bytes"] == (folder / name).stat().st_size
        assert record["blake2b"] == file_digest(folder / name)
    assert [f["path"] for f in meta["files"]] == [c.path for c in clips]
    assert all(f["blake2b"] == file_digest(f["path"]) for f in meta["files"])


def _truncate(folder, name):
    p = folder / name
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _remove(folder, name):
    (folder / name).unlink()


def _blank(folder, name):
    (folder / name).write_text("")


def _invalid(folder, name):
    (folder / name).write_text('{"format": 3, "sample_rate": 80')


@pytest.mark.parametrize(
    "damage, name, reason",
    [
        (_truncate, "waves.npy", "waves.npy has"),
        (_truncate, "offsets.npy", "offsets.npy has"),
        (_remove, "waves.npy", "waves.npy is missing"),
        (_remove, "offsets.npy", "offsets.npy is missing"),
        (_remove, "meta.json", "meta.json is missing"),
        (_blank, "meta.json", "meta.json is empty"),
        (_invalid, "meta.json", "meta.json is not valid JSON"),
        (_remove, "index.json", "index.json is missing"),
        (_blank, "index.json", "index.json cannot be read"),
        (_invalid, "index.json", "index.json cannot be read"),
    ],
)
def test_damaged_cache_is_rebuilt_with_a_warning(tmp_path, caplog, damage, name, reason):
    clips = _clips(tmp_path)
    cache = tmp_path / "cache"
    first = load_waveforms(clips, 8000, cache)
    expected = [first.wave(i).copy() for i in range(len(clips))]
    folder = _cache_folder(cache)
    damage(folder if name == "index.json" else _shard(cache), name)
    with caplog.at_level(logging.WARNING):
        store = load_waveforms(clips, 8000, cache)
    (message,) = [m for m in _warnings(caplog) if "waveform cache" in m]
    assert str(folder) in message and reason in message and "rebuilding" in message
    assert all(np.array_equal(store.wave(i), expected[i]) for i in range(len(clips)))
    assert _cache_folder(cache) == folder and _leftovers(cache) == []
    # the rebuilt folder is whole again: the next open is silent
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_waveforms(clips, 8000, cache, verify="full")
    assert not _warnings(caplog)


def _overwrite_waveform_bytes(folder):
    """Same-size garbage after the .npy header: the byte size and the header still look right."""
    path = folder / "waves.npy"
    data = np.load(path, mmap_mode="r")
    header = path.stat().st_size - data.nbytes
    raw = bytearray(path.read_bytes())
    raw[header:] = np.random.default_rng(0).integers(0, 256, len(raw) - header, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(raw))


def test_same_size_garbage_is_caught_by_full_not_by_size(tmp_path, caplog):
    clips = _clips(tmp_path)
    cache = tmp_path / "cache"
    good = load_waveforms(clips, 8000, cache).wave(0).copy()
    _overwrite_waveform_bytes(_shard(cache))
    # documented: "size" reads no waveform value, so it cannot see this
    assert not np.array_equal(load_waveforms(clips, 8000, cache, verify="size").wave(0), good)
    with caplog.at_level(logging.WARNING):
        store = load_waveforms(clips, 8000, cache, verify="full")
    assert any("waves.npy does not match its checksum" in m for m in _warnings(caplog))
    assert np.array_equal(store.wave(0), good)


def test_non_finite_cache_values_are_refused(tmp_path, caplog):
    clips = _clips(tmp_path)
    cache = tmp_path / "cache"
    good = load_waveforms(clips, 8000, cache).wave(1).copy()
    folder = _cache_folder(cache)
    shard = _shard(cache)
    waves = np.load(shard / "waves.npy", mmap_mode="r+")
    waves[10] = np.nan
    waves[20] = np.inf
    waves.flush()
    del waves
    meta = json.loads((shard / "meta.json").read_text())  # a checksum that agrees: only values are wrong
    meta["arrays"]["waves.npy"]["blake2b"] = file_digest(shard / "waves.npy")
    (shard / "meta.json").write_text(json.dumps(meta))
    index = json.loads((folder / "index.json").read_text())
    index["shards"][0]["arrays"] = meta["arrays"]
    (folder / "index.json").write_text(json.dumps(index))
    with caplog.at_level(logging.WARNING):
        store = load_waveforms(clips, 8000, cache, verify="full")
    assert any("NaN or infinite" in m and str(folder) in m for m in _warnings(caplog))
    assert np.isfinite(store.all_waves()).all() and np.array_equal(store.wave(1), good)


def test_full_catches_audio_changed_with_same_size_and_mtime(tmp_path, caplog):
    clips = _clips(tmp_path)
    cache = tmp_path / "cache"
    load_waveforms(clips, 8000, cache)
    path = clips[0].path
    before = os.stat(path)
    write_tone(tmp_path / "c0.wav", freq=1234.0)  # same length, so the same byte size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size
    stale = load_waveforms(clips, 8000, cache, verify="size")  # the key cannot tell
    assert not np.allclose(stale.wave(0), decode(path, 8000))
    with caplog.at_level(logging.WARNING):
        fresh = load_waveforms(clips, 8000, cache, verify="full")
    assert any("1 audio file(s) changed" in m and "c0.wav" in m for m in _warnings(caplog))
    assert np.allclose(fresh.wave(0), decode(path, 8000))


def test_datamodule_threads_verify_cache(tmp_path, caplog, monkeypatch):
    root = tmp_path / "data"
    rows = [[f"{c}{i}.wav", c, s] for c in ("dog", "cat") for i, s in enumerate(["train", "train", "val"])]
    for r in rows:
        write_tone(root / r[0])
    _write_manifest(root, rows)

    def dm(**kwargs):
        return AudioDataModule(
            source=ManifestSource(str(root)),
            test_folds=None,
            sample_rate=8000,
            duration=0.5,
            cache_dir=str(tmp_path / "cache"),
            **kwargs,
        )

    dm().setup("fit")
    _overwrite_waveform_bytes(_shard(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING):
        dm(verify_cache="full").setup("fit")
    assert any("does not match its checksum" in m for m in _warnings(caplog))
    with pytest.raises(DataError, match=r"data\.verify_cache must be one of \('size', 'full'\)"):
        dm(verify_cache="fast")


# ---- manifest validation before decoding ---------------------------------------------------


def test_duplicate_paths_are_listed_with_count(tmp_path, monkeypatch):
    monkeypatch.setattr(decoding, "decode", _never_decode)
    root = tmp_path / "data"
    rows = [["a.wav", "dog", "train"], ["sub/../a.wav", "cat", "val"], ["./a.wav", "dog", "test"]]
    rows += [[f"d{i}.wav", "dog", "train"] for i in range(12)] + [
        [f"d{i}.wav", "dog", "val"] for i in range(12)
    ]
    _write_manifest(root, rows)
    dm = AudioDataModule(source=ManifestSource(str(root)), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DataError, match="13 audio file\\(s\\) are listed more than once") as e:
        dm.setup("fit")
    message = str(e.value)
    assert "a.wav x3 (labels ['cat', 'dog'], folds ['test', 'train', 'val'])" in message
    assert "3 more not shown" in message


def test_paths_outside_the_root_are_refused_unless_allowed(tmp_path):
    root = tmp_path / "data"
    elsewhere = write_tone(tmp_path / "elsewhere" / "x.wav")
    _write_manifest(
        root, [["../../x.wav", "dog", "train"], [str(elsewhere), "dog", "train"], ["in.wav", "dog", "train"]]
    )
    with pytest.raises(DataError, match=r"2 path\(s\) lie outside the dataset root") as e:
        ManifestSource(str(root)).clips()
    assert "../../x.wav" in str(e.value) and str(elsewhere) in str(e.value) and "in.wav" not in str(e.value)
    assert len(ManifestSource(str(root), allow_outside_root=True).clips()) == 3
    (root / "metadata").mkdir()
    with (root / "metadata" / "UrbanSound8K.csv").open("w") as f:
        f.write("slice_file_name,fsID,fold,class\n../../../x.wav,1,1,dog\n")
    with pytest.raises(DataError, match="outside the dataset root"):
        UrbanSound8KSource(str(root)).clips()


def _missing_files_dm(tmp_path, rows, **kwargs):
    """A manifest whose audio files do not exist: any error but a metadata one means decoding started."""
    root = tmp_path / "data"
    _write_manifest(root, rows)
    return AudioDataModule(
        source=ManifestSource(str(root)), test_folds=None, cache_dir=str(tmp_path / "cache"), **kwargs
    )


@pytest.mark.parametrize(
    "rows, kwargs, match",
    [
        (
            [["d0.wav", "dog", "train"], ["c0.wav", "cow", "train"]],
            dict(classes=["dog", "cat"]),
            r"label 'cow' of .*c0\.wav is not in data\.classes",
        ),
        (
            [["d0.wav", "dog", "train"], ["c0.wav", "cat", "val"]],
            dict(classes=["dog", "cat"]),
            r"class\(es\) \['cat'\] have no training clips",
        ),
        (
            [["d0.wav", "dog", "train"]],
            dict(classes=["dog", "cat"]),
            r"class\(es\) \['cat'\] have no training clips",
        ),
        (
            [["d0.wav", "dog", "train"], ["c0.wav", "cat", "train"], ["c1.wav", "cat", "train"]],
            dict(class_ratio={"dog": 1, "cat": 100}),
            r"would get 0 clips",
        ),
    ],
)
def test_metadata_errors_come_before_any_decoding(tmp_path, monkeypatch, rows, kwargs, match):
    monkeypatch.setattr(decoding, "decode", _never_decode)
    dm = _missing_files_dm(tmp_path, rows, **kwargs)
    with pytest.raises(DataError, match=match):
        dm.setup("fit")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").glob("waves-*"))


def test_missing_files_are_all_listed_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(decoding, "decode", _never_decode)
    rows = [[f"{c}{i}.wav", c, "train"] for c in ("dog", "cat") for i in range(7)]
    dm = _missing_files_dm(tmp_path, rows)
    with pytest.raises(DataError, match=r"does not exist \(14 files missing: .*dog0\.wav.*\(\+4 more\)"):
        dm.setup("fit")


# ---- decoding ------------------------------------------------------------------------------


def _cut_wav(path, keep_fraction=0.5):
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep_fraction)])
    return path


def test_cut_wav_names_the_file_and_both_frame_counts(tmp_path):
    p = _cut_wav(write_tone(tmp_path / "cut.wav", sr=8000, seconds=1.0))
    assert sf.info(str(p)).frames < 8000  # libsndfile quietly reports what is left
    with pytest.raises(
        DataError, match=r"cut\.wav is truncated: its header declares 8000 frames but only 39\d\d"
    ):
        decode(str(p), 8000)


def test_cut_wav_is_a_counted_skip(tmp_path, caplog):
    clips = _clips(tmp_path, 2)
    cut = _cut_wav(write_tone(tmp_path / "cut.wav", seconds=1.0))
    clips.append(Clip(str(cut), "x"))
    with caplog.at_level(logging.WARNING):
        store = load_waveforms(clips, 8000, tmp_path / "cache", on_bad_file="skip")
    assert len(store) == 2 and store.skipped == [str(cut)]
    assert any("skipped 1 unreadable audio file(s)" in m and "cut.wav" in m for m in _warnings(caplog))


def test_silent_and_short_clips_are_listed_in_one_warning_per_setup(tmp_path, caplog):
    clips = _clips(tmp_path, 2)
    for i in range(12):
        sf.write(tmp_path / f"zero{i}.wav", np.zeros(4000), 8000)
        clips.append(Clip(str(tmp_path / f"zero{i}.wav"), "x"))
    clips.append(Clip(str(write_tone(tmp_path / "blip.wav", seconds=0.01)), "x"))
    for _ in range(2):  # built, then reused: the warning comes with every set-up
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            store = load_waveforms(clips, 8000, tmp_path / "cache", min_clip_seconds=0.05)
        (message,) = [m for m in _warnings(caplog) if "suspicious" in m]
        assert "12 clip(s) are all zeros" in message and "zero0.wav" in message and "(+2 more)" in message
        assert "1 clip(s) are shorter than min_clip_seconds=0.05" in message and "blip.wav" in message
        assert len(store) == 15 and len(store.silent) == 12 and store.short == [str(tmp_path / "blip.wav")]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        store = load_waveforms(clips, 8000, tmp_path / "cache", min_clip_seconds=0.0)
    assert store.short == [] and "shorter" not in caplog.text


def test_datamodule_passes_min_clip_seconds(tmp_path, caplog):
    root = tmp_path / "data"
    rows = [[f"{c}{i}.wav", c, s] for c in ("dog", "cat") for i, s in enumerate(["train", "val"])]
    for r in rows:
        write_tone(root / r[0], seconds=0.2)
    _write_manifest(root, rows)
    dm = AudioDataModule(
        source=ManifestSource(str(root)),
        test_folds=None,
        sample_rate=8000,
        duration=0.5,
        cache_dir=str(tmp_path / "cache"),
        min_clip_seconds=0.3,
    )
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert "4 clip(s) are shorter than min_clip_seconds=0.3" in caplog.text
    with pytest.raises(DataError, match="min_clip_seconds must be >= 0"):
        AudioDataModule(min_clip_seconds=-1)


# ---- file modes follow the umask -----------------------------------------------------------


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_outputs_get_the_umask_permissions(tmp_path, umask_022):
    with atomic_folder(tmp_path / "folder", "done") as tmp:
        (tmp / "done").write_text("x")
    with atomic_file(tmp_path / "result.json") as tmp:
        tmp.write_text("{}")
    assert _mode(tmp_path / "folder") == 0o755 and _mode(tmp_path / "folder" / "done") == 0o644
    assert _mode(tmp_path / "result.json") == 0o644
    load_waveforms(_clips(tmp_path, 2), 8000, tmp_path / "cache")
    folder = _cache_folder(tmp_path / "cache")
    assert _mode(folder) == 0o755
    assert {p.name: _mode(p) for p in folder.iterdir()} == {"index.json": 0o644, "shard-00000": 0o755}
    assert {p.name: _mode(p) for p in (folder / "shard-00000").iterdir()} == {
        "waves.npy": 0o644,
        "offsets.npy": 0o644,
        "meta.json": 0o644,
    }
    os.umask(0o077)  # a private umask is still honoured
    with atomic_file(tmp_path / "private.json") as tmp:
        tmp.write_text("{}")
    assert _mode(tmp_path / "private.json") == 0o600
