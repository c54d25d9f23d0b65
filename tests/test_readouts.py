"""Read-outs of the fine-tuned embedding: nearest centroid and kNN over centroids on hand-made centroids,
the head initialised from pretraining centroids, and the CLI journey pretrain -> fine-tune -> test."""

import math
from pathlib import Path

import pytest
import torch
import yaml
from helpers.configs import CONFIGS, model_configs, tiny_data, write_yaml
from helpers.data import tiny_datamodule
from helpers.models import tiny_parts, tiny_trainer
from lightning.pytorch import seed_everything
from omegaconf import OmegaConf

from clusterlight.callbacks import ClusterCentroids
from clusterlight.checkpoints import CheckpointError
from clusterlight.cli import main
from clusterlight.distances import normalize_embeddings
from clusterlight.experiment.configs import stage_hashes
from clusterlight.lightning_cli import ClusterlightCLI
from clusterlight.modules import EmbeddingPretrain, JointFinetune
from clusterlight.modules.readouts import (
    CentroidKNN,
    LinearHead,
    NearestCentroid,
    class_centroids,
    knn_centroid_scores,
    nearest_centroid_scores,
    pretrained_centroids,
)


def unit(*angles_deg: float) -> torch.Tensor:
    """Unit vectors in the plane at the given angles [N, 2]."""
    a = torch.tensor(angles_deg) * math.pi / 180
    return torch.stack([a.cos(), a.sin()], 1)


# four centroids in the plane: class 0 at 0 and 90 degrees, class 1 at 180, class 2 at 270; class 3 none
CENTROIDS, CLASSES = unit(0, 90, 180, 270), torch.tensor([0, 0, 1, 2])


def sq(a: float, b: float) -> float:
    """Squared distance between unit vectors at angles a and b (degrees): 2 - 2 cos."""
    return 2 - 2 * math.cos(math.radians(a - b))


def test_nearest_centroid_scores_are_minus_the_distance_to_each_class_nearest_centroid():
    z = unit(10, 200)
    scores = nearest_centroid_scores(z, CENTROIDS, CLASSES, 4)
    expected = torch.tensor(
        [
            [-sq(10, 0), -sq(10, 180), -sq(10, 270), -math.inf],
            [-sq(200, 90), -sq(200, 180), -sq(200, 270), -math.inf],
        ]
    )
    assert torch.allclose(scores, expected, atol=1e-5)
    assert scores.argmax(1).tolist() == [0, 1]


def test_knn_votes_weigh_one_over_the_distance_and_give_log_shares():
    z = unit(100)  # nearest: 90 (class 0), 180 (class 1), 0 (class 0); 270 is farthest
    w = {a: 1 / sq(100, a) for a in (90, 180, 0)}
    total = sum(w.values())
    scores = knn_centroid_scores(z, CENTROIDS, CLASSES, 4, k=3)
    shares = scores.exp()[0]
    assert shares.tolist() == pytest.approx([(w[90] + w[0]) / total, w[180] / total, 0.0, 0.0], abs=1e-6)
    assert scores[0, 2] == -math.inf and scores[0, 3] == -math.inf
    assert torch.allclose(torch.softmax(scores, 1), shares[None], atol=1e-6)  # softmax gives the shares


def test_knn_uniform_votes_k_one_and_k_beyond_the_centroids():
    z = unit(135 + 1, 10)  # between class 0's 90 and class 1's 180, slightly nearer 180
    uniform = knn_centroid_scores(z, CENTROIDS, CLASSES, 4, k=2, distance_weighted=False).exp()
    assert uniform[0].tolist() == pytest.approx([0.5, 0.5, 0, 0])
    one = knn_centroid_scores(z, CENTROIDS, CLASSES, 4, k=1)
    assert one.argmax(1).tolist() == nearest_centroid_scores(z, CENTROIDS, CLASSES, 4).argmax(1).tolist()
    everything = knn_centroid_scores(z, CENTROIDS, CLASSES, 4, k=10, distance_weighted=False).exp()
    assert everything[0].tolist() == pytest.approx([0.5, 0.25, 0.25, 0])  # all 4 centroids vote
    with pytest.raises(ValueError, match="CentroidKNN.k must be >= 1"):
        CentroidKNN(k=0)


def test_class_centroids_are_the_unit_mean_of_each_class_clusters():
    means = class_centroids(CENTROIDS, CLASSES, 3)
    assert torch.allclose(means, unit(45, 180, 270), atol=1e-6)
    with pytest.raises(ValueError, match=r"classes \[3\] have no cluster centroid"):
        class_centroids(CENTROIDS, CLASSES, 4)


def fake_pretraining_checkpoint(path: Path, model, centroids, classes, class_names=None) -> str:
    """A pretraining checkpoint as Lightning writes it: the weights, the ClusterCentroids state (centroids
    and cluster classes) and the DataModule's cluster assignments (and, when given, a model card's class
    names)."""
    checkpoint = {
        "state_dict": model.state_dict(),
        "callbacks": {"ClusterCentroids": {"centroids": centroids, "cluster_classes": classes}},
        "AudioDataModule": {"cluster_classes": classes, "assignments": torch.zeros(3, dtype=torch.long)},
    }
    if class_names is not None:
        checkpoint["clusterlight"] = {"class_names": class_names}
    torch.save(checkpoint, path)
    return str(path)


