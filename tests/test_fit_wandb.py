"""A single ``clusterlight fit`` with the shipped W&B logger config (offline): a meaningful run name,
the resolved config as the run config, per-class metrics and the confusion matrix logged."""

import pytest
from helpers.cli import clusterlight
from helpers.configs import CONFIGS, tiny_classifier_args
from helpers.wandb_runs import read_offline_run

pytestmark = pytest.mark.slow  # a clusterlight fit in a subprocess

pytest.importorskip("wandb")


def test_single_fit_gets_a_name_its_config_and_the_reports(tmp_path):
    clusterlight(
        [
            "fit",
            *tiny_classifier_args(tmp_path),
            "--config",
            str(CONFIGS / "logger/wandb.yaml"),
            "--trainer.max_epochs",
            "1",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "logs"),
            "--seed_everything",
            "3",
        ]
    )
    (folder,) = (tmp_path / "logs" / "wandb").glob("offline-run-*")
    run = read_offline_run(folder)
    assert run["name"] == "Classifier/LSTMEmbedder/seed3" and run["job_type"] == "fit"
    assert {"model", "data", "trainer", "checkpoint"} <= run["config"]
    assert {"val/macro_err", "val/err_gunshot", "val/f1_gunshot"} <= run["keys"]
    assert {"val/confusion/_type", "val/confusion_table/_type"} <= run["keys"]  # the picture and the table
