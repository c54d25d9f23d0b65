"""Per-class detection thresholds chosen on the validation split and stored in the checkpoints: the
``clusterlight fit`` journey with the shipped configs, then ``clusterlight detect`` using them."""

import pytest
import torch
from helpers.cli import clusterlight
from helpers.configs import CONFIGS, model_configs, tiny_data, write_yaml
from helpers.data import tiny_datamodule
from helpers.models import tiny_trainer

from clusterlight.data.long_synth import generate_long
from clusterlight.inference import load

EVENT_CLASSES = {"dog_bark", "baby_cry", "gunshot"}  # background needs no threshold


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """``clusterlight fit`` of a tiny LSTM baseline: (stdout, checkpoint folder, data folder)."""
    tmp = tmp_path_factory.mktemp("fit")
    done = clusterlight(
        [
            "fit",
            "--config",
            str(CONFIGS / "trainer/cpu.yaml"),
            "--config",
            write_yaml(tmp, "data.yaml", tiny_data(tmp)),
            *model_configs("baseline", "lstm"),
            "--model.init_args.backbone.init_args.hidden",
            "16",
            "--model.init_args.frontend.init_args.sample_rate",
            "8000",
            "--trainer.max_epochs",
            "2",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.default_root_dir",
            str(tmp / "run"),
        ]  # fmt: skip
    )
    return done.stdout, next((tmp / "run").rglob("last.ckpt")).parent, tmp


def thresholds_in(path) -> dict:
    return torch.load(path, weights_only=True)["clusterlight"]["thresholds"]


@pytest.mark.slow
def test_fit_leaves_thresholds_in_the_best_and_the_last_checkpoint_and_prints_them(fitted):
    stdout, folder, _ = fitted
    best = next(folder.glob("best-*.ckpt"))
    for path in (best, folder / "last.ckpt"):
        thresholds = thresholds_in(path)
        assert set(thresholds) == EVENT_CLASSES and all(0 < t <= 1 for t in thresholds.values())
    line = next(s for s in stdout.splitlines() if "detection thresholds" in s)
    assert all(f"{c} {t:.3f}" in line for c, t in thresholds_in(best).items())


@pytest.mark.slow
def test_the_best_checkpoints_thresholds_are_those_of_its_validation(fitted, tmp_path):
    """Validating the best checkpoint again chooses the thresholds its card holds (F1-optimal on the
    validation clips' probabilities)."""
    _, folder, data = fitted
    best = next(folder.glob("best-*.ckpt"))
    model = load(best)
    tiny_trainer(tmp_path).validate(model, tiny_datamodule(data / "synth", data / "cache"), verbose=False)
    assert model.val_thresholds == pytest.approx(thresholds_in(best), abs=1e-6)
    assert len(model.clip_probabilities["val"]) == 30


@pytest.mark.slow
def test_detect_uses_the_checkpoints_thresholds(fitted, tmp_path):
    _, folder, _ = fitted
    generate_long(tmp_path / "long", n_recordings=1, minutes=0.25, seed=3, sample_rate=8000)
    out = tmp_path / "events.csv"
    done = clusterlight(
        ["detect", "--ckpt_path", str(folder / "last.ckpt"), str(tmp_path / "long"), "--out", str(out)]
    )
    assert "(thresholds: checkpoint)" in done.stdout and out.is_file()
