"""DDP code paths on 2 CPU processes (gloo): identical centroids and assignments on every rank."""

import json

import pytest
import torch
from helpers.configs import CONFIGS, tiny_data, write_yaml
from helpers.data import tiny_datamodule
from helpers.models import tiny_parts, tiny_trainer
from lightning.pytorch import Callback

from clusterlight import ClusterCentroids, EmbeddingPretrain
from clusterlight.cli import main

pytestmark = pytest.mark.slow  # DDP on 2 CPU processes (ddp_spawn, gloo)


class RankAgreement(Callback):
    """Gathers centroids and assignments from all ranks right after each rebuild and at each epoch end."""

    def __init__(self, out: str) -> None:
        self.out, self.records = out, []

    def _check(self, trainer, pl_module, when: str) -> None:
        tracker = next(c for c in trainer.callbacks if isinstance(c, ClusterCentroids))
        cents = pl_module.all_gather(tracker.centroids)
        assign = pl_module.all_gather(trainer.datamodule.clusters.assignments)
        self.records.append(
            {
                "when": when,
                "world": int(cents.shape[0]),
                "centroid_diff": float((cents - cents[0]).abs().max()),
                "assign_equal": bool((assign == assign[0]).all()),
                "n_clusters": int(cents.shape[1]),
            }
        )

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self._check(trainer, pl_module, f"rebuild{trainer.current_epoch}")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check(trainer, pl_module, f"end{trainer.current_epoch}")

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_rank == 0:
            with open(self.out, "w") as f:
                json.dump(self.records, f)


def test_ddp_two_cpu_processes_keep_identical_cluster_state(synth_root, tmp_path):
    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    dm.prepare_data()
    model = EmbeddingPretrain(
        *tiny_parts(), dm.class_names, centroids=ClusterCentroids(0.9), plot_embeddings=False
    )
    out = tmp_path / "agreement.json"
    trainer = tiny_trainer(
        tmp_path,
        max_epochs=2,
        devices=2,
        strategy="ddp_spawn",
        callbacks=[RankAgreement(str(out))],
    )
    trainer.fit(model, dm)
    records = json.loads(out.read_text())
    assert [r["when"] for r in records] == ["rebuild0", "end0", "rebuild1", "end1"]
    for r in records:
        assert r["world"] == 2 and r["n_clusters"] == 5 and r["assign_equal"], r
        assert r["centroid_diff"] == 0.0, r


def test_ddp_baseline_fit_through_cli(tmp_path):
    data = write_yaml(tmp_path, "d.yaml", tiny_data(tmp_path))
    main(
        [
            "fit",
            "--config",
            str(CONFIGS / "trainer/ddp_cpu.yaml"),
            "--config",
            str(CONFIGS / "model/baseline.yaml"),
            "--config",
            str(CONFIGS / "model/net/lstm.yaml"),
            "--config",
            data,
            "--trainer.max_epochs",
            "1",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.default_root_dir",
            str(tmp_path),
            "--model.init_args.frontend.init_args.sample_rate",
            "8000",
        ]
    )
    ckpt = next(tmp_path.rglob("best-*.ckpt"))
    state = torch.load(ckpt, weights_only=False)
    assert "val/macro_err" in str(state["callbacks"])


def test_ddp_two_processes_match_one_process(synth_root, tmp_path):
    """Two ranks x 10 clips per step = one process x 20 clips per step (no batch norm, plain CE)."""
    from helpers.models import MeanPoolEmbedder

    from clusterlight.losses import CrossEntropy
    from clusterlight.modules import Classifier

    weights = []
    for devices, batch in ((1, 20), (2, 10)):
        torch.manual_seed(0)
        dm = tiny_datamodule(synth_root, tmp_path / "cache", batch_size=batch)
        dm.prepare_data()
        model = Classifier(
            tiny_parts()[0],
            MeanPoolEmbedder(),
            dm.class_names,
            loss=CrossEntropy(),
            lr=1e-2,
            weight_decay=0.0,
        )
        initial = model.backbone.proj.weight.detach().clone()
        strategy = "ddp_spawn" if devices > 1 else "auto"
        tiny_trainer(
            tmp_path / str(devices), max_epochs=2, devices=devices, strategy=strategy, limit_val_batches=0
        ).fit(model, dm)
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
        assert not torch.allclose(initial, model.backbone.proj.weight), "training did not move the weights"
    for name in weights[0]:
        assert torch.allclose(weights[0][name], weights[1][name], atol=1e-5), name
