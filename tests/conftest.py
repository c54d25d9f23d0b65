"""Shared fixtures: tiny datasets written into temp dirs (tests make their own data). The helpers live in
the ``helpers`` package (tests/helpers); tests import them from there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")


def pytest_configure(config) -> None:
    """Under pytest-xdist, the workers share the cores: each takes its share of torch's intra-op threads
    instead of all of them (on 2 cores, 2 workers x 2 threads oversubscribe them and the suite runs about
    twice as long). Only this process: the processes the tests start keep their own defaults."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and "PYTEST_XDIST_WORKER" in os.environ:
        import torch

        torch.set_num_threads(max(1, torch.get_num_threads() // int(workers)))


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A tiny synthetic dataset (8 kHz, 1 s clips, easy SNR), generated once per test run."""
    return tmp_path_factory.mktemp("synth")
