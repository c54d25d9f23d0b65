"""benchmarks/detection.py's own functions on hand-made inputs (no training)."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.benchmarks import load_benchmark

from clusterlight.detection import Event
from clusterlight.inference.recordings import Detection
from clusterlight.runs import selected_checkpoint

bench = load_benchmark("detection")
CLASSES = ["dog_bark", "baby_cry", "gunshot"]


def test_centre_events_shift_each_window_to_its_central_hop():
    scores = np.zeros((9, 4))
    scores[3:5, 2] = 0.9  # windows 3 and 4 (of 2 s, hop 0.5 s) find a gunshot
    d = Detection(
        Path("a.wav"), np.zeros(16000), 8000, [*CLASSES, "background"], scores, 0.5, 2.0, 1,
        np.array([0.5, 0.5, 0.5, math.nan]), "given", [],
    )  # fmt: skip
    assert bench.centre_events(d) == [Event(2.25, 3.25, "gunshot", 0.9)]  # centres 2.5 and 3.0 +- hop / 2


def test_run_scores_and_the_report_say_which_method_is_ahead():
    reference = {
        "a.wav": [Event(10.0, 11.0, "gunshot"), Event(30.0, 31.0, "dog_bark"), Event(50, 51, "baby_cry")]
    }
    perfect = bench.run_scores(reference, reference, CLASSES, window_s=2.0)
    assert (perfect["f1"], perfect["er"], perfect["onset_offset"], perfect["n_sys"]) == (1.0, 0.0, 0.0, 3)
    early = {"a.wav": [e._replace(onset=e.onset - 1.5) for e in reference["a.wav"]]}
    late_found = bench.run_scores(reference, early, CLASSES, window_s=2.0)
    assert (late_found["f1"], late_found["f1_window_collar"], late_found["onset_offset"]) == (0.0, 1.0, -1.5)
    silent = bench.run_scores(reference, {"a.wav": []}, CLASSES, window_s=2.0)
    assert (silent["f1"], silent["er"], math.isnan(silent["onset_offset"])) == (0.0, 1.0, True)

    def run(figures):
        return {"window": figures, "centre": figures, "trimmed": figures, "thresholds": "checkpoint"}

    per_run = {"baseline": {0: run(silent), 1: run(silent)}, "clustered": {0: run(perfect), 1: run(perfect)}}
    text = bench.table(per_run, "window", CLASSES)
    assert "| clustered | 1.000 ± 0.000 | 0.000 ± 0.000 |" in text and "| checkpoint | 2 |" in text
    assert bench.verdict(per_run, "window").startswith(
        "clustered: beats baseline: event F1 +1.000, ER -1.000"
    )
    swapped = {"baseline": per_run["clustered"], "clustered": per_run["baseline"]}
    assert bench.verdict(swapped, "window").startswith("clustered: is worse than baseline")
    noisy = {"baseline": {0: run(silent), 1: run(perfect)}, "clustered": {0: run(perfect), 1: run(perfect)}}
    assert "no difference beyond the seed spread" in bench.verdict(noisy, "window")


def test_selected_checkpoint_is_the_newest_versions_best(tmp_path):
    folder = tmp_path / "seed0" / "baseline" / "fit" / "lightning_logs"
    for version in (0, 1):
        (folder / f"version_{version}" / "checkpoints").mkdir(parents=True)
        torch.save({}, folder / f"version_{version}" / "checkpoints" / f"best-epoch=00{version}.ckpt")
    found = selected_checkpoint(tmp_path, "baseline", 0, "fit")
    assert found == folder / "version_1" / "checkpoints" / "best-epoch=001.ckpt"
    with pytest.raises(FileNotFoundError, match="no selected checkpoint for clustered, seed 0"):
        selected_checkpoint(tmp_path, "clustered", 0, "finetune")


def test_the_report_says_its_command_machine_version_and_date():
    figures = {"f1": 0.5, "er": 0.5, "onset_offset": 0.0, "n_sys": 3, "f1_window_collar": 0.6}
    figures |= {f"f1_{c}": 0.5 for c in CLASSES}
    run = {"window": figures, "centre": figures, "trimmed": figures, "thresholds": "checkpoint"}
    run |= {
        "checkpoint": "best.ckpt",
        "test_macro_err": 0.2,
        "trim_s": 1.5,
        "train_s": 100.0,
        "detect_s": 10.0,
    }
    per_run = {"baseline": {0: run, 1: run}, "clustered": {0: run, 1: run}}
    a = type(
        "Args", (), {"recordings": 3, "minutes": 2.0, "long_seed": 20170, "hop": 0.25, "median_filter": 3}
    )
    times = {"total": 130.0, "train": 2.0, "generate": 8.6, "detect": 120.0}
    text = bench.render(a, per_run, CLASSES, [0, 1], 36, 16000, times)
    header = text.splitlines()[2]
    assert header.startswith("Command: `python benchmarks/detection.py")
    assert f"Run: {bench.machine()}, clusterlight {bench.__version__}, 20" in header
    assert bench.machine().endswith("-core " + bench.platform.machine().replace("_", "-") + " CPU")
