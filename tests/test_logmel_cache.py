"""The log-mel feature cache: the windows it serves, its key, its checks, and training from it."""

import logging

import numpy as np
import pytest
import torch
from helpers.cli import clusterlight
from helpers.configs import tiny_classifier_args
from helpers.data import ragged_datamodule, tiny_datamodule
from helpers.models import tiny_parts, tiny_trainer

from clusterlight import EmbeddingPretrain
from clusterlight.data import BackgroundMix, audio, logmel_cache
from clusterlight.data.cropping import crop_offset, fit_length
from clusterlight.data.logmel_cache import window_start
from clusterlight.data.records import DataError
from clusterlight.features import LogMel


def _with_cache(dm, frontend=None):
    dm.frontend = frontend or tiny_parts()[0]
    dm.setup("fit")
    return dm


def _reference(dm, ds, i, offset):
    """The log-mel the waveform path gives item ``i`` of ``ds`` cut at ``offset``."""
    wave = fit_length(dm.store.wave(int(ds.rows[i])), ds.n_samples, dm.padding, offset)
    return dm.frontend.logmel(torch.from_numpy(wave))


def test_clips_as_long_as_the_window_get_exactly_the_waveform_paths_log_mel(synth_root, tmp_path):
    dm = _with_cache(tiny_datamodule(synth_root, tmp_path / "cache", feature_cache=True))
    assert (dm.store.lengths() == 8000).all()  # 1 s clips, 1 s windows
    for split in ("train", "val"):
        ds = dm.datasets[split]
        for i in range(len(ds)):
            item = ds[i]
            assert "wave" not in item and item["logmel"].shape == (32, 101)
            torch.testing.assert_close(item["logmel"], _reference(dm, ds, i, 0), rtol=0, atol=1e-5)


