"""The ``clusterlight`` command run as a user runs it: a real process (so a deadlock is a timeout and
Lightning's warnings are visible), with ``tests/`` on its ``PYTHONPATH`` for the helpers' callbacks."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import TESTS
from helpers.configs import tiny_classifier_args


def subprocess_env() -> dict[str, str]:
    """The environment of a test's ``clusterlight`` process: this one's, with ``tests/`` on ``PYTHONPATH``."""
    return {**os.environ, "PYTHONPATH": str(TESTS)}


def clusterlight(args: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "clusterlight", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def train_tiny_classifier(tmp_path, epochs: int):
    """A tiny LSTM classifier trained by ``clusterlight fit`` (shipped configs); its selected checkpoint."""
    clusterlight(["fit", *tiny_classifier_args(tmp_path), "--trainer.max_epochs", str(epochs)])
    return next((tmp_path / "run").rglob("best-*.ckpt"))
