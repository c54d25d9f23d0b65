"""Package names that load on first use (PEP 562): a package maps each public name to the module that
defines it, and that module is imported when the name is first read. ``import clusterlight`` then costs
milliseconds, and a process that needs one light module (a cache-decoding worker, a device running an
exported model with numpy and onnxruntime) does not import torch or Lightning with it."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_names(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose names ``exports`` maps to their
    modules; a name, once loaded, is stored in the package."""

    def getattr_(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    def dir_() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return getattr_, dir_
