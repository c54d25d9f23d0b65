"""What an object was built with, as ``{"class_path": ..., "init_args": {...}}``: the config that builds it
again (the form LightningCLI / jsonargparse read), so a checkpoint written from the Python API describes
its module as one written by the CLI does.

A class deriving from :class:`RecordsInitArgs` remembers the arguments each instance was constructed
with (the modules, the front end, the backbones, the centroid callback, the losses, reducers and
read-outs). Any other ``torch.nn.Module`` component (the distances of :mod:`clusterlight.distances`,
which take no arguments) is described by its attributes named like its ``__init__`` parameters;
:func:`init_config` says which one it could not describe.
"""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Mapping
from pathlib import PurePath

from torch import nn

RECORDED = "_recorded_init_args"
FORWARDING = "_recording_forwarded_args"
PLAIN = (bool, int, float, str, type(None))


class RecordsInitArgs:
    """Mixin: every subclass's ``__init__`` records its bound arguments, defaults included, in the
    instance (:func:`recorded_init_args`). The call of the class being built records; the
    ``super().__init__`` calls it makes add only what it forwarded through ``*args`` / ``**kwargs``
    (a subclass ``__init__(self, *args, extra=1, **kwargs)`` is recorded with its parent's arguments).
    A class without an ``__init__`` of its own records through the one it inherits (a base with no
    arguments records ``{}``)."""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__", cls.__init__)
        if not hasattr(init, RECORDED):
            cls.__init__ = _recording(init)  # type: ignore[method-assign]  # wraps each class's own __init__


def _recording(init):
    signature = inspect.signature(init)
    forwards = any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in signature.parameters.values())

    @functools.wraps(init)  # keeps the signature (``__wrapped__``) that jsonargparse reads
    def __init__(self, *args, **kwargs) -> None:
        state = self.__dict__  # plain dict entries: they work before nn.Module.__init__
        if RECORDED not in state or state.get(FORWARDING):
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            record = state.setdefault(RECORDED, {})
            for name, value in list(bound.arguments.items())[1:]:  # without self
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    for k, v in value.items():
                        record.setdefault(k, v)
                elif kind is not inspect.Parameter.VAR_POSITIONAL:  # those reach the parent as names
                    record.setdefault(name, value)
            state[FORWARDING] = forwards
        init(self, *args, **kwargs)

    setattr(__init__, RECORDED, True)
    return __init__


def recorded_init_args(obj) -> dict | None:
    """The arguments ``obj`` was built with, when its class records them (:class:`RecordsInitArgs`)."""
    return getattr(obj, "__dict__", {}).get(RECORDED)


def class_path(cls: type) -> str:
    if "<locals>" in cls.__qualname__:
        raise TypeError(f"{cls.__qualname__} is defined inside a function: no config can import it")
    return f"{cls.__module__}.{cls.__qualname__}"


def _attribute_args(obj) -> dict:
    """A non-recording component's arguments: its attributes named like its ``__init__`` parameters."""
    out = {}
    for name, p in inspect.signature(type(obj).__init__).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if not hasattr(obj, name):
            raise TypeError(
                f"{type(obj).__qualname__} neither records its init arguments (RecordsInitArgs) nor keeps "
                f"parameter {name!r} as an attribute of that name"
            )
        out[name] = getattr(obj, name)
    return out


def init_config(obj, where: str = "model") -> dict:
    """``{"class_path", "init_args"}`` of ``obj``, components described the same way, recursively.

    Raises ``TypeError`` naming the argument (``where``: its path, e.g. ``model.loss.distance``) that
    cannot be put in a config: a value that is neither plain data nor a describable object (a recording
    class, or a ``torch.nn.Module`` keeping its parameters as attributes), or a class defined inside a
    function."""
    args = recorded_init_args(obj)
    try:
        path = class_path(type(obj))
        if args is None:
            if not isinstance(obj, nn.Module):
                raise TypeError(f"a {type(obj).__qualname__} is no config value (plain data or a component)")
            args = _attribute_args(obj)
    except TypeError as e:
        raise TypeError(f"{where}: {e}") from None
    return {"class_path": path, "init_args": {k: _config_value(v, f"{where}.{k}") for k, v in args.items()}}


def _config_value(value, where: str):
    if type(value) in PLAIN:
        return value
    if isinstance(value, str):  # a str Enum, say
        return str(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_config_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _config_value(v, f"{where}.{k}") for k, v in value.items()}
    return init_config(value, where)
