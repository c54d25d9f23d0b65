"""Config helpers shared by the CLI and experiment tests: a tiny synthetic data config in a temp dir."""

from __future__ import annotations

import json

import yaml
from conftest import ROOT, TINY_COUNTS

CONFIGS = ROOT / "configs"
TINY_DATA = {
    "data": {
        "class_path": "clusterlight.data.AudioDataModule",
        "init_args": {
            "source": {
                "class_path": "clusterlight.data.SyntheticSource",
                "init_args": {
                    "counts": TINY_COUNTS,
                    "sample_rate": 8000,
                    "duration": 1.0,
                    "snr_db": [6.0, 12.0],
                },
            },
            "classes": ["dog_bark", "baby_cry", "gunshot", "background"],
            "sample_rate": 8000,
            "duration": 1.0,
            "batch_size": 16,
        },
    }
}


def tiny_data(tmp_path) -> dict:
    cfg = json.loads(json.dumps(TINY_DATA))
    cfg["data"]["init_args"]["source"]["init_args"]["root"] = str(tmp_path / "synth")
    cfg["data"]["init_args"]["cache_dir"] = str(tmp_path / "cache")
    return cfg


def write_yaml(tmp_path, name, cfg) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def model_configs(stage: str, net: str) -> list[str]:
    """``--config`` arguments of a model: the stage config, then the network's."""
    return [
        "--config",
        str(CONFIGS / f"model/{stage}.yaml"),
        "--config",
        str(CONFIGS / f"model/net/{net}.yaml"),
    ]


def tiny_classifier_args(tmp_path) -> list[str]:
    """The arguments every ``clusterlight`` subcommand of the tiny LSTM classifier shares (shipped configs,
    tiny data, a run folder under ``tmp_path``)."""
    return [
        "--config",
        str(CONFIGS / "trainer/cpu.yaml"),
        "--config",
        write_yaml(tmp_path, "data.yaml", tiny_data(tmp_path)),
        *model_configs("baseline", "lstm"),
        "--model.init_args.backbone.init_args.hidden",
        "16",
        "--model.init_args.frontend.init_args.sample_rate",
        "8000",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.default_root_dir",
        str(tmp_path / "run"),
    ]  # fmt: skip


def train_tiny_classifier(tmp_path, epochs: int):
    """A tiny LSTM classifier trained by ``clusterlight fit`` (shipped configs); its selected checkpoint."""
    from test_journeys_ddp import clusterlight

    clusterlight(["fit", *tiny_classifier_args(tmp_path), "--trainer.max_epochs", str(epochs)])
    return next((tmp_path / "run").rglob("best-*.ckpt"))
