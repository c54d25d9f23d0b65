"""W&B as the comparison dashboard: one offline run per (method, seed, stage) in the experiment's group, and
a summary run with the comparison table. The offline run folders are read back record by record."""

import json
from pathlib import Path

import pytest
from helpers.configs import CONFIGS, tiny_experiment, write_yaml
from helpers.wandb_runs import read_offline_run
from omegaconf import OmegaConf

from clusterlight.cli import main
from clusterlight.experiment import run_hash, stage_config

wandb = pytest.importorskip("wandb")


def _wandb_experiment(tmp_path) -> dict:
    exp = tiny_experiment(tmp_path)
    exp["seeds"] = [0, 1]
    exp["common"][1] = str(CONFIGS / "logger/wandb.yaml")
    return exp


def test_wandb_identity_is_set_per_stage_and_kept_out_of_the_hash(tmp_path):
    exp_file = Path(write_yaml(tmp_path, "exp.yaml", _wandb_experiment(tmp_path)))
    exp = OmegaConf.load(exp_file)
    stage = exp.methods.clustered.stages[1]
    ratio = {"data.init_args.class_ratio": {"dog_bark": 2, "baby_cry": 2, "gunshot": 1, "background": 4}}
    cfg = stage_config(
        exp, stage, 1, tmp_path / "seed1/clustered/finetune", exp_file, {"pretrain": "p"}, ratio
    )
    args = cfg["trainer"]["logger"]["init_args"]
    assert args["name"] == "clustered/seed1" and args["group"] == "tiny" and args["job_type"] == "finetune"
    assert args["tags"] == ["clustered", "LSTMEmbedder", "ratio=2:2:1:4", "seed=1"]
    assert args["config"] == {
        "experiment": {"name": "tiny", "method": "clustered", "seed": 1, "stage": "finetune"}
    }
    assert args["save_dir"] == str(tmp_path / "seed1/clustered/finetune")
    plain = stage_config(exp, exp.methods.baseline.stages[0], 0, tmp_path / "r/baseline/fit", exp_file, {})
    assert "ratio=natural" in plain["trainer"]["logger"]["init_args"]["tags"]

    same = run_hash(exp, exp.methods.clustered, 0, exp_file)
    exp.name = "renamed"  # a new W&B group, the same training: the finished runs stay valid
    assert run_hash(exp, exp.methods.clustered, 0, exp_file) == same
    exp.overrides.trainer.max_epochs = 2
    assert run_hash(exp, exp.methods.clustered, 0, exp_file) != same


@pytest.mark.slow
def test_experiment_logs_one_wandb_run_per_stage_and_a_summary_run(tmp_path, monkeypatch, capsys):
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb_home" / var.lower()))
    monkeypatch.setenv("WANDB_MODE", "offline")
    exp = _wandb_experiment(tmp_path)
    exp["choose_on_validation"] = {"name": "chosen", "among": ["baseline", "clustered"], "min_seeds": 2}
    exp_file = write_yaml(tmp_path, "exp.yaml", exp)
    out = tmp_path / "out"
    main(["experiment", "--config", exp_file, "--output_dir", str(out), "--trainer.max_epochs", "1"])
    printed = capsys.readouterr().out
    assert f"W&B: summary run tiny/summary in {out / 'wandb'}" in printed
    assert "wandb sync" in printed

    folders = sorted(out.rglob("offline-run-*"))
    assert all(f.is_relative_to(out) for f in folders)
    runs = [read_offline_run(f) for f in folders]
    assert len(runs) == 3 * 2 + 1  # (fit; pretrain, finetune) x 2 seeds + the summary
    assert {r["group"] for r in runs} == {"tiny"}
    stages = sorted((r["name"], r["job_type"]) for r in runs if r["job_type"] != "summary")
    assert stages == [
        ("baseline/seed0", "fit"),
        ("baseline/seed1", "fit"),
        ("clustered/seed0", "finetune"),
        ("clustered/seed0", "pretrain"),
        ("clustered/seed1", "finetune"),
        ("clustered/seed1", "pretrain"),
    ]
    classes = ["dog_bark", "baby_cry", "gunshot", "background"]
    for run in runs:
        if run["job_type"] == "summary":
            continue
        method, seed = run["name"].split("/seed")
        assert run["tags"] == [method, "LSTMEmbedder", "ratio=natural", f"seed={seed}"]
        assert {"model", "data", "trainer", "experiment"} <= run["config"]  # the resolved stage config
        assert run["experiment"] == {
            "name": "tiny",
            "method": method,
            "seed": int(seed),
            "stage": run["job_type"],
        }
        assert {
            "val/macro_err",
            *(f"val/err_{c}" for c in classes),
            *(f"val/f1_{c}" for c in classes),
        } <= run["keys"]
        if run["job_type"] != "pretrain":  # the last stage of a method is tested
            assert {"test/macro_err", "test/err_gunshot"} <= run["keys"]

    (summary,) = [r for r in runs if r["job_type"] == "summary"]
    assert summary["name"] == "tiny/summary"
    assert summary["tags"] == ["summary", "method=baseline", "method=clustered", "method=chosen"]
    assert {"experiment", "reference", "seeds", "choice"} <= summary["config"]  # which method "chosen" is
    assert {
        "comparison/_type",
        "baseline/macro_err/mean",
        "clustered/err_gunshot/reduction",
        "clustered/seeds",
    } <= (summary["keys"])
    assert "results.json" in summary["files"]
    (folder,) = [f for f, r in zip(folders, runs) if r["job_type"] == "summary"]
    results = json.loads((out / "results.json").read_text())
    assert json.loads((folder / "files/results.json").read_text()) == results
    (table_file,) = (folder / "files/media/table").glob("comparison_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"] == [
        "method",
        "class",
        "mean",
        "std",
        "mean ± std",
        "reduction vs reference",
        "seeds",
    ]
    rows = {(row[0], row[1]): row for row in table["data"]}
    assert len(rows) == 3 * (len(classes) + 1)  # baseline, clustered and the choice's row
    chosen = results["choice"]["chosen"]
    assert rows["chosen", "macro"][2:5] == rows[chosen, "macro"][2:5]  # mean, std, text: the same runs
    macro = results["summary"]["clustered"]["macro_err"]
    assert rows["clustered", "macro"][2:4] == pytest.approx([macro["mean"], macro["std"]])
    assert rows["clustered", "macro"][5] == pytest.approx(results["reduction"]["clustered"]["macro_err"])
    assert rows["baseline", "gunshot"][5] is None and rows["baseline", "gunshot"][6] == 2

    # everything reused: no stage runs again and the summary run already holds these results
    main(["experiment", "--config", exp_file, "--output_dir", str(out), "--trainer.max_epochs", "1"])
    assert "the summary run already holds these results" in capsys.readouterr().out
    assert len(sorted(out.rglob("offline-run-*"))) == len(folders)