@pytest.mark.parametrize("padding", ["loop", "zero"])
def test_shorter_and_longer_clips_match_but_for_the_edge_frames(tmp_path, padding):
    """Clips of 0.3-1.7 s (multiples of the 80-sample hop) in 1 s windows, evaluation and random training
    crops: the cache serves the waveform path's window at the drawn offset rounded to the hop, and all
    frames whose STFT stays inside the cut (all but n_fft / 2 = 128 samples = 2 frames per edge) agree."""
    dm = ragged_datamodule(tmp_path / "audio", tmp_path / "cache", padding=padding, feature_cache=True)
    dm = _with_cache(dm)
    hop, n = 80, dm.datasets["train"].n_samples
    for split in ("train", "val"):
        ds = dm.datasets[split]
        for i in range(len(ds)):
            m = dm.store.length(int(ds.rows[i]))
            torch.manual_seed(i)
            item = ds[i]
            torch.manual_seed(i)  # the draw the dataset made
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()))) if split == "train" else None
            offset = crop_offset(m, n, padding, rng)
            snapped = hop * ((window_start(m, n, padding, offset) + hop // 2) // hop)
            same = snapped if m >= n else snapped % m if padding == "loop" else (n - m) - snapped
            gap = (
                abs(same - offset)
                if m >= n or padding == "zero"
                else min((same - offset) % m, (offset - same) % m)
            )
            assert gap <= hop // 2, (m, offset, same)  # the drawn crop, up to the rounding
            ref = _reference(dm, ds, i, same)
            assert item["logmel"].shape == ref.shape
            torch.testing.assert_close(item["logmel"][:, 2:-2], ref[:, 2:-2], rtol=0, atol=1e-4)


def test_the_cache_is_reused_and_keyed_by_the_front_end(synth_root, tmp_path, caplog):
    cache = tmp_path / "cache"
    first = _with_cache(tiny_datamodule(synth_root, cache, feature_cache=True))
    folders = sorted(cache.glob("logmel-*"))
    assert len(folders) == 1
    frames = folders[0] / "shard-00000" / "logmel.npy"
    stamp = frames.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="clusterlight.data.logmel_cache"):
        again = _with_cache(tiny_datamodule(synth_root, cache, feature_cache=True))
    assert "computing the log-mel" not in caplog.text and frames.stat().st_mtime_ns == stamp
    assert np.array_equal(again.datasets["val"][0]["logmel"], first.datasets["val"][0]["logmel"])
    pooled_more = LogMel(sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=32, time_pool=8)
    _with_cache(tiny_datamodule(synth_root, cache, feature_cache=True), pooled_more)
    assert len(list(cache.glob("logmel-*"))) == 1, "pooling runs after the cache: same features"
    other = LogMel(sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=24, f_max=3000.0)
    _with_cache(tiny_datamodule(synth_root, cache, feature_cache=True), other)
    _with_cache(tiny_datamodule(synth_root, cache, feature_cache=True, duration=0.5))
    assert len(list(cache.glob("logmel-*"))) == 3, "other mel bands or window length: another cache"


def test_prepare_data_builds_the_caches_and_the_other_ranks_only_open_them(synth_root, tmp_path, monkeypatch):
    """Lightning calls ``prepare_data`` on one process per node before ``setup`` on every process (DDP):
    the waveform and log-mel caches are built there, once; ``setup`` opens them."""
    cache = tmp_path / "cache"
    first = tiny_datamodule(synth_root, cache, feature_cache=True)
    first.frontend = tiny_parts()[0]
    first.prepare_data()
    assert len(list(cache.glob("waves-*"))) == 1 and len(list(cache.glob("logmel-*/index.json"))) == 1
    store, logmel = first.store, first.logmel
    first.setup("fit")
    assert first.store is store and first.logmel is logmel, "setup opened them again in the same process"

    def build(*args, **kwargs):
        raise AssertionError("a cache prepare_data had built was built again")

    monkeypatch.setattr(audio.WaveformCache, "build", build)
    monkeypatch.setattr(logmel_cache.LogMelCache, "build", build)
    other_rank = _with_cache(tiny_datamodule(synth_root, cache, feature_cache=True))
    assert np.array_equal(other_rank.datasets["val"][0]["logmel"], first.datasets["val"][0]["logmel"])


@pytest.mark.parametrize("damage", ["truncate", "garbage", "meta"])
def test_a_damaged_cache_is_named_and_rebuilt(synth_root, tmp_path, caplog, damage):
    cache = tmp_path / "cache"
    good = _with_cache(tiny_datamodule(synth_root, cache, feature_cache=True)).datasets["val"][0]["logmel"]
    folder = next(cache.glob("logmel-*"))
    frames = folder / "shard-00000" / "logmel.npy"
    if damage == "truncate":
        frames.write_bytes(frames.read_bytes()[:-64])
    elif damage == "garbage":  # same size: only the full check sees it
        data = bytearray(frames.read_bytes())
        data[-4000:] = np.full(1000, np.nan, dtype=np.float32).tobytes()
        frames.write_bytes(bytes(data))
    else:
        (folder / "index.json").write_text("{")
    verify = "full" if damage == "garbage" else "size"
    with caplog.at_level(logging.WARNING, logger="clusterlight.data.logmel_cache"):
        dm = _with_cache(tiny_datamodule(synth_root, cache, feature_cache=True, verify_cache=verify))
    unusable = f"{folder} is unusable" if damage == "meta" else f"{folder}: shard-00000 is unusable"
    assert f"log-mel feature cache {unusable}" in caplog.text
    assert np.array_equal(dm.datasets["val"][0]["logmel"], good)
    assert [p.name for p in cache.iterdir() if p.name.startswith(("logmel", ".old", ".tmp"))] == [folder.name]


def test_waveform_augmentations_keep_the_waveform_path(synth_root, tmp_path):
    with pytest.warns(UserWarning, match="data.mixing .BackgroundMix. mixes waveforms"):
        dm = _with_cache(
            tiny_datamodule(synth_root, tmp_path / "a", feature_cache=True, mixing=BackgroundMix())
        )
    assert dm.logmel is None and "wave" in dm.datasets["train"][0]
    with pytest.warns(UserWarning, match="padding 'noise'"):
        dm = _with_cache(tiny_datamodule(synth_root, tmp_path / "b", feature_cache=True, padding="noise"))
    assert "wave" in dm.datasets["train"][0]


def test_feature_cache_settings_that_cannot_work_are_refused(synth_root, tmp_path):
    with pytest.raises(DataError, match="feature_cache and data.waveforms_on_device"):
        tiny_datamodule(synth_root, tmp_path, feature_cache=True, waveforms_on_device=True)
    with pytest.raises(DataError, match="needs the model's front end"):
        tiny_datamodule(synth_root, tmp_path, feature_cache=True).setup("fit")
    wrong_rate = LogMel(sample_rate=16000, n_mels=32)
    with pytest.raises(
        DataError, match=r"data.sample_rate \(8000\) and model.frontend.sample_rate \(16000\)"
    ):
        _with_cache(tiny_datamodule(synth_root, tmp_path, feature_cache=True), wrong_rate)
    with pytest.raises(ValueError, match="log-mel input has 24 mel bands, the front end 32"):
        tiny_parts()[0](torch.zeros(2, 24, 101))


def test_cluster_pretraining_from_the_cache_equals_the_waveform_path(synth_root, tmp_path):
    """Same seed, same crops: the cached and computed log-mel train the same model (1 s clips), with
    the re-clustering pass reading the cache too."""
    weights = {}
    for cached in (False, True):
        torch.manual_seed(0)
        dm = tiny_datamodule(synth_root, tmp_path / "cache", feature_cache=cached)
        frontend, backbone = tiny_parts()
        model = EmbeddingPretrain(frontend, backbone, dm.class_names, plot_embeddings=False)
        tiny_trainer(tmp_path, max_epochs=2).fit(model, dm)  # the module hands its front end in
        assert (dm.logmel is not None) == cached
        assert dm.frontend is frontend, "the module did not hand the DataModule its front end"
        weights[cached] = model.state_dict()
    for name, value in weights[False].items():
        torch.testing.assert_close(weights[True][name], value, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.slow
def test_cli_fit_and_test_with_the_feature_cache(tmp_path):
    """The user's journey: the shipped configs with ``--data.feature_cache true``."""
    args = [*tiny_classifier_args(tmp_path), "--data.init_args.feature_cache", "true"]
    fit = clusterlight(["fit", *args, "--trainer.max_epochs", "1"])
    assert "| **macro** |" in fit.stdout
    assert len(list((tmp_path / "cache").glob("logmel-*"))) == 1
    test = clusterlight(["test", *args, "--ckpt_path", "best"])
    assert "test/macro_err" in test.stdout


def test_a_datamodule_set_up_again_for_another_front_end_serves_its_log_mel(synth_root, tmp_path):
    """One DataModule, two models (as the quickstart notebook does): the second front end's settings get
    their own cache, never the first model's frames."""
    dm = _with_cache(tiny_datamodule(synth_root, tmp_path / "cache", feature_cache=True))
    assert dm.datasets["val"][0]["logmel"].shape == (32, 101)
    coarser = LogMel(sample_rate=8000, n_fft=256, win_length=200, hop_length=160, n_mels=32, f_max=2000.0)
    _with_cache(dm, coarser)
    item = dm.datasets["val"][0]
    assert item["logmel"].shape == (32, 51) and len(list((tmp_path / "cache").glob("logmel-*"))) == 2
    torch.testing.assert_close(item["logmel"], _reference(dm, dm.datasets["val"], 0, 0), rtol=0, atol=1e-5)


@pytest.mark.parametrize("padding", ["loop", "zero"])
def test_clip_lengths_off_the_hop_are_cut_within_a_frame(tmp_path, padding):
    """Clips whose lengths are not multiples of the hop: every crop the rule can draw (each offset) is served
    from a frame less than a hop from it, inside the clip's frames, and the window's inner frames are the
    waveform path's at that frame's offset."""
    import soundfile as sf

    from clusterlight.data import AudioDataModule, FolderSource

    rng = np.random.default_rng(1)
    for k, n in enumerate((1234, 5130, 8001, 9999, 24150)):
        path = tmp_path / "audio" / ("a" if k % 2 else "b") / f"{k}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, rng.uniform(-0.5, 0.5, n).astype(np.float32), 8000, subtype="FLOAT")
    dm = AudioDataModule(
        source=FolderSource(str(tmp_path / "audio")),
        sample_rate=8000,
        duration=1.0,
        padding=padding,
        val_fraction=0.0,
        test_fraction=0.0,
        cache_dir=str(tmp_path / "cache"),
        feature_cache=True,
    )
    dm = _with_cache(dm)
    store, hop, n = dm.logmel, 80, 8000
    for row in range(len(dm.store)):
        m = dm.store.length(row)
        for offset in range(0, (m if m < n and padding == "loop" else abs(m - n) + 1), 37):
            p = window_start(m, n, padding, offset)
            f = store.first_frame(row, offset)
            assert abs(f * hop - p) < hop and 0 <= f <= store.offsets[row + 1] - store.offsets[row] - 101
            same = f * hop if m >= n else (f * hop) % m if padding == "loop" else (n - m) - f * hop
            wave = fit_length(dm.store.wave(row), n, padding, same)
            ref = dm.frontend.logmel(torch.from_numpy(wave))
            got = torch.from_numpy(store.window(row, offset))
            torch.testing.assert_close(got[:, 2:-2], ref[:, 2:-2], rtol=0, atol=1e-4)
