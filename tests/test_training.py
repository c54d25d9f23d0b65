"""End-to-end training on tiny synthetic data: baseline, pretraining, fine-tuning, resume."""

import pytest
import torch
from helpers.data import tiny_datamodule
from helpers.models import tiny_parts, tiny_trainer

from clusterlight import ClusterCentroids, EmbeddingPretrain, JointFinetune
from clusterlight.losses import ClusterMarginLoss
from clusterlight.modules import Classifier
from clusterlight.nets import CNNEmbedder


def test_baseline_beats_chance(synth_root, tmp_path):
    torch.manual_seed(0)
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    model = Classifier(*tiny_parts(), dm.class_names, lr=3e-3)
    trainer = tiny_trainer(tmp_path, max_epochs=12)
    trainer.fit(model, dm)
    trainer.test(model, dm, verbose=False)
    err = model.results["test"]["metrics"]["macro_err"]
    assert err < 0.5, f"macro error {err} not clearly below chance (0.75)"
    assert torch.allclose(model.loss.class_counts, torch.tensor([24.0, 24, 24, 48]))


def test_cluster_ids_travel_with_training_batches(synth_root, tmp_path):
    dm = tiny_datamodule(
        synth_root,
        tmp_path / "cache",
        class_ratio={"dog_bark": 6, "baby_cry": 1, "gunshot": 2, "background": 8},
    )
    seen = {}

    class Probe(EmbeddingPretrain):
        def training_step(self, batch, batch_idx):
            expected = self.trainer.datamodule.clusters.assignments[batch["index"]]
            seen.setdefault("ok", []).append(bool(torch.equal(batch["cluster"], expected)))
            return super().training_step(batch, batch_idx)

    model = Probe(*tiny_parts(), dm.class_names, plot_embeddings=False)
    tiny_trainer(tmp_path, max_epochs=2).fit(model, dm)
    assert seen["ok"] and all(seen["ok"])
    # 24:4:8:32 training clips, n_target = 4 -> 6 + 1 + 2 + 8 clusters, class-contiguous
    assert dm.clusters.cluster_classes.tolist() == [0] * 6 + [1] + [2] * 2 + [3] * 8
    sizes = torch.bincount(dm.clusters.assignments, minlength=17)
    assert sizes.sum() == 68 and sizes.min() > 0


def test_recluster_every_n_epochs(synth_root, tmp_path):
    dm = tiny_datamodule(synth_root, tmp_path / "cache", cluster_every_n_epochs=2)
    rebuilds = []
    original = dm.clusters.rebuild

    def counting(*args, **kwargs):
        rebuilds.append(args[2])
        return original(*args, **kwargs)

    dm.clusters.rebuild = counting
    tiny_trainer(tmp_path, max_epochs=5).fit(
        EmbeddingPretrain(*tiny_parts(), dm.class_names, plot_embeddings=False), dm
    )
    assert rebuilds == [0, 2, 4]


def test_pretrain_then_finetune_with_plot(synth_root, tmp_path):
    torch.manual_seed(0)
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    pre = EmbeddingPretrain(*tiny_parts(), dm.class_names, lr=3e-3)
    trainer = tiny_trainer(tmp_path, max_epochs=3)
    trainer.fit(pre, dm)
    assert 0 <= pre.results["val"]["metrics"]["macro_err"] <= 1
    plots = sorted((tmp_path / "embeddings").glob("epoch_*.png"))
    assert [p.name for p in plots] == ["epoch_000.png", "epoch_001.png", "epoch_002.png"]
    ckpt = tmp_path / "pre.ckpt"
    trainer.save_checkpoint(ckpt)

    fine = JointFinetune(
        *tiny_parts(),
        dm.class_names,
        pretrained_checkpoint=str(ckpt),
        cluster_loss_weight=0.1,
        cluster_loss=ClusterMarginLoss(),
    )
    assert torch.equal(fine.backbone.lstm.weight_hh_l0, pre.backbone.lstm.weight_hh_l0)
    groups = fine.configure_optimizers().param_groups
    assert groups[0]["lr"] == fine.lr * fine.backbone_lr_mult and groups[1]["lr"] == fine.lr
    trainer = tiny_trainer(tmp_path, max_epochs=2)
    trainer.fit(fine, dm)
    trainer.test(fine, dm, verbose=False)
    assert set(fine.results["test"]["metrics"]) >= {"macro_err", "acc", "err_gunshot", "f1_background"}
    assert any(isinstance(c, ClusterCentroids) for c in trainer.callbacks)


def test_finetune_rejects_a_mismatched_checkpoint(tmp_path, synth_root):
    import pytest

    from clusterlight.features import LogMel
    from clusterlight.nets import CNNEmbedder

    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    pre = EmbeddingPretrain(*tiny_parts(), dm.class_names)
    torch.save({"state_dict": pre.state_dict()}, tmp_path / "lstm.ckpt")
    with pytest.raises(ValueError, match="does not fit this backbone"):
        JointFinetune(
            LogMel(n_mels=32),
            CNNEmbedder(n_mels=32, channels=[8], embed_dim=16),
            dm.class_names,
            pretrained_checkpoint=str(tmp_path / "lstm.ckpt"),
        )
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        JointFinetune(*tiny_parts(), dm.class_names, pretrained_checkpoint=str(tmp_path / "nope.ckpt"))


def _pretrain(dm_root, cache, tmp, epochs, ckpt_in=None, ckpt_out=None):
    torch.manual_seed(0)
    dm = tiny_datamodule(dm_root, cache)
    tracker = ClusterCentroids(momentum=0.8)
    model = EmbeddingPretrain(*tiny_parts(), dm.class_names, centroids=tracker, plot_embeddings=False)
    trainer = tiny_trainer(tmp, max_epochs=epochs, deterministic=True)
    trainer.fit(model, dm, ckpt_path=ckpt_in)
    if ckpt_out:
        trainer.save_checkpoint(ckpt_out)
    return model, dm, tracker


