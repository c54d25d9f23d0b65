"""Resume as a user does it: a real ``clusterlight fit`` killed with SIGKILL mid-epoch, then
``clusterlight fit ... --ckpt_path last``; the shipped configs with their defaults (dropout, random
crops, mixing, re-clustering every epoch, embedding plots)."""

import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers.cli import clusterlight, subprocess_env
from helpers.configs import CONFIGS, model_configs, tiny_data, write_yaml

pytestmark = pytest.mark.slow  # real clusterlight processes, one killed with SIGKILL

EPOCHS = 4


def fit_args(tmp_path, root) -> list[str]:
    data = tiny_data(tmp_path)
    data["data"]["init_args"]["padding"] = "loop"
    return [
        "fit",
        "--config", str(CONFIGS / "trainer/cpu.yaml"),
        "--config", write_yaml(tmp_path, "data.yaml", data),
        "--config", str(CONFIGS / "data/mixing/background.yaml"),
        *model_configs("pretrain", "lstm"),
        "--model.init_args.backbone.init_args.hidden", "32",
        "--model.init_args.frontend.init_args.sample_rate", "8000",
        "--trainer.max_epochs", str(EPOCHS),
        "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(root),
        "--seed_everything", "0",
    ]  # fmt: skip


def final_state(root) -> dict:
    ckpt = torch.load(root / "lightning_logs/version_0/checkpoints/last.ckpt", weights_only=False)
    data = next(v for k, v in ckpt.items() if k.endswith("AudioDataModule"))
    centroids = next(v for k, v in ckpt["callbacks"].items() if k.startswith("ClusterCentroids"))
    return {"epoch": ckpt["epoch"], "weights": ckpt["state_dict"], "data": data, "centroids": centroids}


def test_sigkill_mid_epoch_then_resume_equals_the_uninterrupted_run(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    clusterlight(fit_args(tmp_path, whole))

    env = subprocess_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clusterlight", *fit_args(tmp_path, killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    last = killed / "lightning_logs/version_0/checkpoints/last.ckpt"
    deadline = time.time() + 180
    while not last.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    interrupted_at = torch.load(last, weights_only=False)["epoch"]
    assert interrupted_at < EPOCHS - 1

    resumed = clusterlight([*fit_args(tmp_path, killed), "--ckpt_path", "last"])
    assert "--ckpt_path last:" in resumed.stderr + resumed.stdout
    assert not (killed / "lightning_logs/version_1").exists(), "the resumed run opened a new run folder"

    a, b = final_state(whole), final_state(killed)
    assert a["epoch"] == b["epoch"] == EPOCHS - 1, "last.ckpt holds the last epoch, not the best one"
    for name, value in a["weights"].items():
        assert torch.equal(value, b["weights"][name]), name
    assert torch.equal(a["centroids"]["centroids"], b["centroids"]["centroids"])
    assert torch.equal(a["data"]["assignments"], b["data"]["assignments"])

    test = clusterlight(["test", *fit_args(tmp_path, killed)[1:], "--ckpt_path", "best"])
    assert "--ckpt_path best:" in test.stderr + test.stdout and "best-epoch=" in test.stderr + test.stdout
    assert not (killed / "lightning_logs/version_1").exists(), "test logs into the fit's run folder"


def test_ckpt_path_best_without_an_earlier_run_says_what_is_missing(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "clusterlight",
            "test",
            *fit_args(tmp_path, tmp_path / "none")[1:],
            "--ckpt_path",
            "best",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "--ckpt_path best: no earlier run under" in done.stderr
