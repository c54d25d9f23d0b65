"""A single ``clusterlight fit`` with the shipped W&B logger config (offline): a meaningful run name,
the resolved config as the run config, per-class metrics and the confusion matrix logged."""

from test_experiment_wandb import read_offline_run
from test_journeys_ddp import clusterlight
from tiny_configs import CONFIGS, model_configs, tiny_data, write_yaml


def test_single_fit_gets_a_name_its_config_and_the_reports(tmp_path):
    clusterlight(
        [
            "fit",
            "--config",
            str(CONFIGS / "trainer/cpu.yaml"),
            "--config",
            str(CONFIGS / "logger/wandb.yaml"),
            "--config",
            write_yaml(tmp_path, "data.yaml", tiny_data(tmp_path)),
            *model_configs("baseline", "lstm"),
            "--model.init_args.backbone.init_args.hidden",
            "16",
            "--model.init_args.frontend.init_args.sample_rate",
            "8000",
            "--trainer.max_epochs",
            "1",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "logs"),
            "--trainer.default_root_dir",
            str(tmp_path),
            "--seed_everything",
            "3",
        ]  # fmt: skip
    )
    (folder,) = (tmp_path / "logs" / "wandb").glob("offline-run-*")
    run = read_offline_run(folder)
    assert run["name"] == "Classifier/LSTMEmbedder/seed3" and run["job_type"] == "fit"
    assert {"model", "data", "trainer", "checkpoint"} <= run["config"]
    assert {"val/macro_err", "val/err_gunshot", "val/f1_gunshot"} <= run["keys"]
    assert {"val/confusion/_type", "val/confusion_table/_type"} <= run["keys"]  # the picture and the table
