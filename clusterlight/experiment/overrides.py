"""Command-line overrides of every stage config (``--trainer.max_epochs 2``, ``--model.init_args.lr=0.01``):
reading them from the command line, and checking them against each stage's LightningCLI parser."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from clusterlight.experiment.configs import OVERRIDE_SECTIONS, RESERVED_KEYS, OverrideError, stage_config
from clusterlight.lightning_cli import ClusterlightCLI

_SECTIONS = "|".join(OVERRIDE_SECTIONS)
_KEY = re.compile(rf"^--(?P<key>(?:{_SECTIONS})(?:\.[A-Za-z_]\w*)+)(?:=(?P<value>.*))?$")
_SECTION = re.compile(rf"^--(?:{_SECTIONS})(?:[.=+]|$)")


def split_overrides(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """``argv`` without the ``--trainer.* / --data.* / --model.* / --checkpoint.*`` overrides, and those
    as ``{dotted key: value}`` in command-line order (a repeated key: the last wins). Each takes one
    value, ``--key value`` or ``--key=value``, read as YAML (``2``, ``0.01``, ``null``, ``[0, 1]``,
    ``{a: 1}``, else a string)."""
    rest: list[str] = []
    overrides: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        m = _KEY.match(argv[i])
        if not m:
            if _SECTION.match(argv[i]):
                raise ValueError(
                    f"{argv[i]}: an override is --SECTION.KEY VALUE or --SECTION.KEY=VALUE with SECTION one "
                    f"of {', '.join(OVERRIDE_SECTIONS)} (e.g. --trainer.max_epochs 2)"
                )
            rest.append(argv[i])
            i += 1
            continue
        key, value = m.group("key"), m.group("value")
        if value is None:
            if i + 1 >= len(argv):
                raise ValueError(f"--{key}: no value given (--{key} VALUE or --{key}=VALUE)")
            value = argv[i + 1]
            i += 1
        i += 1
        if key in RESERVED_KEYS:
            raise ValueError(f"--{key}: {RESERVED_KEYS[key]}")
        overrides.pop(key, None)
        overrides[key] = _yaml_value(key, value)
    return rest, overrides


def _yaml_value(key: str, text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text  # e.g. "a: b: c": a plain string, as LightningCLI would take it


class _ParserReady(Exception):
    pass


class _ParserOnly(ClusterlightCLI):
    """Builds ClusterlightCLI's parser and stops before parsing anything (nothing is instantiated)."""

    def parse_arguments(self, parser, args) -> None:
        raise _ParserReady(parser)


def stage_parser():
    """ClusterlightCLI's parser (the one every stage config is parsed with), raising instead of exiting."""
    try:
        _ParserOnly(args={}, run=False)
    except _ParserReady as ready:
        parser = ready.args[0]
    parser.exit_on_error = False
    return parser


def _first_lines(message: str | BaseException, n: int = 12) -> str:
    """jsonargparse's message without the (long) echo of the given value."""
    lines = [ln for ln in str(message).splitlines() if not ln.strip().startswith("Given value")]
    return "\n".join(lines[:n])


def check_overrides(exp, exp_file: Path, overrides: dict[str, Any], methods: list[str], seed: int) -> None:
    """Parse every stage of ``methods`` with ``overrides`` (for ``seed``, without instantiating anything)
    and raise an ``OverrideError`` (a ``ValueError``) naming the key, the method and the stage when one
    is not accepted: a key the stage's classes do not have, or a value of the wrong type."""
    if not overrides:
        return
    parser = stage_parser()
    for method in methods:
        spec = exp.methods[method]
        placeholders = {stage.name: f"{stage.name}.ckpt" for stage in spec.stages}
        for stage in spec.stages:
            where = f"stage '{stage.name}' of method '{method}'"
            run_dir = Path("run") / stage.name
            config = stage_config(
                exp, stage, seed, run_dir, exp_file, placeholders, overrides, method
            )  # may raise
            try:
                namespace = parser.parse_object(config)
            except Exception as error:
                plain = stage_config(exp, stage, seed, run_dir, exp_file, placeholders, None, method)
                try:
                    known = parser.parse_object(plain)
                except Exception:
                    raise  # the stage fails without the overrides too: jsonargparse's own message
                culprits = []
                for key, value in overrides.items():
                    try:
                        parser.parse_object(
                            stage_config(
                                exp, stage, seed, run_dir, exp_file, placeholders, {key: value}, method
                            )
                        )
                    except Exception:
                        culprits.append(key)
                culprits = culprits or list(overrides)
                described = [
                    f"--{k}: {'invalid value ' + repr(overrides[k]) if k in known else 'no such key'}"
                    for k in culprits
                ]
                model = (config.get("model") or {}).get("class_path", "?")
                raise OverrideError(
                    f"{'; '.join(described)} in {where} (model {model}); "
                    f"LightningCLI says:\n{_first_lines(error)}"
                ) from None
            missing = [k for k in overrides if k not in namespace]
            if missing:
                raise OverrideError(f"{', '.join('--' + k for k in missing)}: no such key in {where}")
