"""``clusterlight experiment`` for people: command-line overrides (and the run hash), ``--dry_run``, the
progress lines with an ETA, and Lightning's output quiet unless ``--verbose``."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT
from helpers.configs import tiny_experiment, write_yaml
from omegaconf import OmegaConf

from clusterlight.cli import main
from clusterlight.experiment import ExperimentProgress, run_experiment, run_hash, split_overrides
from clusterlight.experiment.overrides import OverrideError
from clusterlight.experiment.progress import PlannedStage


def test_split_overrides_reads_both_forms_as_yaml():
    rest, overrides = split_overrides(
        [
            "--config",
            "x.yaml",
            "--trainer.max_epochs",
            "2",
            "--model.init_args.lr=0.01",
            "--seeds",
            "0",
            "1",
            "--trainer.devices",
            "[0, 1]",
            "--data.init_args.class_ratio",
            "null",
            "--checkpoint.monitor=val/acc",
            "--trainer.max_epochs=3",  # the last one wins
            "--trainer.precision",
            "-1",
        ]
    )
    assert rest == ["--config", "x.yaml", "--seeds", "0", "1"]
    assert overrides == {
        "model.init_args.lr": 0.01,
        "trainer.devices": [0, 1],
        "data.init_args.class_ratio": None,
        "checkpoint.monitor": "val/acc",
        "trainer.max_epochs": 3,
        "trainer.precision": -1,
    }
    with pytest.raises(ValueError, match="--trainer.max_epochs: no value given"):
        split_overrides(["--trainer.max_epochs"])
    with pytest.raises(ValueError, match="--data.init_args.seed: the experiment sets it.*--seeds"):
        split_overrides(["--data.init_args.seed", "3"])
    with pytest.raises(ValueError, match="--trainer: an override is --SECTION.KEY VALUE"):
        split_overrides(["--trainer", "x"])


def test_overrides_reach_every_stage_change_the_hash_and_are_reused(tmp_path, capsys):
    exp_file = write_yaml(tmp_path, "exp.yaml", tiny_experiment(tmp_path))
    out = tmp_path / "out"
    base = ["experiment", "--config", exp_file, "--output_dir", str(out), "--seeds", "0"]
    main([*base, "--methods", "baseline"])
    plain = json.loads((out / "seed0/baseline/result.json").read_text())
    capsys.readouterr()

    override = ["--model.init_args.lr=0.01", "--data.init_args.batch_size", "32"]
    main([*base, *override, "--dry_run"])
    plan = capsys.readouterr().out
    assert "--model.init_args.lr 0.01 --data.init_args.batch_size 32" in plan
    assert (
        "seed 0 | baseline  | fit (1 epoch) | run (replaces a finished run made with other configs)" in plan
    )
    assert "seed 0 | clustered | pretrain (1 epoch), finetune (1 epoch) | run" in plan
    assert json.loads((out / "seed0/baseline/result.json").read_text()) == plain  # nothing ran

    main([*base, *override, "--methods", "baseline"])
    saved = json.loads((out / "seed0/baseline/result.json").read_text())
    exp = OmegaConf.load(exp_file)
    overrides = {"model.init_args.lr": 0.01, "data.init_args.batch_size": 32}
    assert saved["config_hash"] == run_hash(exp, exp.methods.baseline, 0, Path(exp_file), overrides)
    assert saved["config_hash"] != plain["config_hash"]
    assert json.loads((out / "results.json").read_text())["overrides"] == overrides
    newest = max((out / "seed0/baseline/fit").rglob("config.yaml"), key=lambda p: p.stat().st_mtime)
    resolved = OmegaConf.load(newest)  # the stage's resolved config, as LightningCLI saved it
    assert resolved.model.init_args.lr == 0.01 and resolved.data.init_args.batch_size == 32
    capsys.readouterr()

    main([*base, *override, "--methods", "baseline"])
    assert "seed 0 (1/1) | baseline: reusing the finished run" in capsys.readouterr().out
    main([*base, "--methods", "baseline", "--dry_run"])  # the plain run is not the overridden one
    assert "seed 0 | baseline  | fit (1 epoch) | run (replaces a finished run" in capsys.readouterr().out


def test_an_override_a_stage_cannot_take_names_key_and_stage(tmp_path, capsys):
    exp_file = Path(write_yaml(tmp_path, "exp.yaml", tiny_experiment(tmp_path)))
    args = ["experiment", "--config", str(exp_file), "--output_dir", str(tmp_path / "out"), "--dry_run"]
    with pytest.raises(SystemExit):
        main([*args, "--trainer.max_epochz", "1"])
    assert "--trainer.max_epochz: no such key in stage 'fit' of method 'baseline'" in capsys.readouterr().err
    # a JointFinetune argument: applied to every stage, so the pretraining stage rejects it too
    with pytest.raises(
        OverrideError, match=r"backbone_lr_mult: no such key in stage 'pretrain' of method 'clustered'"
    ):
        run_experiment(exp_file, str(tmp_path / "out"), methods=["clustered"], dry_run=True,
                       overrides={"model.init_args.backbone_lr_mult": 1.0})  # fmt: skip
    with pytest.raises(OverrideError, match=r"init_args.lr: invalid value 'fast' in stage 'fit'"):
        run_experiment(
            exp_file, str(tmp_path / "out"), dry_run=True, overrides={"model.init_args.lr": "fast"}
        )
    assert not (tmp_path / "out").exists()


def test_dry_run_prints_methods_seeds_stages_and_trains_nothing(tmp_path, capsys):
    exp_file = write_yaml(tmp_path, "exp.yaml", tiny_experiment(tmp_path))
    main(["experiment", "--config", exp_file, "--output_dir", str(tmp_path / "out"), "--dry_run",
          "--methods", "clustered", "--trainer.max_epochs", "3"])  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert (
        out[0]
        == f"[experiment tiny] dry run: 2 method(s) x 2 seed(s) x their stages; output {tmp_path / 'out'}"
    )
    assert "  seed 1 | baseline  | fit | skip (not in --methods)" in out
    assert "  seed 1 | clustered | pretrain (3 epochs), finetune (3 epochs) | run" in out
    assert out[-1].startswith(
        "[experiment tiny] would run 2 (method, seed) run(s): 4 stages, 12 epochs; reuse 0"
    )
    assert not (tmp_path / "out").exists()


def test_progress_lines_give_elapsed_time_and_eta():
    now = [100.0]
    lines: list[str] = []
    plan = [
        PlannedStage("baseline", 0, 1, 1, "fit", 1, 1, epochs=2),
        PlannedStage("clustered", 0, 1, 1, "pretrain", 1, 2, epochs=2),
        PlannedStage("clustered", 0, 1, 1, "finetune", 2, 2, epochs=1),
    ]
    progress = ExperimentProgress(
        "tiny", plan, printer=lambda s, flush=False: lines.append(s), clock=lambda: now[0]
    )
    progress.stage_start(0)
    tag = "[experiment tiny] seed 0 (1/1)"
    assert lines[-1] == f"{tag} | baseline | stage fit (1/1) | 2 epochs | 0.0s elapsed, ETA unknown"
    now[0] += 12
    progress.epoch_end(10.0, val_macro_err=0.5)  # 4 epochs left at 10 s each
    assert lines[-1].endswith("| epoch 1/2 (10s, val macro error 0.500) | 12s elapsed, ETA 40s")
    now[0] += 10
    progress.epoch_end(10.0)
    assert lines[-1].endswith("| epoch 2/2 (10s) | 22s elapsed, ETA 30s")
    now[0] += 4  # the stage took 6 s besides its epochs: each later stage is expected to as well
    progress.stage_end(0)
    assert lines[-1].endswith("stage fit (1/1) | done in 26s | 26s elapsed, ETA 42s")  # (2 + 1) x 10 + 2 x 6
    progress.stage_start(1)
    now[0] += 31
    progress.epoch_end(30.0)  # pretraining epochs: 30 s from now on; fine-tuning: the mean of all so far
    assert lines[-1].startswith(
        "[experiment tiny] seed 0 (1/1) | clustered | stage pretrain (1/2) | epoch 1/2"
    )
    assert lines[-1].endswith("57s elapsed, ETA 59s")  # 30 + 6 + (10 + 10 + 30) / 3 + 6


@pytest.mark.slow
def test_quiet_by_default_verbose_on_request_and_no_wandb_import(tmp_path):
    """A child process, as a user runs it: Lightning's handler and levels are its own."""
    exp_file = write_yaml(tmp_path, "exp.yaml", tiny_experiment(tmp_path))
    script = (
        "import sys\n"
        "from clusterlight.cli import main\n"
        "args = ['experiment', '--config', sys.argv[1], '--methods', 'baseline', '--seeds', '0']\n"
        "main(args + ['--output_dir', sys.argv[2] + '/quiet'])\n"
        "print('wandb imported:', 'wandb' in sys.modules, flush=True)\n"
        "print('=== verbose', flush=True)\n"
        "print('=== verbose', file=sys.stderr, flush=True)\n"
        "main(args + ['--output_dir', sys.argv[2] + '/verbose', '--verbose'])\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, exp_file, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    quiet, verbose = run.stdout.split("=== verbose")
    quiet_err, verbose_err = run.stderr.split("=== verbose")
    assert "smaller than the logging interval" in quiet_err  # warnings stay visible
    assert "wandb imported: False" in quiet
    assert "[experiment tiny] seed 0 (1/1) | baseline | stage fit (1/1) | 1 epoch | " in quiet
    assert "| epoch 1/1 (" in quiet and "ETA" in quiet and "| done in " in quiet
    assert "baseline: test macro error" in quiet
    lightning = ["GPU available", "Restoring states", "Loaded model weights", "Seed set to", "[clusterlight]"]
    assert not [s for s in lightning if s in quiet + quiet_err], run.stderr
    for s in lightning:
        assert s in verbose + verbose_err, s
    assert "| epoch 1/1 (" in verbose
    first = json.loads((tmp_path / "quiet/results.json").read_text())["runs"]["baseline"]["0"]["metrics"]
    second = json.loads((tmp_path / "verbose/results.json").read_text())["runs"]["baseline"]["0"]["metrics"]
    assert first == second  # display only: the same training
