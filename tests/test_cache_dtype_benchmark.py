"""The cache-dtype benchmark's report: changes against float32 with intervals, and its verdict per dtype."""

import json

import pytest
from helpers.benchmarks import load_benchmark

bench = load_benchmark("cache_dtype")


def entry(mean, low=None, high=None):
    out = {"mean": mean, "std": 0.01, "seeds": [0, 1, 2], "clips": 560, "gap": 0.0}
    if low is not None:
        out |= {"change": (low + high) / 2, "low": low, "high": high}
    return out


def rows(int16_low, int16_high):
    per_dtype = {
        "float32": entry(0.2),
        "float16": entry(0.21, -0.1, 0.2),
        "int16": entry(0.2, int16_low, int16_high),
    }
    stored = {
        "float16": {**entry(0.2, -0.001, 0.002), "same": 0.999},
        "int16": {**entry(0.2, 0.0, 0.0), "same": 1.0},
    }
    return {
        "bytes_per_hour": {"float32": 230.4e6, "float16": 115.2e6, "int16": 115.2e6},
        "methods": {"baseline": per_dtype},
        "test_audio": {"baseline": stored},
    }


def test_a_dtype_shows_a_loss_only_where_an_interval_lies_above_zero():
    lines = bench.verdicts({"quickstart": rows(-0.05, 0.3), "rare4": rows(0.02, 0.4)})
    assert lines[0] == (
        "- float16: no interval lies above zero (no loss shown); the largest upper end, +20.0%, is a loss "
        "these runs cannot rule out; the float32 models on test audio stored in float16: every interval "
        "within [-0.1%, +0.2%], the same class on at least 99.9% of clips."
    )
    assert lines[1].startswith("- int16: a loss: rare4 baseline [+2.0%, +40.0%];")


def test_report_gives_bytes_per_hour_and_each_change_with_its_interval():
    text = bench.report({"Quickstart": rows(-0.05, 0.3)}, "python benchmarks/cache_dtype.py", 12.0)
    assert "MB per hour of audio: float32 230.4 (1.00x), float16 115.2 (0.50x), int16 115.2 (0.50x)." in text
    assert "| baseline | 0.200 ± 0.010 | 0.210 ± 0.010 | 0.200 ± 0.010 | +5.0% [-10.0%, +20.0%] |" in text
    assert "+12.5% [-5.0%, +30.0%] |" in text
    assert "| baseline | 0.200, +0.1% [-0.1%, +0.2%], 99.9% | 0.200, +0.0% [+0.0%, +0.0%], 100.0% |" in text


def test_more_errors_than_float32_are_a_positive_change_with_its_interval():
    labels = [0] * 50 + [1] * 50
    right = {"labels": labels, "predictions": labels}
    float32 = {s: {**right, "predictions": [1] * 10 + labels[10:]} for s in (0, 1, 2)}  # 10% of class 0 wrong
    worse = {s: {**right, "predictions": [1] * 20 + labels[20:]} for s in (0, 1, 2)}  # 20% wrong
    got = bench.change_against(float32, worse, ["a", "b"])
    assert got["change"] == pytest.approx(1.0)  # twice the errors
    assert 0 < got["low"] <= got["change"] <= got["high"]


def test_missing_rare4_runs_exit_naming_the_training_command(tmp_path):
    runs = tmp_path / "rare4"
    with pytest.raises(SystemExit, match=rf"--seeds 0 1 2 3 4 --out {runs} --results_dir {runs}$"):
        bench.rare4_runs(runs)
    (runs / bench.RARE4_SETTING).mkdir(parents=True)
    done = {"runs": {m: {"0": {}} for m in bench.RARE4_METHODS}}
    (runs / bench.RARE4_SETTING / "results.json").write_text(json.dumps(done))
    with pytest.raises(SystemExit, match=r"--out \S*/rare4_float16 --results_dir \S*/rare4_float16 --data"):
        bench.rare4_runs(runs)
