"""The ``clusterlight experiment`` command line."""

from __future__ import annotations

import argparse

from clusterlight.experiment.runner import run_experiment


def experiment_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(
        prog="clusterlight experiment", description="Run every method for every seed and compare them."
    )
    p.add_argument("--config", required=True, help="experiment YAML (see configs/experiment/)")
    p.add_argument("--output_dir", default=None, help="run folder (default: the file's output_dir)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="override the file's seeds")
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="run only these methods (the table still covers every finished run)",
    )
    a = p.parse_args(argv)
    run_experiment(a.config, a.output_dir, a.seeds, methods=a.methods)
