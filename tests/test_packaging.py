"""What a ``pip install`` user gets: the configs, the version, the licence, type information."""

import re
import subprocess
import sys
import zipfile

import pytest
from helpers.configs import tiny_data, write_yaml

from clusterlight import __version__
from clusterlight.cli import main
from clusterlight.packaged_configs import ROOT, resolve_config_args


def test_version_and_configs_list(capsys):
    main(["--version"])
    assert capsys.readouterr().out.strip() == f"clusterlight {__version__}"
    main(["configs", "list"])
    out = capsys.readouterr().out
    assert "clusterlight:trainer/cpu.yaml" in out and "clusterlight:experiment/quickstart.yaml" in out
    assert "clusterlight:model/net/lstm.yaml" in out


@pytest.mark.slow
def test_packaged_config_names_resolve_and_a_wrong_one_says_where_to_look(tmp_path):
    args = resolve_config_args(
        ["fit", "--config", "clusterlight:trainer/cpu.yaml", "--config=clusterlight:model/pretrain.yaml"]
    )
    assert args == [
        "fit",
        "--config",
        str(ROOT / "trainer/cpu.yaml"),
        f"--config={ROOT / 'model/pretrain.yaml'}",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "clusterlight", "fit", "--config", "clusterlight:trainer/nope.yaml"],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "clusterlight configs list" in done.stderr


def test_a_fit_from_packaged_configs_alone(tmp_path):
    data = write_yaml(tmp_path, "data.yaml", tiny_data(tmp_path))
    main(
        [
            "fit",
            "--config",
            "clusterlight:trainer/cpu.yaml",
            "--config",
            data,
            "--config",
            "clusterlight:model/baseline.yaml",
            "--config",
            "clusterlight:model/net/lstm.yaml",
            "--model.init_args.backbone.init_args.hidden",
            "8",
            "--model.init_args.frontend.init_args.sample_rate",
            "8000",
            "--trainer.max_epochs",
            "1",
            "--trainer.limit_train_batches",
            "2",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.default_root_dir",
            str(tmp_path / "run"),
        ]  # fmt: skip
    )
    assert list((tmp_path / "run").rglob("last.ckpt"))


@pytest.mark.slow
def test_the_wheel_holds_configs_licence_and_py_typed(tmp_path):
    root = ROOT.parents[1]
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(root)],
        check=True,
        capture_output=True,
        text=True,
    )
    # the package's own build prints no deprecation (e.g. setuptools' licence-metadata warnings)
    assert not re.search(r"BuildBackendWarning|DeprecationWarning|deprecated", build.stdout + build.stderr)
    (wheel,) = tmp_path.glob("clusterlight-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "clusterlight/configs/trainer/cpu.yaml" in names
    assert "clusterlight/configs/experiment/quickstart.yaml" in names
    assert "clusterlight/py.typed" in names
    assert any(n.endswith("licenses/LICENSE") or n.endswith("/LICENSE") for n in names), names[-8:]
    metadata = zipfile.ZipFile(wheel).read(f"clusterlight-{__version__}.dist-info/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata and "Classifier: License ::" not in metadata
    # the package page's description has no links relative to the repository
    description = metadata.split("\n\n", 1)[1]
    assert "what it found" in description.lower()
    assert not re.search(r"\]\((?![a-z]+:)", description)
