"""benchmarks/gpu_check.py (``make gpu-check``) on a machine without CUDA: it exits 0 and its report says
that every device step was skipped and why; the fit commands follow the quickstart experiment on the GPU
trainer config; a budget too small for a step stops the check before anything starts."""

import os
import subprocess
import sys

import pytest
import torch
from helpers import ROOT
from helpers.benchmarks import load_benchmark

gpu_check = load_benchmark("gpu_check")


def _report_without_cuda(report: str) -> None:
    assert f"Every device step was skipped: {gpu_check.NO_CUDA}" in report
    assert report.count(f"Status: **skipped** ({gpu_check.NO_CUDA}") == 5
    for heading in ("1. throughput.py", "2. clusterlight fit: baseline", "2. clusterlight fit: pretrain"):
        assert f"## {heading}" in report
    assert "## 2. clusterlight fit: finetune" in report and "## 3. data_scale.py" in report
    for line in ("- command: `python benchmarks/gpu_check.py", "- date: ", "- GPU: none", "- CPU: "):
        assert line in report
    assert "- clusterlight 0." in report and f"torch {torch.__version__}" in report


def test_without_cuda_every_step_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu_check, "run_command", lambda *a: pytest.fail("a step started without CUDA"))
    out = tmp_path / "gpu_check.md"
    assert gpu_check.main(["--out", str(out), "--workdir", str(tmp_path / "runs")]) == 0
    _report_without_cuda(out.read_text())
    assert not (tmp_path / "runs").exists()


def test_fit_commands_follow_the_quickstart_on_the_gpu_trainer(tmp_path):
    steps = {s.key: s for s in gpu_check.plan(tmp_path, epochs=2)}
    assert list(steps) == ["throughput", "baseline", "pretrain", "finetune", "data_scale"]
    for name in ("baseline", "pretrain", "finetune"):
        cli = steps[name].figures["cli"]
        assert cli[:4] == ["python", "-m", "clusterlight", "fit"]
        assert cli[cli.index("--config") + 1] == "configs/trainer/gpu.yaml"
        assert "configs/trainer/cpu.yaml" not in cli
        assert cli[cli.index("--trainer.precision") + 1] == "bf16-mixed"
        assert cli.count("--trainer.max_epochs") == 1 and cli[cli.index("--trainer.max_epochs") + 1] == "2"
        assert cli[cli.index("--trainer.default_root_dir") + 1] == str(tmp_path / name)
        assert f"configs/model/{name}.yaml" in cli
        assert steps[name].command[2:4] == ["--fit_child", str(tmp_path / f"{name}.json")]
    finetune = steps["finetune"].figures["cli"]
    assert finetune[finetune.index("--model.init_args.pretrained_checkpoint") + 1] == gpu_check.PRETRAIN_CKPT
    assert "--compile" in steps["throughput"].command


def test_a_low_budget_stops_the_check_before_a_step_starts(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "run_command", lambda *a: pytest.fail("a step started past the budget"))
    steps = gpu_check.plan(tmp_path, epochs=1)
    gpu_check.run_steps(steps, gpu_check.Budget(20.0), tmp_path)
    assert all(s.status == "skipped" for s in steps)
    assert steps[0].why.startswith("budget low") and "stopped here" in steps[0].why
    assert all("budget ran low" in s.why for s in steps[1:4])


@pytest.mark.slow
def test_the_script_exits_0_without_cuda(tmp_path):
    out = tmp_path / "report.md"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    _report_without_cuda(out.read_text())
