"""``clusterlight experiment``: every method, every seed, same data and budget; then the comparison table.

An experiment file names LightningCLI config files shared by all stages (``common``), and
per method a list of stages, each with its own config files and overrides. A stage with
``init_from: <stage>`` starts from that stage's selected checkpoint (it sets
``model.init_args.pretrained_checkpoint``). The last stage of each method is tested on the
test split with its checkpoint selected by validation macro error. With
``cross_validate: true`` seed ``s`` also selects the validation part ``s`` of the training
folds (``data.val_part``), so seeds ``0 .. n-1`` cross-validate every method. With
``choose_on_validation`` the candidate method with the lowest validation macro error also joins the
tables under a name of its own (``choice``).

Each finished (method, seed) leaves ``seed<s>/<method>/result.json`` with a hash of its
resolved stage configs; a rerun into the same folder reuses every result whose configs are
unchanged, so an interrupted experiment continues where it stopped and extra seeds or
methods can be added later (``--methods``), the table covering every finished run.

Command-line overrides (``--trainer.max_epochs 2``, ``--model.init_args.lr=0.01``, also
``--data.*`` and ``--checkpoint.*``) are set in every stage of every method after the file's own
overrides and are part of the run hash; ``--dry_run`` prints the plan; Lightning's own output is
quiet unless ``--verbose``, and one progress line per stage start/end and per epoch gives the
elapsed time and an ETA for the whole experiment. With a ``WandbLogger`` each (method, seed, stage)
is one W&B run in the experiment's group, and the comparison one more (``job_type="summary"``).

The modules, by job: ``configs`` (an experiment file to each stage's resolved config and the
run hash), ``overrides`` (command-line overrides, checked against each stage's parser),
``runner`` (training the stages, reusing saved results), ``choice`` (a method chosen on
validation), ``progress`` (progress lines, ETA, quiet Lightning), ``report`` (the summary over
seeds, the results files), ``statistics`` (paired bootstrap intervals, seed spread), ``markdown``
(every Markdown table), ``wandb_summary`` (the W&B summary run; imports wandb only when called),
``main`` (the command line).
"""

from clusterlight.experiment.configs import merge_configs, run_hash, stage_config
from clusterlight.experiment.main import experiment_main
from clusterlight.experiment.overrides import check_overrides, split_overrides
from clusterlight.experiment.progress import ExperimentProgress, ProgressCallback
from clusterlight.experiment.report import markdown_table, pooled_errors, summarize, write_results
from clusterlight.experiment.runner import run_experiment, run_stage

__all__ = [
    "ExperimentProgress",
    "ProgressCallback",
    "check_overrides",
    "experiment_main",
    "markdown_table",
    "merge_configs",
    "pooled_errors",
    "run_experiment",
    "run_hash",
    "run_stage",
    "split_overrides",
    "stage_config",
    "summarize",
    "write_results",
]
