"""Every module's journey through the CLI with the shipped configs under 2-process DDP (gloo):
``fit`` then ``test --ckpt_path best``, defaults left on (embedding plots, exact re-clustering;
the memory bank and mixing in their own journeys). Run as real processes, so a deadlock is a
timeout and Lightning's warnings are visible."""

import pytest
import torch
import yaml
from helpers.cli import clusterlight
from helpers.configs import CONFIGS, model_configs, tiny_data, write_yaml

pytestmark = pytest.mark.slow  # 2-process DDP journeys, each CLI run a real process

SMALL_LSTM = ["--model.init_args.backbone.init_args.hidden", "32"]
JOURNEYS = {  # each module; exact and bank re-clustering; mixing; the log-mel feature cache
    "baseline": ["baseline"],
    "pretrain": ["pretrain"],  # then fine-tuned from its selected checkpoint
    "pretrain_feature_cache": ["pretrain", "--data.init_args.feature_cache", "true"],  # built in prepare_data
    "one_stage_bank_mixing": [
        "finetune",
        "--config",
        str(CONFIGS / "data/mixing/background.yaml"),
        "--model.init_args.cluster_loss_weight",
        "1.0",
        "--model.init_args.centroids",
        "clusterlight.callbacks.ClusterCentroids",
        "--model.init_args.centroids.init_args.embedding_source",
        "bank",
    ],
}


def journey_args(tmp_path, trainer: str, journey: str, root) -> list[str]:
    stage, *extra = FINETUNE if journey == "finetune" else JOURNEYS[journey]
    data = write_yaml(tmp_path, "data.yaml", tiny_data(tmp_path))
    probe = write_yaml(
        tmp_path,
        f"probe-{root.name}.yaml",
        {
            "trainer": {
                "callbacks": [
                    {"class_path": "helpers.rank_probe.RankProbe", "init_args": {"out_dir": str(root)}}
                ]
            }
        },
    )
    return [
        "--config", str(CONFIGS / f"trainer/{trainer}.yaml"),
        "--config", data,
        *model_configs(stage, "lstm"),
        "--config", probe,
        *extra,
        *SMALL_LSTM,
        "--model.init_args.frontend.init_args.sample_rate", "8000",
        "--trainer.max_epochs", "2",
        "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(root),
        "--seed_everything", "0",
    ]  # fmt: skip


FINETUNE = ["finetune"]  # the shipped stage-2 config (cluster loss kept as an auxiliary term)


@pytest.mark.parametrize("journey", sorted(JOURNEYS))
def test_ddp_journey_fit_then_test(tmp_path, journey):
    ddp, one = tmp_path / "ddp", tmp_path / "one"
    fit = clusterlight(["fit", *journey_args(tmp_path, "ddp_cpu", journey, ddp)])
    assert "sync_dist" not in fit.stderr, "Lightning asks for sync_dist: a metric is not reduced"
    assert "| **macro** |" in fit.stdout, "fit ends with the selected checkpoint's validation table"

    ranks = [torch.load(ddp / f"rank{r}-fit.pt", weights_only=False) for r in (0, 1)]
    assert ranks[0]["world"] == 2
    for name, value in ranks[0]["weights"].items():
        assert torch.equal(value, ranks[1]["weights"][name]), f"rank weights differ: {name}"
    if journey != "baseline":
        assert torch.equal(ranks[0]["centroids"], ranks[1]["centroids"]), "rank centroids differ"
    if journey.endswith("feature_cache"):
        names = sorted(p.name for p in (tmp_path / "cache").iterdir())
        assert [n[:7] for n in names if not n.startswith("waves-")] == ["logmel-"], (
            f"one cache, no leftovers: {names}"
        )
    if journey.startswith("pretrain"):
        assert list((ddp / "lightning_logs/version_0/embeddings").glob("epoch_*.png")), "no embedding plot"

    test = clusterlight(["test", *journey_args(tmp_path, "ddp_cpu", journey, ddp), "--ckpt_path", "best"])
    assert "sync_dist" not in test.stderr
    # the same checkpoint tested by one process: every clip once either way, so the same figures
    selected = next((ddp / "lightning_logs/version_0/checkpoints").glob("best-*.ckpt"))
    clusterlight(["test", *journey_args(tmp_path, "cpu", journey, one), "--ckpt_path", str(selected)])
    two, single = torch.load(ddp / "rank0-test.pt")["metrics"], torch.load(one / "rank0-test.pt")["metrics"]
    test_keys = [k for k in single if k.startswith("test/")]
    assert "test/macro_err" in test_keys
    assert {k: two[k] for k in test_keys} == pytest.approx({k: single[k] for k in test_keys}, abs=1e-6)
    assert not (ddp / "lightning_logs/version_1").exists(), "test --ckpt_path best logs into the fit's run"
    config = yaml.safe_load((ddp / "lightning_logs/version_0/hparams.yaml").read_text())
    assert config["model"]["class_path"].startswith("clusterlight.modules."), "config not logged"
    if journey == "pretrain":  # stage 2 of the paper's recipe: fine-tune that checkpoint under DDP
        tuned = tmp_path / "tuned"
        args = journey_args(tmp_path, "ddp_cpu", "finetune", tuned)
        clusterlight(["fit", *args, "--model.init_args.pretrained_checkpoint", str(selected)])
        ranks = [torch.load(tuned / f"rank{r}-fit.pt", weights_only=False) for r in (0, 1)]
        for name, value in ranks[0]["weights"].items():
            assert torch.equal(value, ranks[1]["weights"][name]), f"fine-tuning: rank weights differ: {name}"
