"""The ``clusterlight experiment`` command line."""

from __future__ import annotations

import argparse
import sys

from clusterlight.experiment.choice import ChoiceError
from clusterlight.experiment.overrides import OverrideError, split_overrides
from clusterlight.experiment.runner import ExperimentRunsFailed, run_experiment

EPILOG = """overrides, applied to every stage of every method after the file's own overrides (part of the
run hash, so an overridden run is never reused as a plain one, nor the other way round):
  --trainer.KEY VALUE, --data.KEY VALUE, --model.KEY VALUE, --checkpoint.KEY VALUE
  (or --KEY=VALUE; VALUE is read as YAML: 2, 0.01, null, [0, 1], {a: 1}), e.g.
  --trainer.max_epochs 2 --data.init_args.batch_size 32 --model.init_args.lr=0.01
A key a stage does not have is an error naming the key and the stage (checked before training)."""


def experiment_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(
        prog="clusterlight experiment",
        description="Run every method for every seed and compare them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    p.add_argument(
        "--dry_run",
        action="store_true",
        help="print the plan (methods x seeds x stages; what is reused, what would run) and exit",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="keep Lightning's output (progress bar, model summary, info lines) and clusterlight's "
        "info lines (clips and clusters per class)",
    )
    try:
        rest, overrides = split_overrides(argv)
    except ValueError as e:
        p.error(str(e))
    a = p.parse_args(rest)
    try:
        run_experiment(
            a.config,
            a.output_dir,
            a.seeds,
            methods=a.methods,
            overrides=overrides,
            dry_run=a.dry_run,
            verbose=a.verbose,
        )
    except (OverrideError, ChoiceError) as e:  # checked before anything trains: a usage error, no traceback
        p.error(str(e))
    except ExperimentRunsFailed as e:  # each failure was printed with its traceback when it happened
        print(f"clusterlight experiment: {e}", file=sys.stderr)
        raise SystemExit(1) from None
