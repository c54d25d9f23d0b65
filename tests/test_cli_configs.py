"""Every YAML under configs/ instantiates; the CLI trains; the experiment writes its results."""

import json
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, TINY_COUNTS
from jsonargparse import ArgumentParser

from clusterlight.cli import ClusterlightCLI, main
from clusterlight.data import AudioDataModule

CONFIGS = ROOT / "configs"
TINY_DATA = {
    "data": {
        "class_path": "clusterlight.data.AudioDataModule",
        "init_args": {
            "source": {
                "class_path": "clusterlight.data.SyntheticSource",
                "init_args": {
                    "counts": TINY_COUNTS,
                    "sample_rate": 8000,
                    "duration": 1.0,
                    "snr_db": [6.0, 12.0],
                },
            },
            "classes": ["dog_bark", "baby_cry", "gunshot", "background"],
            "sample_rate": 8000,
            "duration": 1.0,
            "batch_size": 16,
        },
    }
}


def _tiny_data(tmp_path):
    cfg = json.loads(json.dumps(TINY_DATA))
    cfg["data"]["init_args"]["source"]["init_args"]["root"] = str(tmp_path / "synth")
    cfg["data"]["init_args"]["cache_dir"] = str(tmp_path / "cache")
    return cfg


def _write(tmp_path, name, cfg) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.parametrize("path", sorted((CONFIGS / "data").glob("*.yaml")), ids=lambda p: p.name)
def test_data_configs_instantiate(path, tmp_path):
    parser = ArgumentParser()
    parser.add_subclass_arguments(AudioDataModule, "data")
    cfg = parser.parse_path(str(path))
    dm = parser.instantiate_classes(cfg).data
    assert isinstance(dm, AudioDataModule)


@pytest.mark.parametrize("model", sorted((CONFIGS / "model").glob("*.yaml")), ids=lambda p: p.name)
@pytest.mark.parametrize("trainer", ["cpu.yaml", "gpu.yaml", "ddp_cpu.yaml", "ddp_gpu.yaml"])
def test_model_and_trainer_configs_instantiate(model, trainer, tmp_path):
    args = [
        "--config",
        str(CONFIGS / "trainer" / trainer),
        "--config",
        str(model),
        "--config",
        _write(tmp_path, "d.yaml", _tiny_data(tmp_path)),
    ]
    if "gpu" in trainer:
        args += [
            "--trainer.accelerator",
            "cpu",
            "--trainer.precision",
            "32",
            "--trainer.devices",
            "1",
            "--trainer.strategy",
            "auto",
        ]
    if "ddp_cpu" in trainer:
        args += ["--trainer.devices", "1", "--trainer.strategy", "auto"]
    cli = ClusterlightCLI(args=args, run=False)
    assert cli.model.class_names == ["dog_bark", "baby_cry", "gunshot", "background"]
    assert cli.trainer.max_epochs == 20


