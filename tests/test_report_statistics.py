"""The experiment's own results carry the paired statistics, resampling test clips when runs saved
their per-clip predictions (every run does now)."""

import json

from omegaconf import OmegaConf

from clusterlight.experiment.report import write_results


def _run(preds: list[int], labels: list[int]) -> dict:
    errs = {}
    for c, name in enumerate(["a", "b"]):
        idx = [i for i, y in enumerate(labels) if y == c]
        errs[f"err_{name}"] = sum(preds[i] != c for i in idx) / len(idx)
    errs["macro_err"] = (errs["err_a"] + errs["err_b"]) / 2
    errs["acc"] = sum(p == y for p, y in zip(preds, labels)) / len(labels)
    return {"metrics": errs, "predictions": preds, "labels": labels, "wall_s": 1.0}


def test_results_hold_paired_intervals_and_the_table_shows_them(tmp_path):
    labels = [0] * 10 + [1] * 10
    ref = {s: _run([1 - y if i % 3 == s else y for i, y in enumerate(labels)], labels) for s in range(3)}
    better = {s: _run(labels, labels) for s in range(3)}  # right on every clip
    result = write_results(
        tmp_path, OmegaConf.create({"name": "t"}), {"ref": ref, "m": better}, ["a", "b"], "ref"
    )
    m = result["comparison"]["methods"]["m"]
    assert m["reduction"]["resampled"] == "seeds and clips"
    assert m["reduction"]["macro_err"]["estimate"] == 1.0 and m["reduction"]["macro_err"]["excludes_zero"]
    assert m["share_better"] == 1.0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["comparison"]["methods"]["m"]["reduction"]["macro_err"]["excludes_zero"] is True
    table = (tmp_path / "results.md").read_text()
    assert "+100.0%" in table and "3/3" in table
