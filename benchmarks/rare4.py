"""The rare4 benchmark on real recordings (issue: beat class weighting on rare4).

Runs configs/experiment/rare4_{lstm,cnn}.yaml for each training ratio, writes one
results.json per setting under --out and a combined table (benchmarks/results/rare4.md).
Reads ../shared/data/us8k_dev (non-commercial licence: never copied into the project) and
exits with a clear message when it is absent. Not part of the test suite.

    python benchmarks/rare4.py                                   # the whole table
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbones", nargs="+", default=["lstm", "cnn"], choices=["lstm", "cnn"])
    p.add_argument("--ratios", nargs="+", default=list(RATIOS), choices=list(RATIOS))
    p.add_argument("--methods", nargs="+", default=None, help="subset of the experiment's methods (default: all)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default: the experiment file's seeds")
    p.add_argument("--accelerator", default=None, help="e.g. gpu (default: the experiment's trainer config, cpu)")
    p.add_argument("--out", default=str(ROOT / "runs" / "rare4"))
    p.add_argument("--render", action="store_true", help="only rebuild the combined table from the results.json files under --out")
    a = p.parse_args()
    if a.render:
        rows = []
        for path in sorted(Path(a.out).glob("rare4_*/results.json")):
            result = json.loads(path.read_text())
            runs = {m: {int(s): r for s, r in per.items()} for m, per in result["runs"].items()}
            result.update(summarize(runs, result["classes"], result["reference"]))
            _, backbone, ratio = result["name"].split("_", 2)
            rows.append((backbone, ratio.replace("-", ":"), result))
        return write_table(rows, "(rendered from saved results) " + " ".join(sys.argv[1:]), sum(r["wall_s"] for *_, r in rows))
    if not (DATA / "labels.csv").is_file():
        sys.exit(f"rare4 benchmark: {DATA}/labels.csv not found. It needs the UrbanSound8K dev clips in ../shared/data/us8k_dev.")
    rows, t0 = [], time.time()
    for backbone in a.backbones:
        exp_file = ROOT / "configs" / "experiment" / f"rare4_{backbone}.yaml"
        for ratio in a.ratios:
            exp = OmegaConf.load(exp_file)
            exp.overrides.data.init_args.source = {"init_args": {"root": str(DATA)}}
            exp.overrides.data.init_args.class_ratio = None if RATIOS[ratio] is None else dict(zip(CLASSES, RATIOS[ratio]))
            if a.accelerator:
                exp.overrides.trainer.accelerator = a.accelerator
                if a.accelerator == "gpu":
                    exp.overrides.trainer.precision = "bf16-mixed"
            if a.methods:
                exp.methods = {m: exp.methods[m] for m in a.methods}
            exp.name = f"rare4_{backbone}_{ratio.replace(':', '-')}"
            result = run_experiment(exp_file, str(Path(a.out) / exp.name), a.seeds, exp=exp)
            rows.append((backbone, ratio, result))
    write_table(rows, " ".join(sys.argv[1:]), time.time() - t0)


def write_table(rows: list, args: str, wall_s: float) -> None:
    lines = ["# rare4 benchmark", "", f"Command: `python benchmarks/rare4.py {args}`; total wall time {wall_s:.0f} s (CPU unless noted).", ""]
    for backbone, ratio, result in rows:
        lines += [f"## {backbone.upper()}, train ratio {ratio}, seeds {result['seeds']}, {result['wall_s']:.0f} s", ""]
        lines += [markdown_table(result, result["classes"], result["reference"]), ""]
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "rare4.md").write_text("\n".join(lines))
    (out / "rare4.json").write_text(json.dumps([{"backbone": b, "ratio": r, **res} for b, r, res in rows], indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
