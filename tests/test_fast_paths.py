"""The fast paths give the same answers as the straightforward ones."""

import sys

import numpy as np
import pytest
import torch
from helpers.data import ragged_datamodule, tiny_datamodule
from helpers.models import MeanPoolEmbedder, tiny_parts, tiny_trainer

from clusterlight import ClusterCentroids, EmbeddingPretrain
from clusterlight.data.cropping import fit_length
from clusterlight.data.decode import decode
from clusterlight.data.records import DataError


def _rebuild_inputs(synth_root, tmp_path, source):
    torch.manual_seed(0)
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    seen = {}
    original = dm.clusters.rebuild

    def spy(embeddings, init, epoch):
        seen[epoch] = embeddings.clone()
        return original(embeddings, init, epoch)

    dm.clusters.rebuild = spy
    frontend, _ = tiny_parts()
    model = EmbeddingPretrain(
        frontend,
        MeanPoolEmbedder(),
        dm.class_names,
        centroids=ClusterCentroids(embedding_source=source),
        lr=0.0,
        weight_decay=0.0,
        plot_embeddings=False,
    )
    tiny_trainer(tmp_path, max_epochs=3).fit(model, dm)
    return seen, dm


def test_memory_bank_and_exact_pass_give_the_same_clusters(synth_root, tmp_path):
    exact, dm_exact = _rebuild_inputs(synth_root, tmp_path / "a", "exact")
    bank, dm_bank = _rebuild_inputs(synth_root, tmp_path / "b", "bank")
    assert sorted(exact) == sorted(bank) == [0, 1, 2]
    for epoch in (1, 2):
        assert torch.allclose(exact[epoch], bank[epoch], atol=1e-5)
    assert torch.equal(dm_exact.clusters.assignments, dm_bank.clusters.assignments)


def test_cached_and_uncached_inputs_give_identical_batches(synth_root, tmp_path):
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    dm.setup("fit")
    ds = dm.datasets["val"]
    for i in range(len(ds)):
        clip = dm.store.clips[int(ds.rows[i])]
        direct = fit_length(decode(clip.path, dm.sample_rate), ds.n_samples, dm.padding, 0)
        assert np.array_equal(ds[i]["wave"].numpy(), direct), clip.path


@pytest.mark.parametrize("padding", ["loop", "zero"])
def test_resident_waveforms_give_identical_batches(tmp_path, padding):
    host = ragged_datamodule(tmp_path / "audio", tmp_path / "cache", padding=padding)
    resident = ragged_datamodule(
        tmp_path / "audio", tmp_path / "cache", padding=padding, waveforms_on_device=True
    )
    for dm in (host, resident):
        dm.setup("fit")
    assert "wave" not in resident.datasets["train"][0] and "row" in resident.datasets["train"][0]
    for split in ("train", "val"):
        ds_host, ds_res = host.datasets[split], resident.datasets[split]
        for i in range(len(ds_host)):
            torch.manual_seed(i)  # the same random crop on both paths
            expected = ds_host[i]["wave"]
            torch.manual_seed(i)
            item = ds_res[i]
            batch = {k: torch.tensor([v]) for k, v in item.items()}
            got = resident.load_inputs(batch, torch.device("cpu"))[0]
            assert torch.equal(got, expected), (split, i, padding)


def test_resident_waveforms_train_end_to_end(tmp_path):
    dm = ragged_datamodule(tmp_path / "audio", tmp_path / "cache", waveforms_on_device=True)
    frontend, _ = tiny_parts()
    model = EmbeddingPretrain(frontend, MeanPoolEmbedder(), ["a", "b"], plot_embeddings=False)
    tiny_trainer(tmp_path, max_epochs=2).fit(model, dm)
    assert dm.resident is not None and dm.resident.nbytes == 4 * int(dm.store.offsets[-1])
    assert model.centroid_callback.centroids.shape[0] == int(dm.clusters.assignments.max()) + 1


def test_resident_waveforms_reject_noise_padding(tmp_path):
    with pytest.raises(DataError, match="waveforms_on_device supports padding"):
        ragged_datamodule(tmp_path / "audio", tmp_path / "cache", padding="noise", waveforms_on_device=True)


@pytest.mark.slow
def test_compiled_backbone_gives_the_eager_outputs_and_keeps_checkpoint_names(tmp_path):
    from clusterlight import Classifier, CompileModel

    torch.manual_seed(0)
    frontend, _ = tiny_parts()
    model = Classifier(frontend, MeanPoolEmbedder(), ["a", "b"]).eval()
    wave = torch.randn(4, 8000)
    eager, names = model.features(wave), list(model.state_dict())
    CompileModel().setup(None, model, "fit")
    assert model.backbone._compiled_call_impl is not None and model.frontend._compiled_call_impl is None
    assert torch.allclose(model.features(wave), eager, atol=1e-5)
    assert list(model.state_dict()) == names


def test_a_long_exact_embedding_pass_shows_its_progress(synth_root, tmp_path, monkeypatch, capsys):
    from clusterlight.callbacks import centroids

    monkeypatch.setattr(centroids, "PROGRESS_MIN_BATCHES", 1)  # the tiny pass counts as long
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    monkeypatch.setenv("CLUSTERLIGHT_PROGRESS_EVERY", "0")  # a line per batch, however fast
    _rebuild_inputs(synth_root, tmp_path, "exact")
    lines = [x for x in capsys.readouterr().err.splitlines() if "embedding the training clips" in x]
    assert lines and all(x.startswith("[clusterlight] embedding the training clips: ") for x in lines)
    assert "batches (100%)" in lines[-1]
