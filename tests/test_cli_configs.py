"""Every YAML under configs/ instantiates, alone or composed as documented; the CLI trains."""

from pathlib import Path

import pytest
import yaml
from helpers.configs import CONFIGS, model_configs, tiny_data, write_yaml
from jsonargparse import ArgumentParser
from lightning.pytorch.callbacks import ModelCheckpoint

from clusterlight.cli import main
from clusterlight.data import AudioDataModule
from clusterlight.lightning_cli import ClusterlightCLI

CLASSES = ["dog_bark", "baby_cry", "gunshot", "background"]
STAGES = {"baseline": "Classifier", "pretrain": "EmbeddingPretrain", "finetune": "JointFinetune"}
NETS = {"lstm": "LSTMEmbedder", "cnn": "CNNEmbedder"}


@pytest.mark.parametrize("path", sorted((CONFIGS / "data").glob("*.yaml")), ids=lambda p: p.name)
def test_data_configs_instantiate(path, tmp_path):
    parser = ArgumentParser()
    parser.add_subclass_arguments(AudioDataModule, "data")
    cfg = parser.parse_path(str(path))
    dm = parser.instantiate_classes(cfg).data
    assert isinstance(dm, AudioDataModule)


def test_model_configs_are_the_stages_and_the_nets():
    """A stage config names the module class, a net config the front end and backbone; nothing else
    (adding a backbone = one Python file + one YAML in model/net/)."""
    assert sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml")) == sorted(STAGES)
    assert sorted(p.stem for p in (CONFIGS / "model/net").glob("*.yaml")) == sorted(NETS)
    for stage in STAGES:
        model = yaml.safe_load((CONFIGS / f"model/{stage}.yaml").read_text())["model"]
        assert "class_path" in model and not {"frontend", "backbone"} & set(model["init_args"])
    for net in NETS:
        model = yaml.safe_load((CONFIGS / f"model/net/{net}.yaml").read_text())["model"]
        assert set(model) == {"init_args"} and set(model["init_args"]) == {"frontend", "backbone"}


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("stage", sorted(STAGES))
@pytest.mark.parametrize("trainer", ["cpu.yaml", "gpu.yaml", "ddp_cpu.yaml", "ddp_gpu.yaml"])
def test_model_and_trainer_configs_instantiate(stage, net, trainer, tmp_path):
    args = [
        "--config",
        str(CONFIGS / "trainer" / trainer),
        *model_configs(stage, net),
        "--config",
        write_yaml(tmp_path, "d.yaml", tiny_data(tmp_path)),
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
    assert cli.model.class_names == CLASSES
    assert cli.trainer.max_epochs == 20
    assert type(cli.model).__name__ == STAGES[stage] and type(cli.model.backbone).__name__ == NETS[net]
    assert cli.trainer.checkpoint_callback.monitor == "val/macro_err"  # every trainer config: the same rule


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("stage", sorted(STAGES))
def test_fit_config_composes_stage_and_net(stage, net, tmp_path):
    """``fit --config model/<stage>.yaml --config model/net/<net>.yaml``: the net file (no class_path)
    fills the stage's init_args; the stage's own settings stay."""
    data = write_yaml(tmp_path, "d.yaml", tiny_data(tmp_path))
    stage_cfg = yaml.safe_load((CONFIGS / f"model/{stage}.yaml").read_text())["model"]
    net_cfg = yaml.safe_load((CONFIGS / f"model/net/{net}.yaml").read_text())["model"]["init_args"]
    cli = ClusterlightCLI(
        args=["--config", str(CONFIGS / "trainer/cpu.yaml"), *model_configs(stage, net), "--config", data],
        run=False,
    )
    model = cli.config.model
    assert model.class_path == stage_cfg["class_path"]
    for part in ("frontend", "backbone"):
        assert model.init_args[part].class_path == net_cfg[part]["class_path"]
        for k, v in net_cfg[part]["init_args"].items():
            assert model.init_args[part].init_args[k] == v
    assert model.init_args.lr == stage_cfg["init_args"]["lr"]
    assert model.init_args.loss.class_path == stage_cfg["init_args"]["loss"]["class_path"]
    assert type(cli.model).__name__ == STAGES[stage]
    assert type(cli.model.backbone).__name__ == NETS[net] and type(cli.model.frontend).__name__ == "LogMel"
    assert cli.model.frontend.n_mels == net_cfg["frontend"]["init_args"]["n_mels"]
    assert type(cli.model.loss).__name__ == stage_cfg["init_args"]["loss"]["class_path"].rsplit(".", 1)[1]


def _assert_contains(config, fragment, where=""):
    """Every leaf of ``fragment`` is in ``config`` at the same place (lists and tuples alike)."""
    if isinstance(fragment, dict):
        for k, v in fragment.items():
            _assert_contains(config[k], v, f"{where}.{k}")
    else:
        same = list(config) == fragment if isinstance(fragment, list) else config == fragment
        assert same, f"{where}: {config!r} != {fragment!r}"


@pytest.mark.parametrize(
    "fragment, stage, built",
    [
        ("data/mixing/background.yaml", "baseline", lambda cli: type(cli.datamodule.mixing).__name__),
        ("data/mixing/within_cluster.yaml", "finetune", lambda cli: type(cli.datamodule.mixing).__name__),
        ("model/loss/cross_entropy.yaml", "baseline", lambda cli: type(cli.model.loss).__name__),
        ("model/loss/cluster_softmax.yaml", "pretrain", lambda cli: type(cli.model.loss).__name__),
        ("model/frontend/specaug.yaml", "finetune", lambda cli: len(cli.model.frontend.freq_masks)),
    ],
)
def test_fragment_configs_compose(fragment, stage, built, tmp_path):
    """The blocks the experiments share, each written once: added after the stage and net configs,
    a fragment sets its settings and nothing else is lost."""
    cfg = yaml.safe_load((CONFIGS / fragment).read_text())
    args = [
        "--config",
        str(CONFIGS / "trainer/cpu.yaml"),
        "--config",
        write_yaml(tmp_path, "d.yaml", tiny_data(tmp_path)),
        *model_configs(stage, "lstm"),
    ]
    cli = ClusterlightCLI(args=[*args, "--config", str(CONFIGS / fragment)], run=False)
    _assert_contains(cli.config.as_dict(), cfg)
    expected = {
        "background.yaml": "BackgroundMix",
        "within_cluster.yaml": "WithinClusterMix",
        "cross_entropy.yaml": "CrossEntropy",
        "cluster_softmax.yaml": "ClusterSoftmaxLoss",
        "specaug.yaml": 2,
    }
    assert built(cli) == expected[Path(fragment).name]
    assert type(cli.model).__name__ == STAGES[stage] and type(cli.model.backbone).__name__ == "LSTMEmbedder"


def test_checkpoint_callback_is_built_in_with_the_selection_rule(tmp_path):
    """One ModelCheckpoint for every run (no trainer config names it): best val macro error and the
    last epoch; any of its settings can be changed on the command line."""
    args = [
        "--config",
        str(CONFIGS / "trainer/cpu.yaml"),
        *model_configs("baseline", "lstm"),
        "--config",
        write_yaml(tmp_path, "d.yaml", tiny_data(tmp_path)),
    ]
    for trainer in (CONFIGS / "trainer").glob("*.yaml"):
        assert "callbacks" not in yaml.safe_load(trainer.read_text())["trainer"], trainer.name
    cli = ClusterlightCLI(args=args, run=False)
    ckpts = [c for c in cli.trainer.callbacks if isinstance(c, ModelCheckpoint)]
    assert ckpts == [cli.trainer.checkpoint_callback]
    ckpt = cli.trainer.checkpoint_callback
    assert (ckpt.monitor, ckpt.mode, ckpt.save_last, ckpt.filename) == (
        "val/macro_err",
        "min",
        True,
        "best-{epoch:03d}",
    )
    cli = ClusterlightCLI(
        args=[*args, "--checkpoint.monitor", "val/acc", "--checkpoint.mode", "max"], run=False
    )
    ckpt = cli.trainer.checkpoint_callback
    assert (ckpt.monitor, ckpt.mode, ckpt.save_last, ckpt.filename) == (
        "val/acc",
        "max",
        True,
        "best-{epoch:03d}",
    )


@pytest.mark.parametrize("logger", sorted((CONFIGS / "logger").glob("*.yaml")), ids=lambda p: p.name)
def test_logger_configs_instantiate(logger, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    args = [
        "--config",
        str(CONFIGS / "trainer/cpu.yaml"),
        "--config",
        str(logger),
        *model_configs("baseline", "lstm"),
    ]
    args += [
        "--config",
        write_yaml(tmp_path, "d.yaml", tiny_data(tmp_path)),
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
    data = write_yaml(tmp_path, "d.yaml", tiny_data(tmp_path))
    main(
        [
            "fit",
            "--config",
            str(CONFIGS / "trainer/cpu.yaml"),
            *model_configs("pretrain", "lstm"),
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
            *model_configs("baseline", "cnn"),
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
    cfg = tiny_data(tmp_path)
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
            *model_configs("finetune", "lstm"),
            "--config",
            write_yaml(tmp_path, "d.yaml", cfg),
            "--trainer.fast_dev_run",
            "2",
            "--trainer.default_root_dir",
            str(tmp_path),
            *model,
        ]
    )
    assert type(cli.datamodule.mixing).__name__ == mixing["class_path"].rsplit(".", 1)[1]
    assert cli.datamodule.mixing.p == 1.0 and cli.datamodule.clusters.balanced  # balanced_clusters


def test_cli_fit_then_test_from_checkpoint(tmp_path, capsys):
    data = write_yaml(tmp_path, "d.yaml", tiny_data(tmp_path))
    common = [
        "--config",
        str(CONFIGS / "trainer/cpu.yaml"),
        *model_configs("baseline", "lstm"),
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
