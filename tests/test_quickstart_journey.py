"""The README's main job as a user runs it: the shipped ``configs/experiment/quickstart.yaml`` through
``clusterlight experiment``, every setting left on (the feature cache, three read-outs of one pretraining,
the validation choice), on tiny synthetic data and one epoch per stage."""

import json

import pytest
from helpers.configs import CONFIGS
from helpers.data import TINY_COUNTS

from clusterlight.cli import main

pytestmark = pytest.mark.slow  # trains every method of the shipped quickstart


def test_the_shipped_quickstart_trains_and_reports_every_method(tmp_path, capsys):
    out = tmp_path / "quickstart"
    main(
        [
            "experiment",
            "--config", str(CONFIGS / "experiment/quickstart.yaml"),
            "--output_dir", str(out),
            "--seeds", "0",
            "--trainer.max_epochs", "1",
            "--data.init_args.source.init_args.root", str(tmp_path / "synth"),
            "--data.init_args.source.init_args.counts", json.dumps(TINY_COUNTS),
            "--data.init_args.cache_dir", str(tmp_path / "cache"),
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    result = json.loads((out / "results.json").read_text())
    methods = ["baseline", "clustered", "clustered_ncm", "clustered_centroid_head"]
    assert list(result["runs"]) == methods
    for method in methods:
        assert list(result["runs"][method]) == ["0"]
        assert 0.0 <= result["runs"][method]["0"]["metrics"]["macro_err"] <= 1.0
        assert (out / f"seed0/{method}/result.json").exists()
    # batches read the log-mel feature cache, built once for the one front-end setting
    assert len(list((tmp_path / "cache").glob("logmel-*/index.json"))) == 1  # one finished log-mel cache
    # the three read-outs share one pretraining, trained once
    assert len(list(out.glob("seed0/*/pretrain/**/best-*.ckpt"))) == 1
    # one seed is below the choice's min_seeds (3): the report says so instead of choosing
    assert result["choice"]["chosen"] is None
    report = (out / "results.md").read_text()
    assert "clustered_chosen_on_val" in report and "clustered_chosen_on_val" in printed