def test_pretraining_reads_out_by_nearest_centroid_once_there_are_centroids():
    centroids = ClusterCentroids()
    model = EmbeddingPretrain(*tiny_parts(embed_dim=2), list("abcd"), centroids=centroids)
    z = 3 * unit(10, 200)
    assert model.scores_from_features(z) is None  # no clusters yet: validation classifies nothing
    centroids.load_state_dict({"centroids": CENTROIDS, "cluster_classes": CLASSES})
    expected = nearest_centroid_scores(normalize_embeddings(z), CENTROIDS, CLASSES, 4)
    assert torch.equal(model.scores_from_features(z), expected)


def test_pretrained_centroids_reads_the_cluster_classes_from_the_centroid_state(tmp_path):
    """The ClusterCentroids state holds the centroids and the cluster classes (the DataModule's: not read)."""
    model = JointFinetune(*tiny_parts(), list("abc"))
    path = fake_pretraining_checkpoint(tmp_path / "p.ckpt", model, CENTROIDS, CLASSES, list("abc"))
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["AudioDataModule"]
    torch.save(checkpoint, path)
    centroids, classes, names = pretrained_centroids(path)
    assert torch.equal(centroids, CENTROIDS) and torch.equal(classes, CLASSES) and names == list("abc")
    del checkpoint["callbacks"]["ClusterCentroids"]["cluster_classes"]
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match="holds no usable cluster centroids"):
        pretrained_centroids(path)


def test_head_starts_from_the_class_centroids_over_the_temperature(tmp_path):
    names = ["a", "b", "c", "d"]
    source = JointFinetune(*tiny_parts(embed_dim=16), names)
    d = 16
    centroids = normalize_embeddings(torch.randn(6, d))
    classes = torch.tensor([0, 0, 1, 2, 3, 3])
    path = fake_pretraining_checkpoint(tmp_path / "p.ckpt", source, centroids, classes, names)

    model = JointFinetune(
        *tiny_parts(embed_dim=16),
        names,
        pretrained_checkpoint=path,
        head_init="centroids",
        head_temperature=0.5,
    )
    expected = torch.stack(
        [normalize_embeddings(centroids[classes == c].mean(0, keepdim=True))[0] for c in range(4)]
    )
    assert torch.allclose(model.head.weight, expected / 0.5, atol=1e-6)
    assert torch.equal(model.head.bias, torch.zeros(4))
    assert torch.equal(model.backbone.proj[1].weight, source.backbone.proj[1].weight)  # the weights too
    z = torch.randn(5, d)  # the head's argmax starts as the nearest class centroid by cosine
    assert model.head(z).argmax(1).tolist() == (normalize_embeddings(z) @ expected.T).argmax(1).tolist()

    random = JointFinetune(*tiny_parts(embed_dim=16), names, pretrained_checkpoint=path)
    assert not torch.allclose(random.head.weight, model.head.weight)


def test_head_init_refuses_what_it_cannot_use(tmp_path):
    names = ["a", "b", "c", "d"]
    source = JointFinetune(*tiny_parts(), names)
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": source.state_dict()}, plain)
    with pytest.raises(CheckpointError, match="plain.ckpt holds no usable cluster centroids"):
        JointFinetune(*tiny_parts(), names, pretrained_checkpoint=str(plain), head_init="centroids")
    other = fake_pretraining_checkpoint(
        tmp_path / "other.ckpt", source, torch.eye(16)[:4], torch.arange(4), ["w", "x", "y", "z"]
    )
    with pytest.raises(CheckpointError, match=r"trained on classes \['w', 'x', 'y', 'z'\]"):
        JointFinetune(*tiny_parts(), names, pretrained_checkpoint=other, head_init="centroids")
    with pytest.raises(ValueError, match="head_init must be one of"):
        JointFinetune(*tiny_parts(), names, head_init="zeros")
    with pytest.raises(ValueError, match="head_temperature must be > 0"):
        JointFinetune(*tiny_parts(), names, head_temperature=0.0)
    no_checkpoint = JointFinetune(*tiny_parts(), names, head_init="centroids")
    with pytest.raises(ValueError, match="head_init='centroids' needs a pretrained_checkpoint"):
        no_checkpoint.setup("fit")


