"""Loading checkpoints safely: ``weights_only=True`` with a small allow-list, and errors that name the file.

Every ``torch.load`` in clusterlight goes through :func:`load_checkpoint`. ``weights_only=True`` makes
torch's restricted unpickler build nothing but tensors, numbers, strings, lists, dicts and the
globals allow-listed here; a pickle that names any other global (a class whose ``__reduce__`` would
open a file or run a command) is refused before that global is looked up, so nothing in the file
runs. What a checkpoint needs was found by loading real ones written by this project (baseline,
pretraining, fine-tuning, the one-stage variant, the memory bank, mixing; checked with
``torch.serialization.get_unsafe_globals_in_checkpoint``): nothing beyond torch's own allow-list
(``RandomState`` stores plain lists and tensors for that reason). :data:`SAFE_GLOBALS` adds only
plain values a third-party callback or an older checkpoint may hold: numpy scalars and dtypes, and
``pathlib`` paths; none of them runs code when rebuilt.
"""

from __future__ import annotations

import contextlib
import pathlib
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch


class CheckpointError(ValueError):
    """A file that cannot be used as the checkpoint it was given as; ``path`` is the file."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)


def _numpy_globals() -> list:
    core = getattr(np, "_core", None) or np.core  # numpy 2 / numpy 1
    dtypes = [type(np.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64", "bool")]
    return [core.multiarray.scalar, np.dtype, *dtypes]


SAFE_GLOBALS: list = [*_numpy_globals(), pathlib.PosixPath, pathlib.WindowsPath, pathlib.PurePosixPath]
UNSAFE = re.compile(r"Unsupported global: GLOBAL (\S+)")


def _allow_listed():
    """``torch.serialization.safe_globals(SAFE_GLOBALS)`` (torch >= 2.5; on 2.4 added process-wide)."""
    context = getattr(torch.serialization, "safe_globals", None)
    if context is None:
        torch.serialization.add_safe_globals(SAFE_GLOBALS)
        return contextlib.nullcontext()
    return context(SAFE_GLOBALS)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    text = lines[0] if lines else ""
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """The checkpoint dict in ``path`` (a Lightning checkpoint: a dict with a ``state_dict``), loaded with
    ``weights_only=True`` and :data:`SAFE_GLOBALS`.

    Raises ``FileNotFoundError`` for a missing path, :class:`CheckpointError` (a ``ValueError``) naming
    the file and what was expected for a folder, an empty file, a file that is no torch checkpoint
    (garbage bytes, a zip of something else), content outside the allow-list (not loaded: nothing in
    it ran), or a checkpoint without a ``state_dict``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file (expected a .ckpt file, got a folder)", path)
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): an interrupted write?", path)
    try:
        with _allow_listed():
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        unsafe = UNSAFE.search(str(e))
        if unsafe:
            raise CheckpointError(
                f"checkpoint {path} contains objects outside the allow-list of safe types "
                f"({unsafe.group(1)}); it was not loaded and nothing in it was run. A checkpoint holds "
                "tensors, numbers, strings, lists and dicts; load this file with "
                "torch.load(weights_only=False) only if you trust where it came from",
                path,
            ) from None
        raise CheckpointError(
            f"checkpoint {path} is not a PyTorch checkpoint that can be loaded safely (expected a file "
            f"written by torch.save or Lightning): {_first_line(e).split('. ')[0]}",
            path,
        ) from None
    except OSError:
        raise  # unreadable (permissions, I/O): the OS error names the file
    except Exception as e:  # anything else torch.load trips on (zip, legacy format, struct, ...)
        raise CheckpointError(
            f"checkpoint {path} is not a PyTorch checkpoint (expected a file written by torch.save or "
            f"Lightning, a zip archive holding data.pkl; torch.load says {_first_line(e)})",
            path,
        ) from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(obj).__name__}, not a checkpoint (a dict with a 'state_dict')",
            path,
        )
    if not isinstance(obj.get("state_dict"), Mapping):
        keys = sorted(map(str, obj))[:8]
        raise CheckpointError(
            f"checkpoint {path} has no 'state_dict' (its keys: {keys}); expected a Lightning checkpoint, "
            "as ModelCheckpoint or trainer.save_checkpoint write it",
            path,
        )
    return dict(obj)


def load_pretrained_weights(
    module: torch.nn.Module,
    path: str | Path,
    prefixes: tuple[str, ...] = ("frontend.", "backbone."),
    required: str = "backbone.",
) -> None:
    """Copy the ``prefixes`` weights of checkpoint ``path`` into ``module``, refusing (with
    :class:`CheckpointError` naming the file) a checkpoint without ``required`` weights, one whose
    weights have other shapes (both shapes named), other names, or non-finite values."""
    state = load_checkpoint(path)["state_dict"]
    keep = {k: v for k, v in state.items() if k.startswith(prefixes)}
    if not any(k.startswith(required) for k in keep):
        first = sorted(state)[:5]
        raise CheckpointError(
            f"pretrained_checkpoint {path} holds no {required}* weights (its state_dict has {len(state)} "
            f"entries, e.g. {first}); expected the checkpoint of a clusterlight module with a backbone",
            path,
        )
    own = module.state_dict()
    shapes = [
        f"{k}: checkpoint {tuple(v.shape)}, this model {tuple(own[k].shape)}"
        for k, v in keep.items()
        if k in own and isinstance(v, torch.Tensor) and v.shape != own[k].shape
    ]
    if shapes:
        more = f" (and {len(shapes) - 3} more)" if len(shapes) > 3 else ""
        raise CheckpointError(
            f"pretrained_checkpoint {path} does not fit this backbone: {'; '.join(shapes[:3])}{more}", path
        )
    missing = [k for k in own if k.startswith(required) and k not in keep]
    unexpected = [k for k in keep if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"pretrained_checkpoint {path} does not fit this backbone: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}",
            path,
        )
    bad = {
        k: int((~torch.isfinite(v)).sum())
        for k, v in keep.items()
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())
    }
    if bad:
        names = ", ".join(f"{k} ({n} of {keep[k].numel()} values)" for k, n in list(bad.items())[:3])
        raise CheckpointError(
            f"pretrained_checkpoint {path} holds non-finite (NaN/inf) weights: {names}"
            + (f" and {len(bad) - 3} more tensors" if len(bad) > 3 else "")
            + "; refusing to fine-tune from it (the pretraining diverged: use an earlier checkpoint)",
            path,
        )
    module.load_state_dict(keep, strict=False)
