"""The rare4 benchmark on real recordings: both fold directions, paired intervals, data-size curve.

rare4 is UrbanSound8K folds 1 and 2 reduced to four classes: dog_bark, car_horn, gun_shot, and the seven
other classes pooled as background. It runs configs/experiment/rare4_{lstm,cnn}.yaml in each direction:
``1to2`` trains on fold 1 and tests on fold 2 (configs/data/us8k_rare4.yaml), ``2to1`` trains on fold 2
and tests on fold 1 (us8k_rare4_fold2.yaml); each validates on a split carved from its own training fold
by source recording, and every checkpoint is chosen on it. One results folder per setting (backbone,
direction, training ratio, share of the training fold) under --out. The report (benchmarks/results/
rare4.{md,json,png}) has each setting's tables, the comparison pooled over the two directions
(benchmarks/pooling.py: every (direction, seed) run counts once, pairs and resamples stay
inside a direction), the data-size curve (the paper's recipe against class-weighted CE at each share of
the training fold, ``data.train_fraction``), and a forest plot of every method's pooled macro error
change against class-weighted CE with its 95% interval.

The data: ``--data_root`` (default: the environment variable CLUSTERLIGHT_RARE4_ROOT) is either
``--layout manifest`` (the default), a folder with ``labels.csv`` (columns ``path,label,fold,source_id``,
folds ``fold1`` and ``fold2``, paths relative to the folder) and the audio files it lists, or ``--layout
urbansound8k``, the original UrbanSound8K download (``metadata/UrbanSound8K.csv``, ``audio/foldN/``).
UrbanSound8K is licensed CC BY-NC 3.0: keep it outside the repository. ``--plan``, ``--render`` and
``--figure`` need no data.

By default it runs the default plan (``default_plan``: about 3 h on a 2-core CPU; ``--plan`` prints it
with the estimated time and exits). Blocks run in the plan's order of priority and finished runs are
reused (see clusterlight.experiment), so an interrupted benchmark continues where it stopped and a
shorter run keeps the most important blocks. ``--cv`` runs rare4_{lstm,cnn}_cv.yaml instead: the method
research by cross-validation inside each direction's own training fold (the variants in CHOSEN_ON_FOLD1
were chosen on fold 1, the test fold of 2to1). Not part of the test suite.

    python benchmarks/rare4.py --plan                      # the default plan and its estimated CPU time
    python benchmarks/rare4.py --data_root PATH            # run it, write benchmarks/results/rare4.*
    python benchmarks/rare4.py --data_root PATH --layout urbansound8k   # from the original download
    python benchmarks/rare4.py --data_root PATH --fractions 0.25 0.5 1.0   # the data-size curve only
    python benchmarks/rare4.py --data_root PATH --cv --directions 2to1     # cross-validation inside fold 2
    python benchmarks/rare4.py --render                    # rebuild the report from the runs under --out
    python benchmarks/rare4.py --figure benchmarks/results/rare4.json   # redraw rare4.png from a report
    python benchmarks/rare4.py --data_root PATH --backbones lstm --directions 2to1 \\
        --methods weighted_ce clustered --seeds 0 --trainer.max_epochs 1 --out /tmp/rare4 \\
        --results_dir /tmp/rare4                           # a smoke run
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from omegaconf import OmegaConf
from pooling import compare_pooled, pooled_markdown  # benchmarks/pooling.py, beside this script

from clusterlight.experiment import markdown_table, run_experiment, run_hash, split_overrides, stage_config
from clusterlight.experiment.choice import choose_on_validation
from clusterlight.experiment.configs import OverrideError, stage_epochs, stage_hashes
from clusterlight.experiment.markdown import ratio_cell, reduction_cell
from clusterlight.experiment.progress import duration
from clusterlight.experiment.runner import ExperimentRunsFailed, shared_stage
from clusterlight.version import __version__

ROOT = Path(__file__).resolve().parents[1]
ROOT_ENV = "CLUSTERLIGHT_RARE4_ROOT"  # the default of --data_root
DATA_ROOT = "DATA_ROOT"  # the data root as the report shows it
PROVENANCE = "provenance.jsonl"  # per setting folder: a line per benchmark call that ran its blocks
EXPERIMENTS = ROOT / "configs" / "experiment"
CLASSES = ["dog_bark", "car_horn", "gun_shot", "background"]
RATIOS = {"natural": None, "6:1:2:16": [6, 1, 2, 16], "2:2:1:26": [2, 2, 1, 26]}
# the training ratios with a headline table in the report, the paper's main one first
HEADLINE_RATIOS = ["2:2:1:26", "6:1:2:16"]
# each direction's data config (the experiment files name us8k_rare4.yaml, the 1to2 one, in `common`)
DIRECTIONS = {"1to2": "us8k_rare4.yaml", "2to1": "us8k_rare4_fold2.yaml"}
FOLDS = {"1to2": "train fold 1, test fold 2", "2to1": "train fold 2, test fold 1"}
BACKBONES = ["lstm", "cnn"]
REFERENCE, RECIPE = "weighted_ce", "clustered"  # the baseline and the paper's two-stage recipe
PEERS = ["ce", "oversample", "focal", "class_balanced", "ldam_drw", "balanced_softmax"]
# variance reduction and the method's read-outs (their pretraining is the recipe's, trained once per seed)
READOUTS = ["weighted_ce_ema", "clustered_ema", "clustered_ncm", "clustered_knn", "clustered_centroid_head"]
# the read-outs and joint fine-tuning compared with the recipe's plain linear head (same pretraining)
LINEAR_HEAD_ALTERNATIVES = ["clustered_ncm", "clustered_knn", "clustered_centroid_head", "clustered_joint"]
# the checkpoint chosen on a validation curve averaged over 3 epochs instead of the best single epoch
SMOOTHED = ["weighted_ce_smooth", "clustered_smooth"]
# equal terms: the recipe against the reference when both use the same variance-reduction rule
RULES = {"_ema": "EMA of the weights", "_smooth": "smoothed checkpoint rule"}
# chosen by 5-fold cross-validation inside fold 1 (results/method_research.md): a fair choice for 1to2 only
CHOSEN_ON_FOLD1 = ["clustered_joint", "weighted_ce_bgmix", "clustered_joint_bgmix"]
# the best clustered variant as validation picks it, per direction (a procedure, compared like a method)
CHOSEN, MIN_CHOICE_SEEDS = "clustered_chosen_on_val", 5

# ---- the cost model -------------------------------------------------------------------------------------
# Wall seconds on a 2-core x86-64 CPU with nothing else running, torch's default 2 threads, per training
# epoch (training and its validation pass) of each kind of stage at 2:2:1:26 on the whole training fold
# (515 clips, the mean over both directions), per stage outside its epochs (set-up, sanity check), and per
# run for the test at its end (and the validation of the selected checkpoint). Measured with clusterlight
# 0.1.0 on 2026-11-28: seed 0 of weighted_ce and clustered in direction 2to1 (651 training clips), 3 epochs
# a stage, at train_fraction 1 and 0.25, timing the process CPU seconds of each epoch with
# torch.set_num_threads(1) (CPU time does not depend on other load on the machine, wall time does). One-
# thread CPU seconds per epoch at 651 clips: LSTM classifier 5.0, pretrain 8.1, fine-tune 8.6; CNN 5.0,
# 7.7, 5.5; then scaled to 515 clips (FIXED_SHARE) and to two threads by 0.67 (LSTM) and 0.85 (CNN): the
# ratio of the two-thread wall times of the same configs in benchmarks/results/rare4_one_direction.json
# (fold 1, 2:2:1:26: LSTM weighted_ce 85 s, clustered 130 s; CNN 53 s, 78 s a run) to this model in CPU
# seconds.
EPOCH_S = {
    ("lstm", "Classifier"): 2.8,
    ("lstm", "EmbeddingPretrain"): 4.5,
    ("lstm", "JointFinetune"): 4.8,
    ("cnn", "Classifier"): 3.5,
    ("cnn", "EmbeddingPretrain"): 5.4,
    ("cnn", "JointFinetune"): 3.8,
}
STAGE_OVERHEAD_S = {"lstm": 1.5, "cnn": 2.5}
TEST_S = {"lstm": 4.0, "cnn": 4.0}
# The share of an epoch's time that does not shrink with the training clips (mostly the validation pass):
# epoch(f) = epoch(1) x (FIXED_SHARE + (1 - FIXED_SHARE) x f), from the same runs at train_fraction 0.25
# (one-thread CPU seconds per epoch at 0.25 over those at 1: LSTM 0.44, 0.42, 0.40; CNN 0.30, 0.33, 0.46).
FIXED_SHARE = {"lstm": 0.2, "cnn": 0.15}
# Training clips at each ratio relative to 2:2:1:26 (the whole training fold less its validation carve;
# means over both directions and seeds 0-1: 515 clips at 2:2:1:26, 330 at 6:1:2:16, 698 at the natural ratio).
RATIO_CLIPS = {"2:2:1:26": 1.0, "6:1:2:16": 0.64, "natural": 1.36}


@dataclass(frozen=True)
class Data:
    """Where the rare4 clips are (``--data_root``) and how they are laid out (``--layout``, see LAYOUTS).
    It replaces the root, and for ``urbansound8k`` the source and the fold names, of the data configs."""

    root: str
    layout: str = "manifest"

    @property
    def index(self) -> Path:
        """The file that lists the clips."""
        return Path(self.root) / LAYOUT_INDEX[self.layout]

    def missing(self) -> str | None:
        """What is wrong with the root (None when its index file is there)."""
        if self.index.is_file():
            return None
        return (
            f"{self.index} not found. --layout {self.layout} expects {LAYOUTS[self.layout]}.\n"
            + layouts_help()
        )

    def apply(self, init_args, direction: str) -> None:
        """Set the data source of ``init_args`` (the experiment's ``overrides.data.init_args``) for one
        direction: the manifest layout keeps the config's source with this root; the UrbanSound8K layout
        swaps in ``UrbanSound8KSource``, whose folds are named ``1``, ``2`` (not ``fold1``, ``fold2``)."""
        if self.layout == "manifest":
            init_args.source = {"init_args": {"root": self.root}}
            return
        folds = OmegaConf.load(ROOT / "configs" / "data" / DIRECTIONS[direction]).data.init_args
        init_args.source = {
            "class_path": "clusterlight.data.UrbanSound8KSource",
            "init_args": {"root": self.root},
        }
        init_args.train_folds = [str(f).removeprefix("fold") for f in folds.train_folds]
        init_args.test_folds = [str(f).removeprefix("fold") for f in folds.test_folds]


# what --data_root holds in each --layout, and the file that lists its clips
LAYOUTS = {
    "manifest": "a folder with labels.csv (columns path,label,fold,source_id; folds fold1 and fold2; paths "
    "relative to the folder) and the audio files it lists, e.g. UrbanSound8K folds 1 and 2",
    "urbansound8k": "the original UrbanSound8K download: metadata/UrbanSound8K.csv and audio/fold1 ... "
    "audio/fold10",
}
LAYOUT_INDEX = {"manifest": "labels.csv", "urbansound8k": "metadata/UrbanSound8K.csv"}


def layouts_help() -> str:
    return "\n".join(f"  --layout {name}: {what}" for name, what in LAYOUTS.items())


@dataclass(frozen=True)
class Setting:
    """One results folder: a backbone, a direction, a training ratio and share of the training fold, and
    whether it is the cross-validation experiment."""

    backbone: str
    direction: str
    ratio: str = "2:2:1:26"
    fraction: float = 1.0
    cv: bool = False

    @property
    def name(self) -> str:
        if self.cv:
            return f"rare4_cv_{self.backbone}_{self.direction}"
        fraction = "" if self.fraction == 1 else f"_f{self.fraction:g}"
        return f"rare4_{self.backbone}_{self.ratio.replace(':', '-')}_{self.direction}{fraction}"

    @property
    def title(self) -> str:
        kind = "cross-validation inside the training fold, " if self.cv else ""
        return (
            f"{self.backbone.upper()}, {self.direction} ({FOLDS[self.direction]}), {kind}train ratio "
            f"{self.ratio}, {self.fraction:.0%} of the training fold"
        )


NAME = re.compile(
    r"^rare4_(?:(?P<cv>cv)_(?P<cv_backbone>lstm|cnn)|(?P<backbone>lstm|cnn)_(?P<ratio>natural|\d+-\d+-\d+-\d+))"
    r"_(?P<direction>1to2|2to1)(?:_f(?P<fraction>[0-9.]+))?$"
)


def parse_name(name: str) -> Setting | None:
    """The setting of a results folder's name (None for any other folder)."""
    m = NAME.match(name)
    if m is None:
        return None
    if m["cv"]:
        return Setting(m["cv_backbone"], m["direction"], cv=True)
    return Setting(m["backbone"], m["direction"], m["ratio"].replace("-", ":"), float(m["fraction"] or 1))


@dataclass(frozen=True)
class Block:
    """One call of the experiment runner: these methods and seeds in one setting."""

    setting: Setting
    methods: tuple[str, ...]
    seeds: tuple[int, ...]


def _blocks(backbones, directions, methods, seeds, ratio="2:2:1:26", fraction=1.0, cv=False) -> list[Block]:
    return [
        Block(Setting(b, d, ratio, fraction, cv), tuple(methods), tuple(seeds))
        for b in backbones
        for d in directions
    ]


def default_plan() -> list[Block]:
    """The default plan, in priority order, about 3 h on a 2-core CPU (``--plan``): the baseline and the
    paper's recipe at 2:2:1:26 with 8 seeds in both directions; clustered_joint (the best clustered
    variant, chosen by cross-validation inside fold 1) with 5 seeds in 1to2 only, where that choice was
    made without its test fold; the data-size curve at 25% and 50% of the training fold (100% is the
    first blocks) with 5 seeds in both directions. Next in priority: ``left_out_plan``."""
    both = list(DIRECTIONS)
    headline = [REFERENCE, RECIPE]
    return [
        *_blocks(BACKBONES, both, headline, range(8)),
        *_blocks(BACKBONES, ["1to2"], ["clustered_joint"], range(5)),
        *(b for f in (0.25, 0.5) for b in _blocks(BACKBONES, both, headline, range(5), fraction=f)),
    ]


def left_out_plan() -> list[Block]:
    """What the default plan leaves out to stay near 3 h, next in priority: weight averaging and the
    method's read-outs with 5 seeds in both directions (candidates for the best clustered variant,
    chosen on validation; they reuse the recipe's pretraining of the same seed); the smoothed checkpoint
    rule for the reference and the recipe; the six peers with 3 seeds in 1to2, then in 2to1; the
    headline pair at 6:1:2:16 with 5 seeds (its peers were dropped first)."""
    return [
        *_blocks(BACKBONES, list(DIRECTIONS), READOUTS, range(5)),
        *_blocks(BACKBONES, list(DIRECTIONS), SMOOTHED, range(5)),
        *_blocks(BACKBONES, ["1to2"], PEERS, range(3)),
        *_blocks(BACKBONES, ["2to1"], PEERS, range(3)),
        *_blocks(BACKBONES, list(DIRECTIONS), [REFERENCE, RECIPE], range(5), ratio="6:1:2:16"),
    ]


# ---- the experiments ------------------------------------------------------------------------------------
def experiment(setting: Setting, accelerator: str | None = None, data: Data | None = None):
    """``(experiment file, loaded experiment)`` of a setting: the file with the direction's data config, the
    data source (``data``; without it the config's placeholder root stays), the ratio and the share of the
    training fold set."""
    exp_file = EXPERIMENTS / f"rare4_{setting.backbone}{'_cv' if setting.cv else ''}.yaml"
    exp = OmegaConf.load(exp_file)
    common = [str(c) for c in exp.common]
    at = [i for i, c in enumerate(common) if Path(c).name == DIRECTIONS["1to2"]]
    if len(at) != 1:
        raise SystemExit(f"{exp_file}: `common` must name ../data/{DIRECTIONS['1to2']} once, got {common}")
    common[at[0]] = str(Path(common[at[0]]).parent / DIRECTIONS[setting.direction])
    exp.common = common
    if data is not None:
        data.apply(exp.overrides.data.init_args, setting.direction)
    if not setting.cv:  # the cross-validation files fix their own ratio (2:2:1:26)
        ratio = RATIOS[setting.ratio]
        exp.overrides.data.init_args.class_ratio = None if ratio is None else dict(zip(CLASSES, ratio))
    if (
        setting.fraction != 1
    ):  # at 1 the override is left out, so the full-data runs are shared with other plans
        exp.overrides.data.init_args.train_fraction = setting.fraction
    if accelerator:
        exp.overrides.trainer.accelerator = accelerator
        if accelerator == "gpu":
            exp.overrides.trainer.precision = "bf16-mixed"
    exp.name = setting.name
    return exp_file, exp


def stage_seconds(setting: Setting, stage_cfg: dict) -> float:
    """Estimated CPU seconds of one stage (see the cost model above)."""
    kind = stage_cfg["model"]["class_path"].rsplit(".", 1)[-1]
    epochs = stage_epochs(stage_cfg) or 0
    train_fraction = stage_cfg["data"]["init_args"].get("train_fraction", 1.0)
    fixed = FIXED_SHARE[setting.backbone]
    scale = fixed + (1 - fixed) * RATIO_CLIPS[setting.ratio] * train_fraction
    return STAGE_OVERHEAD_S[setting.backbone] + epochs * EPOCH_S[setting.backbone, kind] * scale


@dataclass
class PlannedRun:
    block: Block
    method: str
    seed: int
    seconds: float
    finished: bool


def planned_runs(
    blocks: list[Block], out: Path, overrides: dict, accelerator: str | None, data: Data | None = None
) -> list[PlannedRun]:
    """Every (block, method, seed) with its estimated seconds and whether a finished run with the same
    configs is in ``out`` already (it would be reused; the data root is part of the configs, so only with
    the ``data`` the runs were made with). A stage another method of the plan (or a finished one in
    ``out``) trains with the same configs and seed is shared (:func:`shared_stage`), so it is counted
    once."""
    runs, counted = [], set()
    for block in blocks:
        exp_file, exp = experiment(block.setting, accelerator, data)
        unknown = sorted(set(block.methods) - set(exp.methods))
        if unknown:
            raise SystemExit(f"{exp_file}: no method(s) {unknown}; it has {list(exp.methods)}")
        for method in block.methods:
            spec = exp.methods[method]
            placeholders = {stage.name: f"<{stage.name} checkpoint>" for stage in spec.stages}
            cfgs = [  # epochs and stage kinds do not depend on the seed
                stage_config(
                    exp, st, block.seeds[0], Path("<plan>"), exp_file, placeholders, overrides, method
                )
                for st in spec.stages
            ]
            for seed in block.seeds:
                chain = stage_hashes(exp, spec, seed, exp_file, overrides)
                seed_dir = out / exp.name / f"seed{seed}"
                secs = TEST_S[block.setting.backbone]
                for st, cfg, h in zip(spec.stages, cfgs, chain):
                    if (exp.name, seed, h) not in counted and shared_stage(seed_dir, st.name, h) is None:
                        secs += stage_seconds(block.setting, cfg)
                    counted.add((exp.name, seed, h))
                saved = seed_dir / method / "result.json"
                record = json.loads(saved.read_text()) if saved.is_file() else {}
                finished = (
                    record.get("status", "finished") == "finished"
                    and "config_hash" in record
                    and record["config_hash"] == run_hash(exp, spec, seed, exp_file, overrides)
                )
                runs.append(PlannedRun(block, method, seed, secs, finished))
    return runs


def seeds_text(seeds) -> str:
    """``0-7``, ``0, 2, 5``."""
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def plan_text(runs: list[PlannedRun], what: str) -> str:
    """The plan as a table, one row per block, with the estimated CPU time of what is left to run."""
    lines = [
        f"rare4 plan ({what}). Estimated CPU time: run time on a 2-core x86-64 CPU running nothing else "
        "(the cost model in benchmarks/rare4.py), of the runs still to do (finished runs are reused).",
        "",
        "| # | backbone | direction | ratio | train share | methods | seeds | runs | to run | est. | total |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    total, blocks = 0.0, list(dict.fromkeys(r.block for r in runs))
    for i, block in enumerate(blocks, 1):
        mine = [r for r in runs if r.block == block]
        todo = sum(r.seconds for r in mine if not r.finished)
        total += todo
        s = block.setting
        lines.append(
            f"| {i} | {s.backbone}{' (cv)' if s.cv else ''} | {s.direction} | {s.ratio} | {s.fraction:.0%} | "
            f"{', '.join(block.methods)} | {seeds_text(block.seeds)} | {len(mine)} | "
            f"{sum(not r.finished for r in mine)} | {duration(todo)} | {duration(total)} |"
        )
    n_done = sum(r.finished for r in runs)
    lines += [
        "",
        f"{len(runs)} runs ({len(runs) - n_done} to run, {n_done} finished and reused): estimated CPU time "
        f"{duration(total)} ({total / 3600:.2f} h).",
    ]
    unfair = sorted(
        {r.method for r in runs if r.method in CHOSEN_ON_FOLD1 and r.block.setting.direction == "2to1"}
    )
    if unfair:
        lines.append(
            f"Note: {', '.join(unfair)} were chosen by cross-validation inside fold 1, the test fold of "
            "2to1; choose on fold 2 first (--cv --directions 2to1)."
        )
    return "\n".join(lines)


def select_plan(a) -> tuple[list[Block], str]:
    """The blocks the command line asks for, and a description of them."""
    backbones = a.backbones or BACKBONES
    directions = a.directions or list(DIRECTIONS)
    if a.cv:
        blocks = []
        for b in backbones:
            exp = OmegaConf.load(EXPERIMENTS / f"rare4_{b}_cv.yaml")  # seed s validates on part s
            blocks += _blocks(
                [b], directions, a.methods or list(exp.methods), a.seeds or list(exp.seeds), cv=True
            )
        return blocks, "cross-validation inside each direction's training fold"
    if a.fractions:
        methods, seeds = a.methods or [REFERENCE, RECIPE], a.seeds or list(range(5))
        blocks = [
            b
            for ratio in a.ratios or ["2:2:1:26"]
            for f in a.fractions
            for b in _blocks(backbones, directions, methods, seeds, ratio, f)
        ]
        return blocks, "the data-size curve"
    if a.methods or a.seeds or a.full:
        blocks = []
        for b in backbones:
            exp = OmegaConf.load(EXPERIMENTS / f"rare4_{b}.yaml")
            methods, seeds = a.methods or list(exp.methods), a.seeds or list(exp.seeds)
            for ratio in a.ratios or list(RATIOS):
                blocks += _blocks([b], directions, methods, seeds, ratio)
        return blocks, "from the command line"
    return filtered(default_plan(), a), "the default plan"


def filtered(blocks: list[Block], a) -> list[Block]:
    """The blocks with the command line's backbones, directions and ratios (all when not given)."""
    return [
        b
        for b in blocks
        if b.setting.backbone in (a.backbones or BACKBONES)
        and b.setting.direction in (a.directions or DIRECTIONS)
        and (not a.ratios or b.setting.ratio in a.ratios)
    ]


# ---- running and reporting --------------------------------------------------------------------------------
def machine(accelerator: str | None) -> str:
    """The machine kind, e.g. ``2-core x86-64 CPU`` (and the GPU's name when the runs use one)."""
    kind = f"{os.cpu_count()}-core {platform.machine().replace('_', '-')} CPU"
    if accelerator == "gpu":
        import torch

        if torch.cuda.is_available():
            kind += f", {torch.cuda.get_device_name()}"
    return kind


def run_blocks(
    blocks: list[Block], out: Path, overrides: dict, accelerator: str | None, data: Data, command: str = ""
) -> list[str]:
    """Run each block in order (each writes its setting's results.json, and a line of PROVENANCE: the
    date, the machine kind, the clusterlight version and the command); the failure messages."""
    failures = []
    for block in blocks:
        exp_file, exp = experiment(block.setting, accelerator, data)
        record = {
            "date": datetime.date.today().isoformat(),
            "machine": machine(accelerator or "cpu"),
            "clusterlight": __version__,
            "command": command,
        }
        (out / exp.name).mkdir(parents=True, exist_ok=True)
        with open(out / exp.name / PROVENANCE, "a") as f:
            f.write(json.dumps(record) + "\n")
        try:
            run_experiment(
                exp_file,
                str(out / exp.name),
                list(block.seeds),
                exp=exp,
                methods=list(block.methods),
                overrides=overrides,
            )
        except ExperimentRunsFailed as e:  # recorded and shown as failed; the other blocks still run
            failures.append(str(e))
    return failures


def _runs(result: dict) -> dict[str, dict[int, dict]]:
    return {m: {int(s): r for s, r in per.items()} for m, per in result["runs"].items()}


def _std_ratio_cell(entry: dict) -> str:
    """The seed std ratio of a compared method's entry (``compare`` or ``compare_pooled``)."""
    return ratio_cell(entry.get("std_ratio"))


def _better_cell(entry: dict) -> str:
    """The (direction, seed) runs a method beats the reference on, of those both ran (a tie counts half)."""
    n = len(entry.get("shared_seeds") or [])
    return f"{(entry.get('share_better') or 0) * n:g}/{n}"


def validation_choice(setting: Setting, runs: dict[str, dict[int, dict]]) -> tuple[str | None, dict]:
    """The clustered variant (a method named ``clustered*``) whose selected checkpoints have the lowest mean
    validation macro error on the seeds every candidate with ``MIN_CHOICE_SEEDS``+ seeds has
    (``clusterlight.experiment.choice``, as ``choose_on_validation`` in an experiment file), and every
    candidate's mean. Test errors are never read. In 2to1 the variants chosen on fold 1 (its test fold)
    are left out, and the smoothed checkpoint rule's everywhere."""
    candidates = [
        m
        for m in runs
        if m.startswith(RECIPE)
        and m not in (CHOSEN, *SMOOTHED)  # another checkpoint rule: never ahead on validation (choice.py)
        and not (setting.direction == "2to1" and m in CHOSEN_ON_FOLD1)
    ]
    chosen, means, _ = choose_on_validation(runs, candidates, MIN_CHOICE_SEEDS)
    return chosen, means


def direction_choices(
    backbone: str, ratio: str, fraction: float, runs: dict[str, dict[str, dict[int, dict]]]
) -> dict[str, str]:
    """``{direction: the variant CHOSEN stands for}`` given each direction's runs, or ``{}`` unless every
    direction has a choice and some had more than one candidate (the tables and the figure alike)."""
    choices = {d: validation_choice(Setting(backbone, d, ratio, fraction), r) for d, r in runs.items()}
    if all(c for c, _ in choices.values()) and any(len(m) > 1 for _, m in choices.values()):
        return {d: c for d, (c, _) in choices.items()}
    return {}


def pooled_comparisons(results: dict[Setting, dict]) -> dict[tuple, dict]:
    """``{(backbone, ratio, fraction): compare_pooled over the directions}`` for every non-CV setting
    that has finished runs of the reference in both directions. Where validation had a choice between
    clustered variants in either direction, the choice per direction joins as ``CHOSEN``."""
    groups: dict[tuple, dict[str, dict]] = {}
    for s, result in results.items():
        if not s.cv and REFERENCE in result.get("summary", {}):
            groups.setdefault((s.backbone, s.ratio, s.fraction), {})[s.direction] = _runs(result)
    for (backbone, ratio, fraction), strata in groups.items():
        for d, chosen in direction_choices(backbone, ratio, fraction, strata).items():
            strata[d][CHOSEN] = strata[d][chosen]
    return {
        key: compare_pooled(dict(sorted(strata.items())), REFERENCE, CLASSES)
        for key, strata in sorted(groups.items())
        if len(strata) == len(DIRECTIONS)
    }


def curve_table(results: dict[Setting, dict], pooled: dict[tuple, dict]) -> list[str]:
    """The data-size curve: the recipe's macro error reduction against the reference per share of the
    training fold, per direction and pooled, and the pooled seed std ratio (only when some setting has a
    share below 100%)."""
    curves = sorted({(s.backbone, s.ratio) for s in results if not s.cv and s.fraction < 1})
    if not curves:
        return []
    lines = [
        f"## Data-size curve: {RECIPE} vs {REFERENCE}, macro error reduction and std ratio [95% interval]",
        "",
        "| backbone | ratio | train share | 1to2 | 2to1 | pooled | std ratio, pooled "
        "| (direction, seed) runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for backbone, ratio in curves:
        fractions = sorted({s.fraction for s in results if (s.backbone, s.ratio) == (backbone, ratio)})
        for f in fractions:
            cells = []
            for d in DIRECTIONS:
                r = results.get(Setting(backbone, d, ratio, f))
                m = (r or {}).get("comparison", {}).get("methods", {}).get(RECIPE) or {}
                cells.append(reduction_cell((m.get("reduction") or {}).get("macro_err")))
            p = pooled.get((backbone, ratio, f), {}).get("methods", {}).get(RECIPE) or {}
            pairs = len(p.get("shared_seeds") or [])
            red = reduction_cell((p.get("reduction") or {}).get("macro_err"))
            cells += [red, _std_ratio_cell(p), str(pairs)]
            lines.append(f"| {backbone} | {ratio} | {f:.0%} | " + " | ".join(cells) + " |")
    legend = "Positive = fewer errors than the reference; * = interval excludes 0 (std ratio: 1)."
    return [*lines, "", legend, ""]


def _mean_std(result: dict | None, method: str) -> str:
    macro = ((result or {}).get("summary", {}).get(method) or {}).get("macro_err")
    return "-" if not macro else f"{macro['mean']:.3f} ± {macro['std']:.3f} ({len(macro['values'])})"


def headline_table(results: dict[Setting, dict], pooled: dict[tuple, dict], ratio: str) -> list[str]:
    """One row per method and backbone on the whole training fold at one training ratio, pooled over both
    directions: the macro errors per direction, the pooled reduction and seed std ratio with their
    intervals, and the share of better runs."""
    rows = []
    for (backbone, r, fraction), comparison in pooled.items():
        if r != ratio or fraction != 1:
            continue
        per_direction = {d: results.get(Setting(backbone, d, ratio, fraction)) for d in DIRECTIONS}
        for method, entry in comparison["methods"].items():
            if method == REFERENCE:
                continue
            errors = " | ".join(
                f"{_mean_std(r, REFERENCE)} vs "
                + (
                    _mean_std(r, method)
                    if method != CHOSEN
                    else f"{validation_choice(Setting(backbone, d, ratio), _runs(r))[0]}"
                )
                for d, r in per_direction.items()
            )
            red = (entry.get("reduction") or {}).get("macro_err")
            rows.append(
                f"| {backbone.upper()} | {method} | {errors} | {reduction_cell(red)} | "
                f"{_std_ratio_cell(entry)} | {_better_cell(entry)} |"
            )
    if not rows:
        return []
    return [
        f"## Headline: {ratio}, whole training fold, against {REFERENCE}, pooled over both directions",
        "",
        f"Macro test error, mean ± seed std (seeds), {REFERENCE} vs the method, per direction; the pooled "
        "macro error reduction (positive = fewer errors than the reference) and seed std ratio (method / "
        "reference) with 95% intervals (* = excludes 0, or 1 for the ratio); the (direction, seed) runs the "
        "method is better on (a tie counts half).",
        "",
        f"| backbone | method | 1to2: {REFERENCE} vs method | 2to1: {REFERENCE} vs method | "
        "macro reduction | std ratio | runs better |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def paired_row(backbone: str, runs: dict[str, dict], ref: str, method: str, label: str) -> str | None:
    """One table row: ``method`` against ``ref`` pooled over the directions where both ran (listed), with
    the macro error reduction, the seed std ratio and the runs better; None where no run is shared."""
    directions = [d for d in DIRECTIONS if runs.get(d, {}).get(ref) and runs[d].get(method)]
    if not directions:
        return None
    strata = {d: {ref: runs[d][ref], method: runs[d][method]} for d in directions}
    entry = compare_pooled(strata, ref, CLASSES)["methods"][method]
    if not entry["shared_seeds"]:
        return None
    red = (entry.get("reduction") or {}).get("macro_err")
    cells = [backbone.upper(), label, f"{method} vs {ref}", ", ".join(directions), reduction_cell(red)]
    return "| " + " | ".join([*cells, _std_ratio_cell(entry), _better_cell(entry)]) + " |"


def paired_table(results: dict[Setting, dict], title: str, pairs: list[tuple[str, str, str]]) -> list[str]:
    """A section of :func:`paired_row` rows, ``(reference, method, label)`` per pair and backbone, at 2:2:1:26
    on the whole training fold (empty when no pair has a shared run)."""
    rows = []
    for backbone in BACKBONES:
        runs = {d: _runs(r) for d in DIRECTIONS if (r := results.get(Setting(backbone, d)))}
        rows += [r for ref, m, label in pairs if (r := paired_row(backbone, runs, ref, m, label))]
    if not rows:
        return []
    return [
        f"## {title}: 2:2:1:26, whole training fold, pooled over the directions listed",
        "",
        "Macro error reduction and seed std ratio (method / reference) with 95% intervals (* = excludes 0, "
        "or 1 for the ratio), and the share of (direction, seed) runs the method is better on (a tie counts "
        "half).",
        "",
        "| backbone | comparison | method vs reference | directions | macro reduction | std ratio "
        "| runs better |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def equal_terms_table(results: dict[Setting, dict]) -> list[str]:
    """Each variance-reduction rule (``RULES``) on equal terms: the rule's effect on the reference and on
    the recipe (against the same method without it), and the recipe against the reference when both use
    it."""
    pairs = [
        pair
        for suffix, rule in RULES.items()
        for pair in (
            (REFERENCE, REFERENCE + suffix, f"{rule}: its effect on {REFERENCE}"),
            (RECIPE, RECIPE + suffix, f"{rule}: its effect on {RECIPE}"),
            (REFERENCE + suffix, RECIPE + suffix, f"{rule}: {RECIPE} vs {REFERENCE}, both with it"),
        )
    ]
    return paired_table(results, "Variance reduction on equal terms", pairs)


def readout_table(results: dict[Setting, dict]) -> list[str]:
    """The method's other read-outs and its joint fine-tuning against its plain linear head (the recipe,
    whose pretraining they share, same seed)."""
    pairs = [(RECIPE, m, f"{m} vs the linear head") for m in LINEAR_HEAD_ALTERNATIVES]
    return paired_table(results, f"The method's read-outs against its linear head ({RECIPE})", pairs)


def choice_table(results: dict[Setting, dict]) -> list[str]:
    """Which clustered variant each direction's validation picks (``CHOSEN`` in the pooled tables), with
    every candidate's mean validation macro error (only where there was a choice)."""
    rows = []
    for s, result in sorted(results.items(), key=lambda item: item[0].name):
        if s.cv:
            continue
        chosen, means = validation_choice(s, _runs(result))
        if len(means) > 1:
            listed = ", ".join(f"{m} {v:.3f}" for m, v in sorted(means.items(), key=lambda kv: kv[1]))
            rows.append(
                f"| {s.backbone} | {s.direction} | {s.ratio} | {s.fraction:.0%} | {chosen} | {listed} |"
            )
    if not rows:
        return []
    return [
        f"## The best clustered variant, chosen on validation ({CHOSEN})",
        "",
        "Per direction, the clustered variant with the lowest mean validation macro error of its selected "
        f"checkpoints, on the seeds the candidates share (each with at least {MIN_CHOICE_SEEDS} seeds; in "
        "2to1 not the variants chosen on fold 1); the pooled tables compare that choice, direction by "
        f"direction, with {REFERENCE}. Test errors play no part.",
        "",
        "| backbone | direction | ratio | train share | chosen | candidates: mean validation macro error |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def without_clips(result: dict) -> dict:
    """``result`` without each run's per-clip predictions and labels, test and validation (they stay in the
    runs' result.json under --out, where --render reads them), so that the committed JSON stays small."""

    def strip(r: dict) -> dict:
        return {k: strip(v) if k == "val" else v for k, v in r.items() if k not in ("predictions", "labels")}

    runs = {m: {s: strip(r) for s, r in per.items()} for m, per in result.get("runs", {}).items()}
    return {**result, "runs": runs}


# ---- the forest plot -------------------------------------------------------------------------------------
# its setting (the headline's), and its groups of methods, top to bottom; a method in none of them goes last
FOREST_SETTING = ("2:2:1:26", 1.0)
HIGHLIGHTED = "the paper's recipe and the validation choice"
FOREST_GROUPS = {
    HIGHLIGHTED: [RECIPE, CHOSEN],
    "other clustered variants (same pretraining)": [
        m for m in dict.fromkeys([*LINEAR_HEAD_ALTERNATIVES, *READOUTS, *SMOOTHED]) if m.startswith(RECIPE)
    ],
    "class-weighted CE with variance reduction": [
        m for m in (*READOUTS, *SMOOTHED) if m.startswith(REFERENCE)
    ],
    "other losses and sampling": PEERS,
}
OTHER_GROUP = "other methods"
HIGHLIGHT = {RECIPE: "tab:red", CHOSEN: "tab:blue"}  # every other method is drawn in grey


@dataclass(frozen=True)
class ForestRow:
    """One method of the forest plot: its pooled macro error reduction against the reference and its 95%
    interval, in percent (positive = fewer errors), and the (direction, seed) runs it pools."""

    group: str
    method: str
    estimate: float
    low: float | None
    high: float | None
    runs: int
    directions: tuple[str, ...]

    @property
    def label(self) -> str:
        only = "" if len(self.directions) == len(DIRECTIONS) else f", {', '.join(self.directions)} only"
        return f"{self.method} ({self.runs} runs{only})"


def forest_rows(comparison: dict) -> list[ForestRow]:
    """The rows of one panel from a pooled comparison (:func:`compare_pooled`, or an entry of the report
    JSON's ``pooled``): every method but the reference that has a macro error reduction, grouped as in
    FOREST_GROUPS, the recipe and the validation choice in that order, then from the largest reduction down
    within each group."""
    group_of = {m: g for g, methods in FOREST_GROUPS.items() for m in methods}
    rows = []
    for method, entry in comparison["methods"].items():
        red = (entry.get("reduction") or {}).get("macro_err") or {}
        if method == comparison["reference"] or red.get("estimate") is None:
            continue
        pairs = entry.get("shared_seeds") or []
        rows.append(
            ForestRow(
                group_of.get(method, OTHER_GROUP),
                method,
                100 * red["estimate"],
                None if red.get("low") is None else 100 * red["low"],
                None if red.get("high") is None else 100 * red["high"],
                len(pairs),
                tuple(dict.fromkeys(p.split("/")[0] for p in pairs)),
            )
        )
    order, first = [*FOREST_GROUPS, OTHER_GROUP], FOREST_GROUPS[HIGHLIGHTED]
    return sorted(
        rows,
        key=lambda r: (order.index(r.group), first.index(r.method) if r.method in first else -r.estimate),
    )


def forest_panels(pooled: dict[tuple, dict]) -> dict[str, list[ForestRow]]:
    """``{panel title: rows}``, one panel per backbone with a pooled comparison at FOREST_SETTING
    (``pooled``: ``{(backbone, ratio, fraction): comparison}``, as :func:`pooled_comparisons` returns)."""
    panels = {}
    for backbone in BACKBONES:
        comparison = pooled.get((backbone, *FOREST_SETTING))
        rows = forest_rows(comparison) if comparison else []
        if rows:
            strata = ", ".join(comparison.get("strata", DIRECTIONS))
            ratio = FOREST_SETTING[0]
            panels[f"{backbone.upper()}, train ratio {ratio}, whole training fold, pooled over {strata}"] = (
                rows
            )
    return panels


def forest_figure(panels: dict[str, list[ForestRow]], path: Path) -> Path:
    """A forest plot at ``path`` (PNG): per panel, each method's reduction (a point) and its 95% interval
    (a line), a group title above each group, the value printed at the right, a vertical line at 0
    (level with the reference); the x axis is the same in every panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    from matplotlib.transforms import blended_transform_factory

    layouts = []  # per panel: [(y, row or group title)], top to bottom
    for rows in panels.values():
        items, group = [], None
        for row in rows:
            if row.group != group:
                items.append(row.group)
                group = row.group
            items.append(row)
        layouts.append(items)
    values = [
        v for rows in panels.values() for r in rows for v in (r.estimate, r.low, r.high) if v is not None
    ]
    span = max(values + [0.0]) - min(values + [0.0])
    xlim = (min(values + [0.0]) - 0.05 * span, max(values + [0.0]) + 0.05 * span)
    heights = [0.27 * len(items) + 1.2 for items in layouts]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(11, sum(heights)), squeeze=False, gridspec_kw={"height_ratios": heights}
    )
    for ax, title, items in zip(axes[:, 0], panels, layouts):
        ys = list(range(len(items), 0, -1))
        labels = []
        right = blended_transform_factory(ax.transAxes, ax.transData)
        for y, item in zip(ys, items):
            if isinstance(item, str):
                labels.append(item)
                continue
            labels.append(item.label)
            color = HIGHLIGHT.get(item.method, "0.35")
            if item.low is not None:
                ax.plot([item.low, item.high], [y, y], color=color, lw=2.2, solid_capstyle="butt")
                cell = f"{item.estimate:+.1f}% [{item.low:+.1f}, {item.high:+.1f}]"
            else:
                cell = f"{item.estimate:+.1f}%"
            size = 9 if item.method in HIGHLIGHT else 7
            ax.plot([item.estimate], [y], "D" if item.method in HIGHLIGHT else "o", color=color, ms=size)
            ax.text(1.01, y, cell, transform=right, va="center", fontsize=9, color=color)
        ax.axvline(0, color="black", lw=1)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:+.0f}%" if v else "0"))
        ax.set_yticks(ys, labels)
        for tick, item in zip(ax.get_yticklabels(), items):
            if isinstance(item, str):
                tick.set_fontweight("bold")
            elif item.method in HIGHLIGHT:
                tick.set_color(HIGHLIGHT[item.method])
                tick.set_fontweight("bold")
        ax.set_ylim(0.4, len(items) + 0.6)
        ax.set_xlim(*xlim)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(title, loc="left", fontsize=11)
        ax.set_xlabel(
            f"macro test error against class-weighted CE ({REFERENCE}): relative reduction, %, 95% interval\n"
            "\u2190 more error than class weighting   |   less error than class weighting \u2192"
        )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


FIGURE_CAPTION = (
    "Figure: `{name}`: each method's macro test error against "
    + REFERENCE
    + " at "
    + FOREST_SETTING[0]
    + " on the whole training fold, pooled over the directions: the relative "
    "reduction (right of 0 = less error than class weighting) with its 95% interval, as in the headline "
    "table; one panel per backbone."
)


def report_pooled(report: dict) -> dict[tuple, dict]:
    """The pooled comparisons of a report's JSON, keyed as :func:`pooled_comparisons` keys them."""
    return {(p["backbone"], p["ratio"], p["fraction"]): p for p in report.get("pooled", [])}


# ---- the report -------------------------------------------------------------------------------------------
def provenance_text(results: dict[Setting, dict]) -> str:
    """Where and when the runs were made, from their PROVENANCE records: the machine kinds, clusterlight
    versions and dates."""
    records = [r for result in results.values() for r in result.get("provenance", [])]
    if not records:
        return "machine kind, clusterlight version and dates not recorded"
    dates = sorted({r["date"] for r in records})
    machines = "; ".join(sorted({r["machine"] for r in records}))
    versions = ", ".join(sorted({r["clusterlight"] for r in records}))
    when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    return f"{machines}, clusterlight {versions}, {when}"


def shown_command(argv: list[str]) -> str:
    """The command line as the report shows it: the data root (outside the repository) as DATA_ROOT."""
    shown = list(argv)
    for i, arg in enumerate(shown):
        if arg == "--data_root" and i + 1 < len(shown):
            shown[i + 1] = DATA_ROOT
        elif arg.startswith("--data_root="):
            shown[i] = f"--data_root={DATA_ROOT}"
    return " ".join(shown)


def without_data_root(result: dict) -> dict:
    """``result`` with the data root of its experiment's overrides shown as DATA_ROOT."""
    exp = json.loads(json.dumps(result.get("experiment") or {}))
    source = exp.get("overrides", {}).get("data", {}).get("init_args", {}).get("source") or {}
    if "root" in (source.get("init_args") or {}):
        source["init_args"]["root"] = DATA_ROOT
    return {**result, "experiment": exp} if "experiment" in result else result


def write_report(results: dict[Setting, dict], command: str, results_dir: Path, stem: str) -> None:
    """``{results_dir}/{stem}.md``, ``.json`` (the figures of every table and each run's metrics, without
    per-clip predictions) and ``.png`` (:func:`forest_figure`): the headline tables, the pooled
    comparisons, the paired tables, the validation choice, the curve, then every setting. ``command`` is
    shown as given (see :func:`shown_command`)."""
    pooled = pooled_comparisons(results)
    wall = sum(r.get("wall_s", 0.0) for r in results.values())
    padding = OmegaConf.load(ROOT / "configs" / "data" / DIRECTIONS["1to2"]).data.init_args.padding
    lines = [
        "# rare4 benchmark",
        "",
        f"Command: `python benchmarks/rare4.py {command}`. Runs: {provenance_text(results)}; run time "
        f"{wall:.0f} s (sum of the runs). Each direction validates on a split carved from its own training "
        "fold by source recording and chooses every checkpoint there; tests at the natural ratio; clips "
        f"shorter than 4 s padded by `{padding}` padding.",
        "",
    ]
    for ratio in HEADLINE_RATIOS:
        lines += headline_table(results, pooled, ratio)
    for (backbone, ratio, fraction), comparison in pooled.items():
        lines += [
            f"## {backbone.upper()}, train ratio {ratio}, {fraction:.0%} of the training fold: pooled over "
            "both directions",
            "",
            pooled_markdown(comparison, CLASSES),
            "",
        ]
    lines += equal_terms_table(results)
    lines += readout_table(results)
    lines += choice_table(results)
    lines += curve_table(results, pooled)
    for s, result in results.items():
        lines += [
            f"## {s.title}: seeds {result['seeds']}, {result['wall_s']:.0f} s",
            "",
            markdown_table(result, result["classes"] or CLASSES, result["reference"]),
            "",
        ]
    results_dir.mkdir(parents=True, exist_ok=True)
    panels = forest_panels(pooled)
    if panels:
        figure = forest_figure(panels, results_dir / f"{stem}.png")
        lines += [FIGURE_CAPTION.format(name=figure.name), ""]
    (results_dir / f"{stem}.md").write_text("\n".join(lines))
    (results_dir / f"{stem}.json").write_text(
        json.dumps(
            {
                "settings": [
                    {**asdict(s), "name": s.name, **without_data_root(without_clips(r))}
                    for s, r in results.items()
                ],
                "pooled": [
                    {"backbone": b, "ratio": r, "fraction": f, **c} for (b, r, f), c in pooled.items()
                ],
            },
            indent=2,
        )
    )
    print("\n".join(lines))


def saved_results(out: Path) -> dict[Setting, dict]:
    """The latest results.json of every setting folder under ``out``, with the folder's PROVENANCE
    records as ``"provenance"`` (a list, empty without records)."""
    found = {}
    for path in sorted(out.glob("rare4_*/results.json")):
        setting = parse_name(path.parent.name)
        if setting is not None:
            records = path.with_name(PROVENANCE)
            lines = records.read_text().splitlines() if records.is_file() else []
            found[setting] = {
                **json.loads(path.read_text()),
                "provenance": [json.loads(x) for x in lines if x],
            }
    return found


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data_root",
        default=os.environ.get(ROOT_ENV),
        help=f"the rare4 clips, laid out as --layout says (default: the environment variable {ROOT_ENV}); "
        "with --plan, finished runs under --out are counted only with the root they were made with",
    )
    p.add_argument(
        "--layout",
        choices=list(LAYOUTS),
        default="manifest",
        help="; ".join(f"{name}: {what}" for name, what in LAYOUTS.items()),
    )
    p.add_argument("--backbones", nargs="+", choices=BACKBONES, help="default: both")
    p.add_argument("--directions", nargs="+", choices=list(DIRECTIONS), help="default: both")
    p.add_argument("--ratios", nargs="+", choices=list(RATIOS), help="default: the plan's")
    p.add_argument(
        "--fractions",
        nargs="+",
        type=float,
        help=f"the data-size curve: shares of the training fold, {REFERENCE} and {RECIPE} (or --methods), "
        "seeds 0-4 (or --seeds), ratio 2:2:1:26 (or --ratios)",
    )
    p.add_argument("--methods", nargs="+", help="these methods at every ratio (default: the experiment's)")
    p.add_argument("--seeds", nargs="+", type=int, help="these seeds (default: the experiment's)")
    p.add_argument("--full", action="store_true", help="every method at every ratio with the file's seeds")
    p.add_argument("--cv", action="store_true", help="the cross-validation experiments, per direction")
    p.add_argument(
        "--plan", action="store_true", help="print the plan and its estimated CPU time; run nothing"
    )
    p.add_argument("--accelerator", default=None, help="e.g. gpu (default: the experiment's, cpu)")
    p.add_argument("--out", default=str(ROOT / "runs" / "rare4"))
    p.add_argument("--results_dir", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument(
        "--render", action="store_true", help="only rebuild the report from the results under --out"
    )
    p.add_argument(
        "--figure",
        metavar="JSON",
        help="only redraw the forest plot (--results_dir/rare4.png) from a report's JSON, e.g. "
        "benchmarks/results/rare4.json",
    )
    p.epilog = (
        "Overrides of every stage (--trainer.max_epochs 1, --data.init_args.batch_size 32) pass through."
    )
    argv = sys.argv[1:] if argv is None else argv
    try:
        rest, overrides = split_overrides(argv)
    except ValueError as e:
        p.error(str(e))
    a = p.parse_args(rest)
    bad = [f for f in a.fractions or [] if not 0 < f <= 1]
    if bad:
        p.error(f"--fractions must be in (0, 1], got {bad}")
    out, results_dir, stem = Path(a.out), Path(a.results_dir), "rare4_cv" if a.cv else "rare4"
    if a.figure:
        panels = forest_panels(report_pooled(json.loads(Path(a.figure).read_text())))
        if not panels:
            sys.exit(f"rare4 benchmark: {a.figure} has no pooled comparison at {FOREST_SETTING[0]} to draw")
        print(forest_figure(panels, results_dir / f"{stem}.png"))
        return
    if a.render:
        found = {s: r for s, r in saved_results(out).items() if s.cv == a.cv}
        if not found:
            sys.exit(f"rare4 benchmark: no results under {out} to render (--out: the folder of the runs)")
        return write_report(found, shown_command(argv), results_dir, stem)
    data = Data(str(Path(a.data_root).expanduser().resolve()), a.layout) if a.data_root else None
    blocks, what = select_plan(a)
    try:
        runs = planned_runs(blocks, out, overrides, a.accelerator, data)
    except OverrideError as e:
        p.error(str(e))
    print(plan_text(runs, what), flush=True)
    if a.plan:
        if what == "the default plan":
            left_out = planned_runs(filtered(left_out_plan(), a), out, overrides, a.accelerator, data)
            print("\n" + plan_text(left_out, "left out of the default plan, next in priority"))
        return
    if data is None:
        sys.exit(
            f"rare4 benchmark: no data root. Give --data_root PATH (or set {ROOT_ENV}), laid out as one of:\n"
            + layouts_help()
        )
    problem = data.missing()
    if problem:
        sys.exit(f"rare4 benchmark: {problem}")
    failures = run_blocks(blocks, out, overrides, a.accelerator, data, shown_command(argv))
    found = {s: r for s, r in saved_results(out).items() if s.cv == a.cv}  # with other calls' settings
    write_report(found, shown_command(argv), results_dir, stem)
    if failures:
        sys.exit("rare4 benchmark: some runs failed:\n" + "\n".join(failures))


if __name__ == "__main__":
    main()
