"""Helpers shared by the tests: tiny data, models, configs, the CLI in a subprocess, run records.

Test modules import from here (``from helpers.configs import tiny_data``), never from one another. pytest
puts ``tests/`` on ``sys.path`` (rootdir conftest, no ``__init__.py`` in ``tests/``); a subprocess that
loads a helper by class path (``helpers.rank_probe.RankProbe``) gets ``TESTS`` on its ``PYTHONPATH``.
Kept free of heavy imports: DDP workers and CLI subprocesses import this package."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]  # tests/, the folder that holds this package
ROOT = TESTS.parent  # the repository
