"""From an experiment file to the full LightningCLI config of each stage, and the hash of a run's configs."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from omegaconf import OmegaConf

# Keys of the top-level config sections a command-line override may address (``--trainer.max_epochs 2``).
OVERRIDE_SECTIONS = ("trainer", "data", "model", "checkpoint")
# Keys ``clusterlight experiment`` sets itself for every run: an override of them would be silently lost.
RESERVED_KEYS = {
    "seed_everything": "the experiment sets it to each seed: use --seeds",
    "data.init_args.seed": "the experiment sets it to each seed: use --seeds",
    "trainer.default_root_dir": "the experiment sets it to each stage's folder: use --output_dir",
}
# The W&B run identity ``stage_config`` gives a WandbLogger: a function of the experiment, method, seed and
# stage, so it is left out of the run hash (renaming the experiment or a method must not retrain anything).
WANDB_IDENTITY_KEYS = ("name", "group", "job_type", "tags", "config")


class OverrideError(ValueError):
    """A command-line override that cannot be applied: named with its key (and the method and stage)."""


def _load(path: Path, base: Path) -> dict:
    p = Path(path)
    # a config file holds a mapping
    return cast(
        dict,
        OmegaConf.to_container(
            OmegaConf.load(p if p.is_absolute() or p.exists() else base / p), resolve=True
        ),
    )


def merge_configs(base, override):
    """Deep-merge ``override`` into ``base`` (plain containers). A node whose ``class_path``
    changes is replaced whole, so the old class's ``init_args`` never leak into the new one."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return override
    if "class_path" in override and base.get("class_path", override["class_path"]) != override["class_path"]:
        return override
    out = dict(base)
    for k, v in override.items():
        out[k] = merge_configs(base[k], v) if k in base else v
    return out


def set_dotted(config: dict, key: str, value: Any, where: str = "the config") -> None:
    """Set ``config[a][b][c] = value`` for ``key = "a.b.c"`` (a copy of ``value``), creating missing
    mappings on the way; the value replaces what was there (a mapping too, as on LightningCLI's command
    line). Raises ``OverrideError`` naming the key when a node on the way holds something else."""
    node = config
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise OverrideError(
                f"--{key}: {'.'.join(parts[: i + 1])} is {child!r} in {where}, not a mapping; "
                f"set --{'.'.join(parts[: i + 1])} whole instead"
            )
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def _logger_nodes(config: dict) -> list[dict]:
    """The logger mappings (``class_path`` + ``init_args``) of a plain stage config."""
    logger = (config.get("trainer") or {}).get("logger")
    return [n for n in (logger if isinstance(logger, list) else [logger]) if isinstance(n, dict)]


def is_wandb(logger: Mapping) -> bool:
    return str(logger.get("class_path", "")).endswith("WandbLogger")


def wandb_tags(config: dict, method: str, seed: int) -> list[str]:
    """``[method, backbone class, ratio=6:1:2:16 | ratio=natural, seed=N]`` from a stage config."""
    model = (config.get("model") or {}).get("init_args") or {}
    backbone = (model.get("backbone") or {}).get("class_path")
    data = (config.get("data") or {}).get("init_args") or {}
    ratio = data.get("class_ratio")
    if isinstance(ratio, Mapping) and ratio:
        order = [c for c in data.get("classes") or [] if c in ratio] or list(ratio)
        ratio_tag = "ratio=" + ":".join(f"{ratio[c]:g}" for c in order)
    else:
        ratio_tag = "ratio=natural"
    tags = [method] + ([str(backbone).rsplit(".", 1)[-1]] if backbone else [])
    return [*tags, ratio_tag, f"seed={seed}"]


