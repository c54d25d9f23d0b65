"""Checkpoints written from the Python API (a plain ``lightning.Trainer``, no CLI) describe their module:
``Classifier.load_from_checkpoint`` / ``clusterlight.load`` rebuild it alone, with its outputs."""

import pytest
import torch
from helpers.data import tiny_datamodule
from helpers.models import tiny_parts, tiny_trainer
from jsonargparse import ArgumentParser
from torch import nn

import clusterlight
from clusterlight import ClusterCentroids, EmbeddingPretrain, JointFinetune
from clusterlight.checkpoints import CheckpointError
from clusterlight.distances import CosineDistance
from clusterlight.features import LogMel
from clusterlight.init_args import RecordsInitArgs, init_config, recorded_init_args
from clusterlight.losses import (
    ClassBalancedLoss,
    ClusterMarginLoss,
    ClusterSoftmaxLoss,
    CrossEntropy,
    FocalLoss,
    LDAMLoss,
    LogitAdjustedLoss,
    MeanOverClips,
    WeightedCrossEntropy,
)
from clusterlight.model_card import MissingAudioSetting, build_module, model_card
from clusterlight.modules import AudioModule, Classifier
from clusterlight.modules.readouts import CentroidKNN, NearestCentroid
from clusterlight.nets import Backbone

WAVES = torch.randn(5, 8000, generator=torch.Generator().manual_seed(0))


