"""The fast paths give the same answers as the straightforward ones."""
import numpy as np
import torch
from torch import nn

from clusterlight import ClusterCentroids, EmbeddingPretrain
from clusterlight.data.audio import decode, fit_length

from conftest import tiny_datamodule, tiny_parts, tiny_trainer


class MeanPoolEmbedder(nn.Module):
    """A backbone without batch norm or dropout: the same output in train and eval mode."""

    embed_dim = 16

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(32, 16)

    def forward(self, x):
        return self.proj(x.mean(2))


def _rebuild_inputs(synth_root, tmp_path, source):
    torch.manual_seed(0)
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    seen = {}
    original = dm.rebuild_clusters

    def spy(embeddings, init, epoch):
        seen[epoch] = embeddings.clone()
        return original(embeddings, init, epoch)

    dm.rebuild_clusters = spy
    frontend, _ = tiny_parts()
    model = EmbeddingPretrain(frontend, MeanPoolEmbedder(), dm.class_names, lr=0.0, weight_decay=0.0, plot_embeddings=False)
    tiny_trainer(tmp_path, max_epochs=3, callbacks=[ClusterCentroids(embedding_source=source)]).fit(model, dm)
    return seen, dm


def test_memory_bank_and_exact_pass_give_the_same_clusters(synth_root, tmp_path):
    exact, dm_exact = _rebuild_inputs(synth_root, tmp_path / "a", "exact")
    bank, dm_bank = _rebuild_inputs(synth_root, tmp_path / "b", "bank")
    assert sorted(exact) == sorted(bank) == [0, 1, 2]
    for epoch in (1, 2):
        assert torch.allclose(exact[epoch], bank[epoch], atol=1e-5)
    assert torch.equal(dm_exact.assignments, dm_bank.assignments)


def test_cached_and_uncached_inputs_give_identical_batches(synth_root, tmp_path):
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    dm.setup("fit")
    ds = dm.datasets["val"]
    for i in range(len(ds)):
        clip = dm.store.clips[int(ds.rows[i])]
        direct = fit_length(decode(clip.path, dm.sample_rate), ds.n_samples, dm.padding, 0)
        assert np.array_equal(ds[i]["wave"].numpy(), direct), clip.path