@pytest.mark.parametrize("logger", sorted((CONFIGS / "logger").glob("*.yaml")), ids=lambda p: p.name)
def test_logger_configs_instantiate(logger, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    args = [
        "--config",
        str(CONFIGS / "trainer/cpu.yaml"),
        "--config",
        str(logger),
        "--config",
        str(CONFIGS / "model/baseline_lstm.yaml"),
    ]
    args += [
        "--config",
        _write(tmp_path, "d.yaml", _tiny_data(tmp_path)),
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
    ]
    cli = ClusterlightCLI(args=args, run=False)
    assert cli.trainer.logger is not None and logger.stem.lower() in type(cli.trainer.logger).__name__.lower()


def test_experiment_configs_reference_existing_files():
    for exp in sorted((CONFIGS / "experiment").glob("*.yaml")):
        spec = yaml.safe_load(exp.read_text())
        files = list(spec.get("common", [])) + [
            f for m in spec["methods"].values() for s in m["stages"] for f in s.get("configs", [])
        ]
        for f in files:
            assert (exp.parent / f).is_file(), f"{exp.name} names missing {f}"


def test_cli_fit_fast_dev_run(tmp_path):
    data = _write(tmp_path, "d.yaml", _tiny_data(tmp_path))
    main(
        [
            "fit",
            "--config",
            str(CONFIGS / "trainer/cpu.yaml"),
            "--config",
            str(CONFIGS / "model/pretrain_lstm.yaml"),
            "--config",
            data,
            "--trainer.fast_dev_run",
            "2",
            "--trainer.default_root_dir",
            str(tmp_path),
            "--model.init_args.frontend.init_args.sample_rate",
            "8000",
        ]
    )
    main(
        [
            "fit",
            "--config",
            str(CONFIGS / "trainer/cpu.yaml"),
            "--config",
            str(CONFIGS / "model/baseline_cnn.yaml"),
            "--config",
            data,
            "--trainer.fast_dev_run",
            "1",
            "--trainer.default_root_dir",
            str(tmp_path),
            "--model.init_args.frontend.init_args.sample_rate",
            "8000",
        ]
    )
    assert (tmp_path / "synth").exists() and any((tmp_path / "cache").glob("waves-*"))


@pytest.mark.parametrize(
    "mixing",
    [
        {"class_path": "clusterlight.data.BackgroundMix", "init_args": {"p": 1.0, "snr_db": [0.0, 10.0]}},
        {"class_path": "clusterlight.data.WithinClusterMix", "init_args": {"p": 1.0}},
    ],
)
def test_cli_fit_with_batch_mixing(tmp_path, mixing):
    cfg = _tiny_data(tmp_path)
    cfg["data"]["init_args"].update(mixing=mixing, balanced_clusters=True)
    model = [
        "--model.init_args.frontend.init_args.sample_rate",
        "8000",
        "--model.init_args.cluster_loss_weight",
        "1.0",
    ]
    cli = ClusterlightCLI(
        args=[
            "fit",
            "--config",
            str(CONFIGS / "trainer/cpu.yaml"),
            "--config",
            str(CONFIGS / "model/finetune_lstm.yaml"),
            "--config",
            _write(tmp_path, "d.yaml", cfg),
            "--trainer.fast_dev_run",
            "2",
            "--trainer.default_root_dir",
            str(tmp_path),
            *model,
        ]
    )
    assert type(cli.datamodule.mixing).__name__ == mixing["class_path"].rsplit(".", 1)[1]
    assert cli.datamodule.mixing.p == 1.0 and cli.datamodule.balanced_clusters


def test_cli_fit_then_test_from_checkpoint(tmp_path, capsys):
    data = _write(tmp_path, "d.yaml", _tiny_data(tmp_path))
    common = [
        "--config",
        str(CONFIGS / "trainer/cpu.yaml"),
        "--config",
        str(CONFIGS / "model/baseline_lstm.yaml"),
        "--config",
        data,
        "--trainer.default_root_dir",
        str(tmp_path),
        "--model.init_args.frontend.init_args.sample_rate",
        "8000",
    ]
    main(["fit", *common, "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"])
    ckpt = next(Path(tmp_path).rglob("best-*.ckpt"))
    main(["test", *common, "--ckpt_path", str(ckpt)])
    assert "test/macro_err" in capsys.readouterr().out


def test_data_synth_command(tmp_path, capsys):
    main(
        [
            "data",
            "synth",
            "--out",
            str(tmp_path / "s"),
            "--scale",
            "0.02",
            "--sample-rate",
            "8000",
            "--duration",
            "0.5",
        ]
    )
    assert (tmp_path / "s" / "manifest.csv").is_file()
    assert "wrote" in capsys.readouterr().out


def _tiny_experiment(tmp_path) -> dict:
    model_over = {
        "model": {
            "init_args": {
                "frontend": {"init_args": {"sample_rate": 8000}},
                "backbone": {"init_args": {"hidden": 32, "layers": 1}},
            }
        }
    }
    return {
        "name": "tiny",
        "seeds": [0, 1],
        "common": [
            str(CONFIGS / "trainer/cpu.yaml"),
            str(CONFIGS / "logger/csv.yaml"),
            _write(tmp_path, "d.yaml", _tiny_data(tmp_path)),
        ],
        "overrides": {
            "trainer": {"enable_progress_bar": False, "enable_model_summary": False, "max_epochs": 1},
            **model_over,
        },
        "methods": {
            "baseline": {"stages": [{"name": "fit", "configs": [str(CONFIGS / "model/baseline_lstm.yaml")]}]},
            "clustered": {
                "stages": [
                    {"name": "pretrain", "configs": [str(CONFIGS / "model/pretrain_lstm.yaml")]},
                    {
                        "name": "finetune",
                        "configs": [str(CONFIGS / "model/finetune_lstm.yaml")],
                        "init_from": "pretrain",
                    },
                ]
            },
        },
    }


def test_experiment_writes_complete_results_and_reuses_finished_runs(tmp_path, capsys):
    exp_file = _write(tmp_path, "exp.yaml", _tiny_experiment(tmp_path))
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
    assert "| clustered |" in md and "error reduction vs baseline" in md and "**macro**" in md
    assert "validation error, pooled over seeds" in md
    assert (tmp_path / "out/seed1/clustered/finetune").is_dir()


def test_run_hash_follows_the_configs_not_the_folder(tmp_path):
    from omegaconf import OmegaConf

    from clusterlight.experiment import run_hash

    exp_file = Path(_write(tmp_path, "exp.yaml", _tiny_experiment(tmp_path)))
    exp = OmegaConf.load(exp_file)
    spec = exp.methods.clustered
    same = run_hash(exp, spec, 0, exp_file)
    assert same == run_hash(OmegaConf.load(exp_file), spec, 0, exp_file)
    assert same != run_hash(exp, spec, 1, exp_file)
    exp.overrides.trainer.max_epochs = 2
    assert same != run_hash(exp, spec, 0, exp_file)


def test_experiment_rejects_unknown_method(tmp_path):
    exp_file = _write(tmp_path, "exp.yaml", _tiny_experiment(tmp_path))
    with pytest.raises(ValueError, match=r"no method\(s\) \['bogus'\]"):
        main(
            ["experiment", "--config", exp_file, "--output_dir", str(tmp_path / "out"), "--methods", "bogus"]
        )


def test_merge_replaces_a_node_whose_class_changes():
    from clusterlight.experiment import merge_configs

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


def test_summary_compares_methods_on_shared_seeds():
    from clusterlight.experiment import summarize

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
    from clusterlight.experiment import pooled_errors

    fold_a = [[3, 1], [0, 1]]  # class a: 3 of 4 right; class b: 1 of 1
    fold_b = [[1, 0], [3, 1]]  # class a: 1 of 1; class b: 1 of 4
    pooled = pooled_errors([fold_a, fold_b], ["a", "b"])
    assert pooled["err_a"] == pytest.approx(1 / 5) and pooled["err_b"] == pytest.approx(3 / 5)
    assert pooled["macro_err"] == pytest.approx(0.4)


def test_cross_validate_makes_each_seed_validate_on_its_own_part(tmp_path):
    from omegaconf import OmegaConf

    from clusterlight.experiment import stage_config

    exp_file = Path(_write(tmp_path, "exp.yaml", _tiny_experiment(tmp_path)))
    exp = OmegaConf.load(exp_file)
    stage = exp.methods.baseline.stages[0]
    assert "val_part" not in stage_config(exp, stage, 3, tmp_path / "run", exp_file, {})["data"]["init_args"]
    exp.cross_validate = True
    assert stage_config(exp, stage, 3, tmp_path / "run", exp_file, {})["data"]["init_args"]["val_part"] == 3
