"""Configs of tiny runs: the shipped configs' folder, a tiny synthetic data config in a temp dir, the
arguments of a tiny classifier and a tiny two-method experiment."""

from __future__ import annotations

import json

import yaml

from helpers import ROOT
from helpers.data import TINY_COUNTS

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


def tiny_experiment(tmp_path) -> dict:
    """An experiment of two methods (``baseline``; ``clustered``: pretrain, then finetune from it), two seeds,
    one epoch per stage on the tiny data, small LSTMs on the CPU, CSV logs."""
    model_over = {
        "model": {
            "init_args": {
                "frontend": {"init_args": {"sample_rate": 8000}},
                "backbone": {"init_args": {"hidden": 32, "layers": 1}},
            }
        }
    }
    lstm = str(CONFIGS / "model/net/lstm.yaml")
    return {
        "name": "tiny",
        "seeds": [0, 1],
        "common": [
            str(CONFIGS / "trainer/cpu.yaml"),
            str(CONFIGS / "logger/csv.yaml"),
            write_yaml(tmp_path, "d.yaml", tiny_data(tmp_path)),
        ],
        "overrides": {
            "trainer": {"enable_progress_bar": False, "enable_model_summary": False, "max_epochs": 1},
            **model_over,
        },
        "methods": {
            "baseline": {
                "stages": [{"name": "fit", "configs": [str(CONFIGS / "model/baseline.yaml"), lstm]}]
            },
            "clustered": {
                "stages": [
                    {"name": "pretrain", "configs": [str(CONFIGS / "model/pretrain.yaml"), lstm]},
                    {
                        "name": "finetune",
                        "configs": [str(CONFIGS / "model/finetune.yaml"), lstm],
                        "init_from": "pretrain",
                    },
                ]
            },
        },
    }
