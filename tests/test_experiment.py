"""``clusterlight experiment``: stage configs, the run, reuse of finished runs, the summary and tables."""

import json
import sys
import warnings
from pathlib import Path

import pytest
from helpers.configs import CONFIGS, tiny_experiment, write_yaml
from helpers.data import TINY_COUNTS
from omegaconf import OmegaConf

from clusterlight.cli import main
from clusterlight.experiment import (
    merge_configs,
    pooled_errors,
    run_hash,
    run_stage,
    stage_config,
    summarize,
)


@pytest.mark.slow
def test_experiment_writes_complete_results_and_reuses_finished_runs(tmp_path, capsys):
    exp_file = write_yaml(tmp_path, "exp.yaml", tiny_experiment(tmp_path))
    main(
        [
            "experiment",
            "--config",
            exp_file,
            "--output_dir",
            str(tmp_path / "out"),
            "--methods",
            "baseline",
            "--seeds",
            "0",
        ]
    )
    first = json.loads((tmp_path / "out/results.json").read_text())
    assert list(first["runs"]) == ["baseline"] and first["summary"]["baseline"]["macro_err"]["values"]
    capsys.readouterr()

    main(["experiment", "--config", exp_file, "--output_dir", str(tmp_path / "out")])
    assert "seed 0 (1/2) | baseline: reusing the finished run" in capsys.readouterr().out
    result = json.loads((tmp_path / "out/results.json").read_text())
    assert result["runs"]["baseline"]["0"] == first["runs"]["baseline"]["0"]
    assert result["seeds"] == [0, 1] and result["classes"] == [
        "dog_bark",
        "baby_cry",
        "gunshot",
        "background",
    ]
    for method in ("baseline", "clustered"):
        assert set(result["runs"][method]) == {"0", "1"}
        assert len(result["summary"][method]["macro_err"]["values"]) == 2
    red = result["reduction"]["clustered"]
    base, clus = (
        result["summary"]["baseline"]["macro_err"]["mean"],
        result["summary"]["clustered"]["macro_err"]["mean"],
    )
    assert red["macro_err"] == pytest.approx((base - clus) / base)
    assert result["wall_s"] == pytest.approx(
        sum(r["wall_s"] for per in result["runs"].values() for r in per.values())
    )
    val = result["runs"]["baseline"]["0"]["val"]  # the selected checkpoint's validation metrics
    assert val["metrics"]["macro_err"] == pytest.approx(
        result["runs"]["baseline"]["0"]["selected_val_macro_err"]
    )
    assert sum(map(sum, val["confusion"])) == sum(TINY_COUNTS["val"].values())
    md = (tmp_path / "out/results.md").read_text()
    assert "| clustered |" in md and "**macro**" in md and "| error reduction vs baseline |" not in md
    assert "| method | per-seed macro error difference, method - baseline (seed: difference) |" in md
    assert "validation error, pooled over seeds" in md
    assert (tmp_path / "out/seed1/clustered/finetune").is_dir()


