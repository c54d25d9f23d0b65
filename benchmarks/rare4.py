"""The rare4 benchmark on real recordings (issue: beat class weighting on rare4).

Runs configs/experiment/rare4_{lstm,cnn}.yaml, writes one results.json per setting
(backbone x training ratio) under --out and a combined table (benchmarks/results/rare4.md).
Reads ../shared/data/us8k_dev (non-commercial licence: never copied into the project) and
exits with a clear message when it is absent. Not part of the test suite.

By default it runs the reduced plan the issue allows when the budget is tight: at 2:2:1:26
every method with seeds 0-2, and with seeds 0-4 the headline methods (class-weighted CE, the
paper's two-stage clustered recipe, the one-stage clustered_joint variant picked by
cross-validation) and the background-mixing pair (class-weighted CE and clustered_joint with
``BackgroundMix``, also picked by cross-validation); at the natural and 6:1:2:16 ratios the
headline methods with seeds 0-2. ``--full`` runs every method
everywhere. Finished runs are reused (see clusterlight.experiment), so an interrupted
benchmark continues where it stopped.

    python benchmarks/rare4.py                                   # the table in the README
    python benchmarks/rare4.py --backbones lstm --ratios 2:2:1:26 --methods weighted_ce clustered --seeds 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from clusterlight.experiment import markdown_table, run_experiment, summarize

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "us8k_dev"
CLASSES = ["dog_bark", "car_horn", "gun_shot", "background"]
RATIOS = {"natural": None, "6:1:2:16": [6, 1, 2, 16], "2:2:1:26": [2, 2, 1, 26]}
HEADLINE = ["weighted_ce", "clustered", "clustered_joint"]
MIXED = ["weighted_ce_bgmix", "clustered_joint_bgmix"]


def default_plan(ratio: str, methods: list[str]) -> list[tuple[list[str], list[int]]]:
    """(methods, seeds) to run for one ratio when the command line does not say."""
    if ratio == "2:2:1:26":
        return [(methods, [0, 1, 2]), (HEADLINE + MIXED, [3, 4])]
    return [(HEADLINE, [0, 1, 2])]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbones", nargs="+", default=["lstm", "cnn"], choices=["lstm", "cnn"])
    p.add_argument("--ratios", nargs="+", default=list(RATIOS), choices=list(RATIOS))
    p.add_argument(
        "--methods", nargs="+", default=None, help="subset of the experiment's methods (default: all)"
    )
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default: the experiment file's seeds")
    p.add_argument(
        "--full", action="store_true", help="every method at every ratio (default: the budget plan above)"
    )
    p.add_argument(
        "--accelerator", default=None, help="e.g. gpu (default: the experiment's trainer config, cpu)"
    )
    p.add_argument("--out", default=str(ROOT / "runs" / "rare4"))
    p.add_argument(
        "--render",
        action="store_true",
        help="only rebuild the combined table from the results.json files under --out",
    )
    a = p.parse_args()
    if a.render:
        rows = []
        for path in sorted(Path(a.out).glob("rare4_*/results.json")):
            result = json.loads(path.read_text())
            runs = {m: {int(s): r for s, r in per.items()} for m, per in result["runs"].items()}
            result.update(summarize(runs, result["classes"], result["reference"]))
            _, backbone, ratio = result["name"].split("_", 2)
            rows.append((backbone, ratio.replace("-", ":"), result))
        return write_table(
            rows,
            "(rendered from saved results) " + " ".join(sys.argv[1:]),
            sum(r["wall_s"] for *_, r in rows),
        )
    if not (DATA / "labels.csv").is_file():
        sys.exit(
            f"rare4 benchmark: {DATA}/labels.csv not found. It needs the UrbanSound8K dev clips in "
            "../shared/data/us8k_dev."
        )
    rows, t0 = [], time.time()
    for backbone in a.backbones:
        exp_file = ROOT / "configs" / "experiment" / f"rare4_{backbone}.yaml"
        for ratio in a.ratios:
            exp = OmegaConf.load(exp_file)
            exp.overrides.data.init_args.source = {"init_args": {"root": str(DATA)}}
            exp.overrides.data.init_args.class_ratio = (
                None if RATIOS[ratio] is None else dict(zip(CLASSES, RATIOS[ratio]))
            )
            if a.accelerator:
                exp.overrides.trainer.accelerator = a.accelerator
                if a.accelerator == "gpu":
                    exp.overrides.trainer.precision = "bf16-mixed"
            exp.name = f"rare4_{backbone}_{ratio.replace(':', '-')}"
            if a.methods or a.seeds or a.full:
                plan = [(a.methods or list(exp.methods), a.seeds or list(exp.seeds))]
            else:
                plan = default_plan(ratio, list(exp.methods))
            for methods, seeds in plan:
                result = run_experiment(
                    exp_file, str(Path(a.out) / exp.name), seeds, exp=exp, methods=methods
                )
            rows.append((backbone, ratio, result))
    write_table(rows, " ".join(sys.argv[1:]), time.time() - t0)


def write_table(rows: list, args: str, wall_s: float) -> None:
    padding = OmegaConf.load(ROOT / "configs" / "data" / "us8k_rare4.yaml").data.init_args.padding
    lines = [
        "# rare4 benchmark",
        "",
        f"Command: `python benchmarks/rare4.py {args}`; total wall time {wall_s:.0f} s (CPU unless noted).",
        f"Clips shorter than 4 s are padded by `{padding}` padding; test = fold 2 at its natural ratio.",
        "",
    ]
    for backbone, ratio, result in rows:
        lines += [
            f"## {backbone.upper()}, train ratio {ratio}, seeds {result['seeds']}, {result['wall_s']:.0f} s",
            "",
        ]
        lines += [markdown_table(result, result["classes"], result["reference"]), ""]
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "rare4.md").write_text("\n".join(lines))
    (out / "rare4.json").write_text(
        json.dumps([{"backbone": b, "ratio": r, **res} for b, r, res in rows], indent=2)
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