def test_centroid_readout_scores_from_the_run_centroids_without_a_cluster_loss(synth_root, tmp_path):
    seed_everything(0)
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    model = JointFinetune(*tiny_parts(), dm.class_names, readout=NearestCentroid(), lr=3e-3)
    assert model.uses_centroids and not JointFinetune(*tiny_parts(), dm.class_names).uses_centroids
    trainer = tiny_trainer(tmp_path, max_epochs=1)
    trainer.fit(model, dm)
    tracker = next(c for c in trainer.callbacks if isinstance(c, ClusterCentroids))
    assert tracker.ready and "train/cluster_loss" not in trainer.callback_metrics  # centroids, no loss
    z = model.features(next(iter(dm.val_dataloader()))["wave"])
    expected = nearest_centroid_scores(normalize_embeddings(z), tracker.centroids, tracker.cluster_classes, 4)
    assert torch.equal(model.scores_from_features(z), expected)
    assert "val/macro_err" in trainer.callback_metrics
    assert isinstance(JointFinetune(*tiny_parts(), dm.class_names).readout, LinearHead)


READOUTS = {  # preset -> what the built module must have
    "nearest_centroid": lambda m: type(m.readout) is NearestCentroid,
    "knn": lambda m: type(m.readout) is CentroidKNN and m.readout.k == 3,
    "centroid_head": lambda m: type(m.readout) is LinearHead and m.head_init == "centroids",
}


@pytest.mark.slow
def test_cli_pretrain_then_finetune_with_each_readout_then_test(tmp_path):
    data = write_yaml(tmp_path, "d.yaml", tiny_data(tmp_path))
    small = [
        "--model.init_args.backbone.init_args.hidden", "16",
        "--model.init_args.frontend.init_args.sample_rate", "8000",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--config", data,
    ]  # fmt: skip
    cpu = ["--config", str(CONFIGS / "trainer/cpu.yaml")]
    pretrain = [
        *cpu,
        *model_configs("pretrain", "lstm"),
        *small,
        "--model.init_args.plot_embeddings",
        "false",
    ]
    main(["fit", *pretrain, "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path / "pre")])
    pretrained = str(next((tmp_path / "pre").rglob("best-*.ckpt")))
    for readout, check in READOUTS.items():
        args = [
            *cpu, *model_configs("finetune", "lstm"),
            "--config", str(CONFIGS / f"model/readout/{readout}.yaml"), *small,
            "--model.init_args.pretrained_checkpoint", pretrained,
            "--trainer.default_root_dir", str(tmp_path / readout),
        ]  # fmt: skip
        main(["fit", *args, "--trainer.max_epochs", "1"])
        cli = ClusterlightCLI(args=["test", *args, "--ckpt_path", "best"])
        assert check(cli.model), readout
        assert "test/macro_err" in cli.trainer.callback_metrics, readout
        tested = Path(cli.trainer.ckpt_path)
        assert tested.name.startswith("best-") and tmp_path / readout in tested.parents
        if cli.model.readout.uses_centroids:  # the fit's centroids, restored from the checkpoint
            tracker = next(c for c in cli.trainer.callbacks if isinstance(c, ClusterCentroids))
            saved = torch.load(tested, weights_only=True)["callbacks"]["ClusterCentroids"]["centroids"]
            assert torch.equal(tracker.centroids.cpu(), saved)


@pytest.mark.parametrize("net", ["lstm", "cnn"])
def test_rare4_readout_methods_compose_and_share_the_recipes_pretraining(tmp_path, net):
    """The read-out and weight-averaging methods of configs/experiment/rare4_{net}.yaml build (last stage,
    on tiny data), and the clustered ones pretrain exactly as ``clustered`` does, so the runner trains
    that stage once per seed (same stage hash)."""
    exp_file = CONFIGS / f"experiment/rare4_{net}.yaml"
    spec = yaml.safe_load(exp_file.read_text())
    expected = {
        "weighted_ce": ("Classifier", None, False),
        "weighted_ce_ema": ("Classifier", None, True),
        "clustered": ("JointFinetune", LinearHead, False),
        "clustered_ema": ("JointFinetune", LinearHead, True),
        "clustered_ncm": ("JointFinetune", NearestCentroid, False),
        "clustered_knn": ("JointFinetune", CentroidKNN, False),
        "clustered_centroid_head": ("JointFinetune", LinearHead, False),
    }
    assert set(expected) <= set(spec["methods"])
    data = write_yaml(tmp_path, "d.yaml", tiny_data(tmp_path))
    for method, (module, readout, ema) in expected.items():
        stage = spec["methods"][method]["stages"][-1]
        configs = [str(CONFIGS / "experiment" / f) for f in stage["configs"]]
        args = ["--config", str(CONFIGS / "trainer/cpu.yaml"), "--config", data]
        args += [a for f in configs for a in ("--config", f)]
        cli = ClusterlightCLI(args=args, run=False)
        assert type(cli.model).__name__ == module, method
        assert readout is None or type(cli.model.readout) is readout, method
        assert any(type(c).__name__ == "EMAWeights" for c in cli.trainer.callbacks) == ema, method
        assert (
            getattr(cli.model, "head_init", None) in (None, "random") or method == "clustered_centroid_head"
        )
    exp = OmegaConf.load(exp_file)
    pretraining = {
        m: stage_hashes(exp, exp.methods[m], 0, exp_file)[0] for m in expected if m.startswith("clustered")
    }
    assert len(set(pretraining.values())) == 1, pretraining
