"""SmoothedMetric: the validation curve averaged over the last epochs, and the checkpoint it selects, on
hand-made curves, across a resume, and through the CLI with the shipped preset."""

import csv
from pathlib import Path

import pytest
import torch
from helpers.configs import CONFIGS, model_configs, tiny_data, write_yaml
from lightning.pytorch import Trainer
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.loggers import CSVLogger

from clusterlight.callbacks import BestAndLastCheckpoint, SmoothedMetric
from clusterlight.callbacks.smoothed_metric import window_mean
from clusterlight.cli import main
from clusterlight.lightning_cli import ClusterlightCLI

# one lucky dip at epoch 2, a steady plateau from epoch 5
CURVE = [0.50, 0.40, 0.10, 0.45, 0.40, 0.22, 0.20, 0.21]
SMOOTH_3 = [0.50, 0.45, 1 / 3, 0.95 / 3, 0.95 / 3, 1.07 / 3, 0.82 / 3, 0.63 / 3]


def test_window_mean_averages_the_last_values_and_fewer_at_the_start():
    smooth = [window_mean(CURVE[: i + 1], 3) for i in range(len(CURVE))]
    assert smooth == pytest.approx(SMOOTH_3)
    assert [window_mean(CURVE[: i + 1], 1) for i in range(len(CURVE))] == CURVE


class CurveModel(BoringModel):
    """Logs ``val/macro_err`` from ``CURVE`` at each validation of the fit (a bad value at the sanity check
    and at a validation after the fit)."""

    def validation_step(self, batch, batch_idx):
        return None

    def on_validation_epoch_end(self):
        fitting = not self.trainer.sanity_checking and self.current_epoch < len(CURVE)
        value = CURVE[self.current_epoch] if fitting else 9.0
        self.log("val/macro_err", value)


def curve_fit(root: Path, epochs: int, ckpt_path=None) -> tuple[Trainer, BestAndLastCheckpoint]:
    checkpoint = BestAndLastCheckpoint(
        dirpath=str(root / "ckpt"), monitor="val/macro_err_smooth", save_last=True, filename="best-{epoch}"
    )
    trainer = Trainer(
        max_epochs=epochs,
        limit_train_batches=2,
        limit_val_batches=1,
        num_sanity_val_steps=1,
        callbacks=[SmoothedMetric(window=3), checkpoint],
        logger=CSVLogger(str(root), name="", version=""),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(CurveModel(), ckpt_path=ckpt_path)
    return trainer, checkpoint


def logged(path: Path, column: str) -> list[float]:
    with open(path) as f:
        return [float(row[column]) for row in csv.DictReader(f) if row.get(column)]


def test_the_checkpoint_ends_the_best_window_not_the_lucky_epoch(tmp_path):
    trainer, checkpoint = curve_fit(tmp_path, epochs=len(CURVE))
    assert Path(checkpoint.best_model_path).name == "best-epoch=7.ckpt"  # raw best: epoch 2
    assert float(checkpoint.best_model_score) == pytest.approx(SMOOTH_3[-1])
    assert logged(tmp_path / "metrics.csv", "val/macro_err_smooth") == pytest.approx(SMOOTH_3)

    trainer.validate(trainer.lightning_module, ckpt_path=checkpoint.best_model_path, verbose=False)
    smoothing = next(c for c in trainer.callbacks if isinstance(c, SmoothedMetric))
    assert smoothing.values == pytest.approx(CURVE[-3:])  # validate after fit adds nothing


def test_a_resumed_fit_smooths_as_the_uninterrupted_one(tmp_path):
    curve_fit(tmp_path / "cut", epochs=4)
    _, resumed = curve_fit(
        tmp_path / "cut", epochs=len(CURVE), ckpt_path=str(tmp_path / "cut/ckpt/last.ckpt")
    )
    state = torch.load(tmp_path / "cut/ckpt/last.ckpt", weights_only=True)["callbacks"]
    assert state["SmoothedMetric{'monitor': 'val/macro_err', 'window': 3}"]["values"] == pytest.approx(
        CURVE[-3:]
    )
    assert Path(resumed.best_model_path).name == "best-epoch=7.ckpt"
    assert float(resumed.best_model_score) == pytest.approx(SMOOTH_3[-1])


def test_window_must_be_positive():
    with pytest.raises(ValueError, match="SmoothedMetric.window must be >= 1, got 0"):
        SmoothedMetric(window=0)


def test_cli_preset_selects_by_the_smoothed_validation_error(tmp_path):
    root = tmp_path / "run"
    main(
        [
            "fit",
            "--config",
            str(CONFIGS / "trainer/cpu.yaml"),
            "--config",
            str(CONFIGS / "trainer/callbacks/smoothed_checkpoint.yaml"),
            "--config",
            str(CONFIGS / "logger/csv.yaml"),
            "--config",
            write_yaml(tmp_path, "d.yaml", tiny_data(tmp_path)),
            *model_configs("baseline", "lstm"),
            "--model.init_args.backbone.init_args.hidden",
            "16",
            "--model.init_args.frontend.init_args.sample_rate",
            "8000",
            "--trainer.max_epochs",
            "3",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.default_root_dir",
            str(root),
            "--trainer.logger.init_args.save_dir",
            str(root),
        ]  # fmt: skip
    )
    metrics = next(root.rglob("metrics.csv"))
    raw = logged(metrics, "val/macro_err")[:3]  # then fit validates the selected checkpoint once more
    smooth = logged(metrics, "val/macro_err_smooth")
    assert smooth == pytest.approx([window_mean(raw[: i + 1], 3) for i in range(3)])
    best = torch.load(next(root.rglob("best-*.ckpt")), weights_only=False)
    checkpoint_state = next(v for k, v in best["callbacks"].items() if k.startswith("BestAndLastCheckpoint"))
    assert checkpoint_state["monitor"] == "val/macro_err_smooth"
    assert float(checkpoint_state["best_model_score"]) == pytest.approx(min(smooth))


PRESETS = {  # configs/trainer/callbacks/*.yaml -> the callbacks it adds, the checkpoint monitor
    "ema.yaml": (["EMAWeights"], "val/macro_err"),
    "smoothed_checkpoint.yaml": (["SmoothedMetric"], "val/macro_err_smooth"),
    "ema_smoothed_checkpoint.yaml": (["EMAWeights", "SmoothedMetric"], "val/macro_err_smooth"),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_callback_presets_compose_with_a_stage(preset, tmp_path):
    assert sorted(p.name for p in (CONFIGS / "trainer/callbacks").glob("*.yaml")) == sorted(PRESETS)
    args = [
        "--config", str(CONFIGS / "trainer/cpu.yaml"),
        "--config", str(CONFIGS / f"trainer/callbacks/{preset}"),
        "--config", write_yaml(tmp_path, "d.yaml", tiny_data(tmp_path)),
        *model_configs("finetune", "lstm"),
    ]  # fmt: skip
    cli = ClusterlightCLI(args=args, run=False)
    added, monitor = PRESETS[preset]
    names = [type(c).__name__ for c in cli.trainer.callbacks]
    assert [n for n in names if n in ("EMAWeights", "SmoothedMetric")] == added
    assert cli.trainer.checkpoint_callback.monitor == monitor
