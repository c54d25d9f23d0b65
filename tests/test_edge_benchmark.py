"""The edge benchmark's verdicts: each target met or missed by its figure, the front-end row no target."""

import json

import pytest
from helpers.benchmarks import load_benchmark

bench = load_benchmark("edge")


def speed(fp32_bytes, int8_bytes, fp32_b1, int8_b1):
    row = {"bytes": {"fp32": fp32_bytes, "int8": int8_bytes}}
    row["PyTorch fp32"] = {1: fp32_b1, 64: fp32_b1}
    row["ONNX fp32"] = {1: fp32_b1, 64: fp32_b1}
    row["ONNX int8"] = {1: int8_b1, 64: int8_b1}
    return row


def accuracy(low, high):
    return {"torch": 0.2, "fp32": 0.2, "int8": 0.2, "change": (low + high) / 2, "low": low, "high": high}


def stream(rtf, delay_max, identical):
    return {"rtf": rtf, "delay_max": delay_max, "bound": 2.75, "identical": identical}


def test_each_target_is_met_or_missed_by_its_figure():
    speeds = {"LSTM": speed(1000, 340, 500, 600), "CNN": speed(1000, 300, 200, 400)}
    accuracies = {
        ("LSTM", "baseline"): accuracy(-0.03, 0.01),
        ("CNN", "baseline"): accuracy(-0.07, 0.04),
        ("CNN", "baseline, front end int8 too (seed 0)"): accuracy(1.4, 2.4),
    }
    streams = {("LSTM", "ONNX int8"): stream(0.01, 2.3, True), ("CNN", "ONNX int8"): stream(0.06, 3.0, False)}
    table = bench.targets_table(speeds, accuracies, streams)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table}
    assert rows["LSTM: int8 bytes <= 0.35x fp32"].endswith("| 0.34x | met |")
    assert rows["LSTM: int8 clips/s >= 1.5x ONNX fp32 at batch 1"].endswith("| 1.20x | **missed** |")
    assert rows["CNN: int8 clips/s >= 1.5x ONNX fp32 at batch 1"].endswith("| 2.00x | met |")
    assert rows["LSTM baseline: macro-error change interval within ±5%"].endswith("met |")
    assert rows["CNN baseline: macro-error change interval within ±5%"].endswith("**missed** |")
    assert not [r for r in rows if "front end" in r]  # a measurement, not a target
    assert rows["LSTM ONNX int8: real-time factor <= 0.05"].endswith("| 0.0100 | met |")
    assert not [r for r in rows if r.startswith("CNN") and "real-time" in r]  # the target is the LSTM's
    assert rows["CNN ONNX int8: delay <= window + median span"].endswith("**missed** |")
    assert rows["CNN ONNX int8: streamed events = offline"].endswith("| differ | **missed** |")


def _rare4_setting(folder, seeds):
    """A results folder as benchmarks/rare4.py writes it: results.json and each run's best checkpoint."""
    stages = {"weighted_ce": "fit", "clustered": "finetune"}
    methods = {
        m: {"stages": [{"name": "pretrain"}] * (m == "clustered") + [{"name": s}]} for m, s in stages.items()
    }
    runs = {m: {str(seed): {} for seed in seeds} for m in stages}
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"experiment": {"methods": methods}, "runs": runs}))
    for method, stage in stages.items():
        for seed in seeds:
            checkpoints = (
                folder / f"seed{seed}" / method / stage / "lightning_logs" / "version_0" / "checkpoints"
            )
            checkpoints.mkdir(parents=True)
            (checkpoints / "best-epoch=003.ckpt").write_bytes(b"")


def test_rare4_runs_are_the_selected_checkpoints_of_each_seed(tmp_path):
    for setting in bench.RARE4.values():
        _rare4_setting(tmp_path / setting, [0, 1, 2, 3, 4])
    found = bench.rare4_runs(tmp_path, speed_seed=0)
    assert len(found) == 2 * 2 * 5
    ckpt = found[("rare4 CNN", "clustered", 4)]
    assert ckpt.relative_to(tmp_path).parts[:4] == (
        "rare4_cnn_2-2-1-26_1to2",
        "seed4",
        "clustered",
        "finetune",
    )
    assert ckpt.name == "best-epoch=003.ckpt"


def test_rare4_runs_missing_or_without_the_speed_seed_exit_naming_the_training_command(tmp_path):
    with pytest.raises(
        SystemExit, match=rf"benchmarks/rare4.py --data_root PATH .* --out {tmp_path} --results_dir"
    ):
        bench.rare4_runs(tmp_path, speed_seed=0)
    for setting in bench.RARE4.values():
        _rare4_setting(tmp_path / setting, [1, 2])
    with pytest.raises(SystemExit, match=r"weighted_ce for seeds \[1, 2\] \(--speed_seed 0\)"):
        bench.rare4_runs(tmp_path, speed_seed=0)
    assert len(bench.rare4_runs(tmp_path, speed_seed=1)) == 2 * 2 * 2