def test_resume_restores_centroid_state_and_continues_identically(synth_root, tmp_path):
    full_model, full_dm, full = _pretrain(synth_root, tmp_path / "cache", tmp_path / "a", 3)
    ckpt = tmp_path / "epoch1.ckpt"
    _, dm1, first = _pretrain(synth_root, tmp_path / "cache", tmp_path / "b", 2, ckpt_out=ckpt)

    state = torch.load(ckpt, weights_only=False)
    saved = next(v for k, v in state["callbacks"].items() if "ClusterCentroids" in k)
    assert torch.equal(saved["centroids"], first.centroids.cpu())
    saved_data = next(iter(v for k, v in state.items() if k.endswith("AudioDataModule")))
    assert torch.equal(saved_data["assignments"], dm1.clusters.assignments.cpu())
    assert saved_data["last_rebuild_epoch"] == 1

    resumed_model, resumed_dm, resumed = _pretrain(
        synth_root, tmp_path / "cache", tmp_path / "c", 3, ckpt_in=str(ckpt)
    )
    assert resumed_dm.clusters.last_rebuild_epoch == full_dm.clusters.last_rebuild_epoch == 2
    assert torch.equal(resumed_dm.clusters.assignments, full_dm.clusters.assignments)
    assert torch.allclose(resumed.centroids, full.centroids, atol=1e-5)
    for (name, a), b in zip(full_model.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name


def test_pretrain_predicts_from_a_checkpoint_and_explains_when_it_cannot(synth_root, tmp_path):
    ckpt = tmp_path / "pretrained.ckpt"
    _, dm, _ = _pretrain(synth_root, tmp_path / "cache", tmp_path / "a", 1, ckpt_out=ckpt)
    fresh = EmbeddingPretrain(*tiny_parts(), dm.class_names, plot_embeddings=False)
    with pytest.raises(RuntimeError, match="has no cluster centroids"):
        tiny_trainer(tmp_path / "b").predict(fresh, dm)
    preds = tiny_trainer(tmp_path / "c").predict(
        EmbeddingPretrain(*tiny_parts(), dm.class_names, plot_embeddings=False), dm, ckpt_path=str(ckpt)
    )
    scores = torch.cat([p["scores"] for p in preds])
    assert scores.shape == (len(dm.datasets["test"]), 4) and torch.isfinite(scores.amax(1)).all()


def test_bf16_mixed_precision_end_to_end(synth_root, tmp_path):
    """The GPU configs train in bf16-mixed; the same path (autocast, float32 losses and centroids)
    runs on CPU.
    CNN backbone: oneDNN has no bf16 LSTM kernel on CPUs without native bf16 (cuDNN has one on GPUs)."""
    torch.manual_seed(0)
    dm = tiny_datamodule(synth_root, tmp_path / "cache")

    def cnn_parts():
        return tiny_parts()[0], CNNEmbedder(
            n_mels=32, channels=[8, 16], embed_dim=16, convs_per_block=1, channels_last=True
        )

    pre = EmbeddingPretrain(*cnn_parts(), dm.class_names, plot_embeddings=False)
    trainer = tiny_trainer(tmp_path, max_epochs=2, precision="bf16-mixed")
    trainer.fit(pre, dm)
    tracker = next(c for c in trainer.callbacks if isinstance(c, ClusterCentroids))
    assert tracker.centroids.dtype == torch.float32 and torch.isfinite(tracker.centroids).all()
    ckpt = tmp_path / "pre.ckpt"
    trainer.save_checkpoint(ckpt)
    fine = JointFinetune(
        *cnn_parts(),
        dm.class_names,
        pretrained_checkpoint=str(ckpt),
        cluster_loss_weight=0.1,
        cluster_loss=ClusterMarginLoss(),
    )
    trainer = tiny_trainer(tmp_path, max_epochs=1, precision="bf16-mixed")
    trainer.fit(fine, dm)
    assert torch.isfinite(trainer.callback_metrics["train/cls_loss"]) and torch.isfinite(
        trainer.callback_metrics["train/cluster_loss"]
    )
    trainer.test(fine, dm, verbose=False)
    assert 0 <= fine.results["test"]["metrics"]["macro_err"] <= 1


def test_joint_from_scratch_ramps_the_cluster_loss_and_trains_on_balanced_clusters(synth_root, tmp_path):
    dm = tiny_datamodule(
        synth_root,
        tmp_path / "cache",
        balanced_clusters=True,
        class_ratio={"dog_bark": 6, "baby_cry": 1, "gunshot": 2, "background": 8},
    )
    weights = []

    class Probe(JointFinetune):
        def training_step(self, batch, batch_idx):
            weights.append((self.current_epoch, self.current_cluster_loss_weight))
            return super().training_step(batch, batch_idx)

    model = Probe(
        *tiny_parts(),
        dm.class_names,
        cluster_loss_weight=2.0,
        cluster_loss=ClusterMarginLoss(),
        cluster_loss_warmup_epochs=2,
    )
    tiny_trainer(tmp_path, max_epochs=3).fit(model, dm)
    assert sorted(set(weights)) == [(0, 0.0), (1, 1.0), (2, 2.0)]
    # 24:4:8:32 training clips, 6 + 1 + 2 + 8 clusters of exactly 4 clips each
    assert torch.bincount(dm.clusters.assignments, minlength=17).tolist() == [4] * 17
    with pytest.raises(ValueError, match="cluster_loss_warmup_epochs"):
        JointFinetune(*tiny_parts(), dm.class_names, cluster_loss_warmup_epochs=-1)
