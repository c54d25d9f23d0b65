"""From an experiment file to the full LightningCLI config of each stage, and the hash of a run's configs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from omegaconf import OmegaConf


def _load(path: Path, base: Path) -> dict:
    p = Path(path)
    return OmegaConf.to_container(
        OmegaConf.load(p if p.is_absolute() or p.exists() else base / p), resolve=True
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


def stage_config(exp, stage, seed: int, stage_dir: Path, exp_file: Path, checkpoints: dict[str, str]) -> dict:
    """The full LightningCLI config (a dict) of one stage of one method for one seed."""
    base = exp_file.parent
    parts = [_load(p, base) for p in [*exp.get("common", []), *stage.get("configs", [])]]
    parts += [
        OmegaConf.to_container(OmegaConf.create(node), resolve=True)
        for node in (exp.get("overrides", {}), stage.get("overrides", {}))
    ]
    merged: dict = {}
    for part in parts:
        merged = merge_configs(merged, part)
    cfg = OmegaConf.create(merged)
    cfg.seed_everything = seed
    cfg.data.init_args.seed = seed
    if exp.get("cross_validate"):  # seed s validates on part s of fold-wise cross-validation
        cfg.data.init_args.val_part = seed
    cfg.trainer.default_root_dir = str(stage_dir)
    logger = cfg.trainer.get("logger")
    if OmegaConf.is_dict(logger) and "init_args" in logger:
        logger.init_args.save_dir = str(stage_dir)
        if str(logger.class_path).endswith("WandbLogger"):
            logger.init_args.name = f"{exp.name}/{stage_dir.parent.name}/{stage.name}/seed{seed}"
            logger.init_args.group = str(exp.name)
    if stage.get("init_from"):
        cfg.model.init_args.pretrained_checkpoint = checkpoints[stage.init_from]
    return OmegaConf.to_container(cfg, resolve=True)


def run_hash(exp, spec, seed: int, exp_file: Path) -> str:
    """Hash of a method's resolved stage configs for one seed, wherever its run folder is:
    a saved result is reused only if it matches."""
    placeholders = {stage.name: f"<{stage.name} checkpoint>" for stage in spec.stages}
    configs = [
        stage_config(exp, stage, seed, Path("<run>") / stage.name, exp_file, placeholders)
        for stage in spec.stages
    ]
    return hashlib.sha1(json.dumps(configs, sort_keys=True, default=str).encode()).hexdigest()
