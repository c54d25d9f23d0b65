"""The scripts under benchmarks/ (outside the package) imported as modules, the way
``python benchmarks/NAME.py`` runs them: with benchmarks/ on ``sys.path``, so that one script
imports another (rare4.py imports pooling.py) by its file name."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from helpers import ROOT

BENCHMARKS = ROOT / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as the module ``name`` (registered in ``sys.modules``: dataclasses
    look their module up); loaded once, later calls return the same module."""
    if name in sys.modules:
        return sys.modules[name]
    if str(BENCHMARKS) not in sys.path:
        sys.path.append(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