def stage_config(
    exp,
    stage,
    seed: int,
    stage_dir: Path,
    exp_file: Path,
    checkpoints: dict[str, str],
    overrides: Mapping[str, Any] | None = None,
    method: str | None = None,
) -> dict:
    """The full LightningCLI config (a dict) of one stage of one method for one seed.

    Merged in order: the experiment's ``common`` files, the stage's ``configs``, the experiment's and
    the stage's ``overrides``, then ``overrides`` (dotted keys, from the command line), then what the
    experiment sets per run: the seed, the folder, the checkpoint of ``init_from`` and, for a
    ``WandbLogger``, the run's identity (name ``method/seed<N>``, group = the experiment, job type =
    the stage, tags, and ``experiment.{name,method,seed,stage}`` in the W&B run config).
    ``method`` defaults to the name of ``stage_dir``'s parent folder.
    """
    base = exp_file.parent
    method = method or stage_dir.parent.name
    parts = [_load(p, base) for p in [*exp.get("common", []), *stage.get("configs", [])]]
    parts += [
        cast(dict, OmegaConf.to_container(OmegaConf.create(node), resolve=True))  # a mapping's overrides
        for node in (exp.get("overrides", {}), stage.get("overrides", {}))
    ]
    merged: dict = {}
    for part in parts:
        merged = merge_configs(merged, part)
    for key, value in (overrides or {}).items():
        set_dotted(merged, key, value, where=f"stage '{stage.name}' of method '{method}'")
    cfg = OmegaConf.create(merged)
    cfg.seed_everything = seed
    cfg.data.init_args.seed = seed
    if exp.get("cross_validate"):  # seed s validates on part s of fold-wise cross-validation
        cfg.data.init_args.val_part = seed
    cfg.trainer.default_root_dir = str(stage_dir)
    if stage.get("init_from"):
        cfg.model.init_args.pretrained_checkpoint = checkpoints[stage.init_from]
    out = cast(dict, OmegaConf.to_container(cfg, resolve=True))  # cfg: a DictConfig
    loggers = [n for n in _logger_nodes(out) if "class_path" in n]
    for logger in loggers:
        logger.setdefault("init_args", {})["save_dir"] = str(stage_dir)
    if any(is_wandb(n) for n in loggers):
        identity = {
            "name": f"{method}/seed{seed}",
            "group": str(exp.name),
            "job_type": str(stage.name),
            "config": {
                "experiment": {"name": str(exp.name), "method": method, "seed": seed, "stage": stage.name}
            },
        }
        tags = wandb_tags(out, method, seed)
        for logger in filter(is_wandb, loggers):
            own = [t for t in logger["init_args"].get("tags") or [] if t not in tags]
            logger["init_args"].update(identity, tags=[*own, *tags])
    return out


def _hashable(config: dict) -> dict:
    """``config`` without the W&B run identity (see ``WANDB_IDENTITY_KEYS``)."""
    if not any(is_wandb(n) for n in _logger_nodes(config)):
        return config
    config = copy.deepcopy(config)
    for logger in filter(is_wandb, _logger_nodes(config)):
        for key in WANDB_IDENTITY_KEYS:
            logger.get("init_args", {}).pop(key, None)
    return config


def stage_hashes(
    exp, spec, seed: int, exp_file: Path, overrides: Mapping[str, Any] | None = None
) -> list[str]:
    """Per stage of a method for one seed, the hash of its resolved config and of every stage before
    it, wherever the run folder is. Two methods whose stage ``k`` hashes agree train the same thing up
    to that stage (same configs, same seed, same checkpoints handed on), so the runner trains it once.
    Command-line ``overrides`` are part of the configs; the W&B run identity is not."""
    placeholders = {stage.name: f"<{stage.name} checkpoint>" for stage in spec.stages}
    configs = [
        _hashable(
            stage_config(
                exp, stage, seed, Path("<run>") / stage.name, exp_file, placeholders, overrides, "<method>"
            )
        )
        for stage in spec.stages
    ]
    return [
        hashlib.sha1(json.dumps(configs[: i + 1], sort_keys=True, default=str).encode()).hexdigest()
        for i in range(len(configs))
    ]


def run_hash(exp, spec, seed: int, exp_file: Path, overrides: Mapping[str, Any] | None = None) -> str:
    """Hash of a method's resolved stage configs for one seed (its last :func:`stage_hashes`): a saved
    result is reused only if it matches, so an overridden run and a plain one never stand for each other."""
    return stage_hashes(exp, spec, seed, exp_file, overrides)[-1]


def stage_epochs(config: dict) -> int | None:
    """The number of training epochs a stage config asks for (``trainer.max_epochs``; Lightning's
    default 1000 when neither it nor ``max_steps`` is set), or ``None`` when it is not bounded by epochs."""
    trainer = config.get("trainer") or {}
    max_epochs = trainer.get("max_epochs")
    if isinstance(max_epochs, int) and max_epochs >= 0:
        return max_epochs
    if max_epochs is None and trainer.get("max_steps", -1) in (-1, None):
        return 1000
    return None


def uses_wandb(config: dict) -> dict | None:
    """The ``init_args`` of the stage config's first ``WandbLogger``, or ``None``."""
    return next((n.get("init_args") or {} for n in _logger_nodes(config) if is_wandb(n)), None)