def test_run_stage_ignores_the_process_command_line(tmp_path, monkeypatch):
    """A stage gets its whole config as a dict: flags on the process's own command line (here a
    ``clusterlight experiment`` call with unrelated and conflicting flags) are neither read nor
    warned about, without patching ``sys.argv``."""
    exp_file = Path(write_yaml(tmp_path, "exp.yaml", tiny_experiment(tmp_path)))
    exp = OmegaConf.load(exp_file)
    stage = exp.methods.baseline.stages[0]
    config = stage_config(exp, stage, 0, tmp_path / "run", exp_file, {})
    argv = ["clusterlight", "experiment", "--config", "x.yaml", "--trainer.max_epochs", "7", "--bogus", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ckpt, results = run_stage(config, test=True)
    assert sys.argv == argv
    assert not [w for w in caught if "args parameter" in str(w.message)]
    assert Path(ckpt).is_file() and Path(ckpt).is_relative_to(tmp_path / "run")
    assert Path(ckpt).name == "best-epoch=000.ckpt"  # max_epochs 1, from the config
    assert sorted(p.name for p in Path(ckpt).parent.glob("*.ckpt")) == ["best-epoch=000.ckpt", "last.ckpt"]
    assert set(results["metrics"]) >= {"macro_err", "acc"} and results["selected_val_macro_err"] is not None


def test_run_hash_follows_the_configs_not_the_folder(tmp_path):
    exp_file = Path(write_yaml(tmp_path, "exp.yaml", tiny_experiment(tmp_path)))
    exp = OmegaConf.load(exp_file)
    spec = exp.methods.clustered
    same = run_hash(exp, spec, 0, exp_file)
    assert same == run_hash(OmegaConf.load(exp_file), spec, 0, exp_file)
    assert same != run_hash(exp, spec, 1, exp_file)
    exp.overrides.trainer.max_epochs = 2
    assert same != run_hash(exp, spec, 0, exp_file)


def test_experiment_rejects_unknown_method(tmp_path):
    exp_file = write_yaml(tmp_path, "exp.yaml", tiny_experiment(tmp_path))
    with pytest.raises(ValueError, match=r"no method\(s\) \['bogus'\]"):
        main(
            ["experiment", "--config", exp_file, "--output_dir", str(tmp_path / "out"), "--methods", "bogus"]
        )


def test_merge_replaces_a_node_whose_class_changes():
    base = {
        "model": {
            "init_args": {"lr": 1e-3, "loss": {"class_path": "a.Margin", "init_args": {"margin_inter": 1.0}}}
        }
    }
    same = merge_configs(
        base,
        {"model": {"init_args": {"loss": {"class_path": "a.Margin", "init_args": {"margin_intra": 0.1}}}}},
    )
    assert same["model"]["init_args"]["loss"]["init_args"] == {"margin_inter": 1.0, "margin_intra": 0.1}
    other = merge_configs(
        base,
        {"model": {"init_args": {"loss": {"class_path": "a.Softmax", "init_args": {"temperature": 0.1}}}}},
    )
    assert other["model"]["init_args"] == {
        "lr": 1e-3,
        "loss": {"class_path": "a.Softmax", "init_args": {"temperature": 0.1}},
    }


def test_stage_config_composes_stage_net_and_fragments(tmp_path):
    """A stage's ``configs`` (stage, net, shared blocks) merge as one model/data config, as the
    command line composes them."""
    exp = tiny_experiment(tmp_path)
    exp["methods"]["baseline"]["stages"][0]["configs"] += [
        str(CONFIGS / "model/loss/cross_entropy.yaml"),
        str(CONFIGS / "data/mixing/background.yaml"),
    ]
    exp_file = Path(write_yaml(tmp_path, "exp.yaml", exp))
    exp = OmegaConf.load(exp_file)
    cfg = stage_config(exp, exp.methods.baseline.stages[0], 0, tmp_path / "run", exp_file, {})
    model = cfg["model"]
    assert model["class_path"] == "clusterlight.modules.Classifier" and model["init_args"]["lr"] == 0.001
    assert model["init_args"]["loss"] == {"class_path": "clusterlight.losses.CrossEntropy"}
    assert model["init_args"]["backbone"] == {
        "class_path": "clusterlight.nets.LSTMEmbedder",
        "init_args": {"n_mels": 64, "hidden": 32, "layers": 1, "embed_dim": 64},  # net file + overrides
    }
    assert model["init_args"]["frontend"]["init_args"]["sample_rate"] == 8000
    assert cfg["data"]["init_args"]["mixing"] == {
        "class_path": "clusterlight.data.BackgroundMix",
        "init_args": {"p": 0.5, "snr_db": [0.0, 20.0]},
    }
    assert cfg["data"]["init_args"]["batch_size"] == 16 and "callbacks" not in cfg["trainer"]


def test_summary_compares_methods_on_shared_seeds():
    def run(err: float) -> dict:
        return {"metrics": {"err_a": err, "err_b": err, "macro_err": err, "acc": 1 - err}}

    runs = {
        "base": {s: run(e) for s, e in enumerate([0.4, 0.4, 0.4, 0.8, 0.8])},
        "new": {s: run(0.3) for s in range(3)},
    }
    result = summarize(runs, ["a", "b"], "base")
    assert result["summary"]["base"]["macro_err"]["mean"] == pytest.approx(0.56)
    assert result["reduction"]["new"]["seeds"] == [0, 1, 2]
    assert result["reduction"]["new"]["macro_err"] == pytest.approx(
        0.25
    )  # against 0.4, the base mean on seeds 0-2
    assert result["reduction"]["new"]["macro_err_per_seed"] == pytest.approx([0.25, 0.25, 0.25])


def test_pooled_errors_sum_confusions_before_dividing():
    fold_a = [[3, 1], [0, 1]]  # class a: 3 of 4 right; class b: 1 of 1
    fold_b = [[1, 0], [3, 1]]  # class a: 1 of 1; class b: 1 of 4
    pooled = pooled_errors([fold_a, fold_b], ["a", "b"])
    assert pooled["err_a"] == pytest.approx(1 / 5) and pooled["err_b"] == pytest.approx(3 / 5)
    assert pooled["macro_err"] == pytest.approx(0.4)


def test_cross_validate_makes_each_seed_validate_on_its_own_part(tmp_path):
    exp_file = Path(write_yaml(tmp_path, "exp.yaml", tiny_experiment(tmp_path)))
    exp = OmegaConf.load(exp_file)
    stage = exp.methods.baseline.stages[0]
    assert "val_part" not in stage_config(exp, stage, 3, tmp_path / "run", exp_file, {})["data"]["init_args"]
    exp.cross_validate = True
    assert stage_config(exp, stage, 3, tmp_path / "run", exp_file, {})["data"]["init_args"]["val_part"] == 3


@pytest.mark.slow
def test_methods_sharing_a_stage_train_it_once(tmp_path, capsys):
    """Two clustered methods that differ only in fine-tuning pretrain once per seed; the second
    fine-tunes from the first's pretraining checkpoint, and a method with another pretraining does not."""
    exp = tiny_experiment(tmp_path)
    clustered = exp["methods"].pop("clustered")
    other_finetune = json.loads(json.dumps(clustered))
    other_finetune["stages"][1]["overrides"] = {"model": {"init_args": {"lr": 0.01}}}
    other_pretrain = json.loads(json.dumps(clustered))
    other_pretrain["stages"][0]["overrides"] = {"model": {"init_args": {"lr": 0.01}}}
    exp["methods"] = {"baseline": exp["methods"]["baseline"], "a": clustered, "b": other_finetune}
    exp["methods"]["c"] = other_pretrain
    exp_file = write_yaml(tmp_path, "exp.yaml", exp)
    main(["experiment", "--config", exp_file, "--output_dir", str(tmp_path / "out"), "--seeds", "0"])
    out = capsys.readouterr().out
    seed_dir = tmp_path / "out/seed0"
    pretrained = json.loads((seed_dir / "a/pretrain/stage.json").read_text())["checkpoint"]
    assert f"seed 0 (1/1) | b | stage pretrain: the same stage already ran: {pretrained}" in out
    assert not (seed_dir / "b/pretrain").exists()
    assert (seed_dir / "c/pretrain/stage.json").is_file()  # another pretraining config: trained
    config = OmegaConf.load(next((seed_dir / "b/finetune").rglob("config.yaml")))
    assert config.model.init_args.pretrained_checkpoint == pretrained
    result = json.loads((tmp_path / "out/results.json").read_text())
    assert set(result["runs"]) == {"baseline", "a", "b", "c"}
