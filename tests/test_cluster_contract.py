"""The contract between the DataModule's cluster state and the centroid callback, and where settings go."""

import pytest
import torch
from helpers.data import tiny_datamodule
from helpers.models import tiny_parts, tiny_trainer
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, TensorDataset

from clusterlight import ClusterCentroids, EmbeddingPretrain, JointFinetune, LogMel
from clusterlight.clusters import ClusterAssignments
from clusterlight.losses import ClusterMarginLoss
from clusterlight.modules.readouts import NearestCentroid
from clusterlight.nets import LSTMEmbedder


def test_assignments_schedule_lookup_and_state():
    clusters = ClusterAssignments(cluster_size=2, every_n_epochs=2, seed=3)
    assert clusters.due(0) and not clusters.built
    z = torch.nn.functional.normalize(torch.randn(10, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    with pytest.raises(RuntimeError, match="before set_training_clips"):
        clusters.rebuild(z, None, epoch=0)
    clusters.set_training_clips(labels, ["a", "b"])
    centroids, stats = clusters.rebuild(z, None, epoch=0)
    assert centroids.shape == (1 + 4, 4) and stats["clusters"] == 5.0 and stats["changed"] == -1.0
    assert clusters.cluster_classes.tolist() == [0, 1, 1, 1, 1]
    assert not clusters.due(1) and clusters.due(2)
    assert torch.equal(clusters.lookup(torch.tensor([0, 9])), clusters.assignments[[0, 9]])
    again = ClusterAssignments(cluster_size=2, every_n_epochs=2, seed=3)
    again.load_state_dict(clusters.state_dict())
    assert torch.equal(again.assignments, clusters.assignments) and again.last_rebuild_epoch == 0
    again.set_training_clips(labels, ["a", "b"])
    same, _ = again.rebuild(z, centroids, epoch=2)  # warm start from the centroids
    assert again.last_rebuild_epoch == 2 and same.shape == centroids.shape
    with pytest.raises(ValueError, match="cluster_every_n_epochs must be >= 1"):
        ClusterAssignments(every_n_epochs=0)


class PlainData(LightningDataModule):
    """A DataModule without the cluster contract."""

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(4, 8000)), batch_size=2)


def test_callback_names_what_a_datamodule_lacks(tmp_path):
    model = EmbeddingPretrain(*tiny_parts(), ["a", "b"], plot_embeddings=False)
    lacks = r"PlainData lacks \['clusters', 'embedding_dataloader', 'load_inputs'\]"
    with pytest.raises(TypeError, match=lacks):
        tiny_trainer(tmp_path).fit(model, PlainData())


def test_centroid_settings_in_trainer_callbacks_are_refused_naming_the_module_argument(synth_root, tmp_path):
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    model = EmbeddingPretrain(
        *tiny_parts(), dm.class_names, centroids=ClusterCentroids(momentum=0.5), plot_embeddings=False
    )
    with pytest.raises(
        ValueError,
        match=r"trainer.callbacks \(momentum 0.8.*its centroids argument \(model.init_args.centroids\)",
    ):
        tiny_trainer(tmp_path, callbacks=[ClusterCentroids(momentum=0.8)]).fit(model, dm)


def test_module_centroid_settings_reach_the_callback(synth_root, tmp_path):
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    tracker = ClusterCentroids(momentum=0.5, embedding_source="bank")
    model = JointFinetune(
        *tiny_parts(),
        dm.class_names,
        cluster_loss_weight=1.0,
        cluster_loss=ClusterMarginLoss(),
        centroids=tracker,
    )
    trainer = tiny_trainer(tmp_path, max_epochs=2)
    trainer.fit(model, dm)
    found = [c for c in trainer.callbacks if isinstance(c, ClusterCentroids)]
    assert found == [tracker] and tracker.ready and tracker.bank is not None
    assert model.centroid_callback is tracker
    trainer.test(model, dm)  # a second attach of the module's own callback is no trainer.callbacks one
    again = JointFinetune(*tiny_parts(), dm.class_names, readout=NearestCentroid())
    trainer.test(again, dm)  # another module on the same trainer: its callback replaces the first's
    found = [c for c in trainer.callbacks if isinstance(c, ClusterCentroids)]
    assert found == [again.centroid_callback]


def test_audio_settings_given_twice_must_agree(synth_root, tmp_path):
    dm = tiny_datamodule(synth_root, tmp_path / "cache")  # 8 kHz
    frontend = LogMel(sample_rate=16000, n_mels=32)
    model = EmbeddingPretrain(frontend, LSTMEmbedder(n_mels=32, hidden=8, layers=1), dm.class_names)
    with pytest.raises(
        ValueError, match=r"data.sample_rate \(8000\) and model.frontend.sample_rate \(16000\)"
    ):
        tiny_trainer(tmp_path).fit(model, dm)
    with pytest.raises(
        ValueError, match=r"model.backbone.n_mels \(64\) must equal model.frontend.n_mels \(32\)"
    ):
        EmbeddingPretrain(frontend, LSTMEmbedder(n_mels=64), ["a", "b"])