def fit_and_checkpoint(module, dm, root, epochs=1):
    """``Trainer.fit`` with Lightning's own ModelCheckpoint (no clusterlight CLI); the checkpoint."""
    trainer = tiny_trainer(root, max_epochs=epochs, enable_checkpointing=True, limit_train_batches=3)
    trainer.fit(module, dm)
    return next((root / "checkpoints").glob("*.ckpt"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def pretrained(synth_root, cache, tmp_path_factory):
    """A pretraining module trained from the Python API (2 epochs), its DataModule and checkpoint."""
    dm = tiny_datamodule(synth_root, cache)
    trained = EmbeddingPretrain(*tiny_parts(), dm.class_names, plot_embeddings=False)
    return trained, dm, fit_and_checkpoint(trained, dm, tmp_path_factory.mktemp("pre"), epochs=2)


@torch.no_grad()
def outputs(module) -> torch.Tensor:
    module.eval()
    return module.scores_from_features(module.features(WAVES))


def test_a_python_api_classifier_loads_with_load_from_checkpoint_and_clusterlight_load(
    synth_root, cache, tmp_path
):
    dm = tiny_datamodule(synth_root, cache)
    trained = Classifier(*tiny_parts(), dm.class_names, loss=FocalLoss(gamma=1.5), lr=2e-3)
    ckpt = fit_and_checkpoint(trained, dm, tmp_path)

    for loaded in (Classifier.load_from_checkpoint(ckpt), clusterlight.load(ckpt)):
        assert type(loaded) is Classifier and not loaded.training
        assert torch.equal(outputs(loaded), outputs(trained))
        assert loaded.loss.gamma == 1.5 and loaded.lr == 2e-3
        assert loaded.card["audio"] == {"sample_rate": 8000, "duration": 1.0, "padding": "loop"}
        assert loaded.card["class_names"] == dm.class_names
        thresholds = loaded.card["thresholds"]  # chosen on the validation split before the save
        assert set(thresholds) == {"dog_bark", "baby_cry", "gunshot"}
        assert all(0 < t <= 1 for t in thresholds.values())
    assert thresholds == pytest.approx(trained.val_thresholds)


def test_a_python_api_joint_finetune_loads_with_its_components(pretrained, tmp_path):
    _, dm, pre_ckpt = pretrained
    frontend = LogMel(
        sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=32, time_pool=4, freq_masks=1
    )
    trained = JointFinetune(
        frontend,
        tiny_parts()[1],
        dm.class_names,
        pretrained_checkpoint=str(pre_ckpt),
        cluster_loss_weight=0.5,
        cluster_loss=ClusterMarginLoss(margin_inter=0.8, margin_intra=0.1, distance=CosineDistance()),
        centroids=ClusterCentroids(momentum=0.7),
    )
    ckpt = fit_and_checkpoint(trained, dm, tmp_path / "fine")

    loaded = Classifier.load_from_checkpoint(ckpt, map_location="cpu")  # a JointFinetune is a Classifier
    assert type(loaded) is JointFinetune and torch.equal(outputs(loaded), outputs(trained))
    assert len(loaded.frontend.freq_masks) == 1  # SpecAugment settings travel with the front end
    assert (loaded.cluster_loss.margin_inter, loaded.cluster_loss.margin_intra) == (0.8, 0.1)
    assert isinstance(loaded.cluster_loss.distance, CosineDistance)
    assert loaded.centroid_callback.momentum == 0.7
    model_args = loaded.card["model"]["init_args"]
    assert model_args["pretrained_checkpoint"] is None  # the weights are in this checkpoint
    assert torch.equal(outputs(JointFinetune.load_from_checkpoint(ckpt)), outputs(trained))


def test_a_pretraining_checkpoint_classifies_by_nearest_centroid_and_is_no_classifier(pretrained):
    trained, dm, ckpt = pretrained

    loaded = EmbeddingPretrain.load_from_checkpoint(ckpt)
    assert torch.equal(outputs(loaded), outputs(trained))  # the checkpoint's centroids, no trainer
    assert torch.equal(loaded.centroid_callback.cluster_classes, dm.clusters.cluster_classes)
    assert type(clusterlight.load(ckpt)) is EmbeddingPretrain
    with pytest.raises(CheckpointError, match="is EmbeddingPretrain .*not a Classifier"):
        Classifier.load_from_checkpoint(ckpt)


def test_without_a_datamodule_the_duration_is_asked_for_at_predict_time(synth_root, cache, tmp_path):
    dm = tiny_datamodule(synth_root, cache)
    dm.setup("fit")
    trained = Classifier(*tiny_parts(), dm.class_names, loss=CrossEntropy())
    trainer = tiny_trainer(tmp_path, enable_checkpointing=True, limit_train_batches=2)
    trainer.fit(trained, dm.train_dataloader(), dm.val_dataloader())
    ckpt = next((tmp_path / "checkpoints").glob("*.ckpt"))
    loaded = clusterlight.load(ckpt)
    assert loaded.card["audio"] == {"sample_rate": 8000, "padding": None}  # the rate from the front end
    with pytest.raises(MissingAudioSetting, match="duration.*card\\['audio'\\]\\['duration'\\]"):
        clusterlight.inference.predict_files(loaded, [next(synth_root.rglob("*.wav"))])
    loaded.card["audio"]["duration"] = 1.0
    assert len(clusterlight.inference.predict_files(loaded, [next(synth_root.rglob("*.wav"))])) == 1


def test_a_module_that_cannot_describe_itself_warns_and_its_checkpoint_says_so(synth_root, cache, tmp_path):
    class LocalNet(Backbone):  # defined in a function: no config can import it
        def __init__(self, n_mels: int = 32) -> None:
            super().__init__(n_mels, 8)
            self.proj = nn.Linear(n_mels, 8)

        def forward(self, x):
            return self.proj(x.mean(2))

    dm = tiny_datamodule(synth_root, cache)
    module = Classifier(tiny_parts()[0], LocalNet(), dm.class_names)
    with pytest.warns(UserWarning, match="carry no model card.*model.backbone: .*LocalNet"):
        ckpt = fit_and_checkpoint(module, dm, tmp_path)
    with pytest.raises(CheckpointError, match="has no model card"):
        Classifier.load_from_checkpoint(ckpt)


def test_load_from_checkpoint_refuses_overrides_and_old_checkpoints(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "old.ckpt")
    with pytest.raises(CheckpointError, match="old.ckpt has no model card"):
        Classifier.load_from_checkpoint(tmp_path / "old.ckpt")
    with pytest.raises(TypeError, match=r"takes no \['lr'\]"):
        Classifier.load_from_checkpoint(tmp_path / "old.ckpt", lr=0.1)


class SharpFocalLoss(FocalLoss):
    """Keeps its argument under another name (``gamma``): described by what it was given."""

    def __init__(self, sharpness: float = 2.0) -> None:
        super().__init__(gamma=sharpness)


@pytest.mark.parametrize(
    "component, given",
    [
        (CrossEntropy(), {}),
        (WeightedCrossEntropy(), {}),
        (FocalLoss(gamma=1.5), {"gamma": 1.5}),
        (ClassBalancedLoss(beta=0.99, gamma=1.0), {"beta": 0.99, "gamma": 1.0}),
        (LDAMLoss(max_margin=0.3, drw_epoch=3), {"max_margin": 0.3, "drw_epoch": 3}),
        (LogitAdjustedLoss(tau=0.5), {"tau": 0.5}),
        (
            ClusterMarginLoss(margin_inter=0.7, distance=CosineDistance(), reducer=MeanOverClips()),
            {
                "margin_inter": 0.7,
                "distance": {"class_path": "clusterlight.distances.CosineDistance", "init_args": {}},
                "reducer": {"class_path": "clusterlight.losses.reduction.MeanOverClips", "init_args": {}},
            },
        ),
        (ClusterSoftmaxLoss(temperature=0.3, exclude_siblings=False), {"exclude_siblings": False}),
        (SharpFocalLoss(sharpness=3.0), {"sharpness": 3.0}),
        (MeanOverClips(), {}),
        (NearestCentroid(), {}),
        (CentroidKNN(k=5, distance_weighted=False), {"k": 5, "distance_weighted": False}),
        (
            ClusterCentroids(momentum=0.5, embedding_source="bank"),
            {"momentum": 0.5, "embedding_source": "bank"},
        ),
        (LogMel(sample_rate=8000, freq_masks=2, time_mask_width=5), {"freq_masks": 2, "time_mask_width": 5}),
        (tiny_parts()[1], {"hidden": 32, "layers": 1, "embed_dim": 16}),
    ],
    ids=lambda c: type(c).__name__ if not isinstance(c, dict) else "",
)
def test_every_component_is_described_by_a_config_that_builds_it_again(component, given):
    """Components are described by their recorded arguments (the distances, which record none, by
    their attributes); either way the description holds what was given, and jsonargparse (as
    LightningCLI) builds an equal component from it."""
    config = init_config(component)
    assert config["init_args"].items() >= given.items()
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments((nn.Module, ClusterCentroids), "c")
    rebuilt = parser.instantiate_classes(parser.parse_object({"c": config})).c
    assert type(rebuilt) is type(component) and init_config(rebuilt) == config


class RecordedLinear(RecordsInitArgs, nn.Linear):
    """A recording class whose ``__init__`` is its non-recording base's."""


def test_a_recording_class_without_its_own_init_records_through_the_inherited_one():
    assert recorded_init_args(MeanOverClips()) == {}  # Reducer's __init__ is nn.Module's
    recorded = recorded_init_args(RecordedLinear(3, 2, bias=False))
    assert recorded.items() >= {"in_features": 3, "out_features": 2, "bias": False}.items()


class ForwardingClassifier(Classifier):
    """A subclass in the common Lightning style: its own argument, the rest forwarded."""

    def __init__(self, *args, values=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.values = list(values)


def test_a_subclass_forwarding_args_and_kwargs_is_described_with_its_parents_arguments():
    frontend, backbone = tiny_parts()
    module = ForwardingClassifier(frontend, backbone, ["a", "b"], values=[0.5], lr=0.1)
    config = init_config(module)
    assert config["class_path"] == "test_checkpoint_cards.ForwardingClassifier"
    assert {k: config["init_args"][k] for k in ("class_names", "values", "lr")} == {
        "class_names": ["a", "b"],
        "values": [0.5],
        "lr": 0.1,
    }
    rebuilt = build_module(model_card(config, ["a", "b"], {}), AudioModule, "test")
    assert type(rebuilt) is ForwardingClassifier and rebuilt.values == [0.5] and rebuilt.lr == 0.1
    assert init_config(rebuilt) == config
