"""The rare4 report's forest plot (benchmarks/rare4.py): the rows it draws, their values, the PNG."""

from __future__ import annotations

import json

import pytest
from helpers import ROOT
from helpers.benchmarks import load_benchmark

RESULTS = ROOT / "benchmarks" / "results"


rare4 = load_benchmark("rare4")


def entry(estimate, low, high, pairs):
    return {
        "shared_seeds": pairs,
        "reduction": {"macro_err": {"estimate": estimate, "low": low, "high": high, "excludes_zero": False}},
    }


BOTH = ["1to2/0", "1to2/1", "2to1/0", "2to1/1"]
COMPARISON = {
    "reference": "weighted_ce",
    "strata": ["1to2", "2to1"],
    "methods": {
        "weighted_ce": {"seeds": BOTH},  # the reference: no row
        "focal": entry(-0.10, -0.30, 0.05, BOTH),
        "ce": entry(0.05, -0.10, 0.20, BOTH),
        "clustered_joint": entry(0.02, -0.05, 0.10, ["1to2/0", "1to2/1"]),
        "clustered_chosen_on_val": entry(0.10, 0.01, 0.20, BOTH),
        "clustered": entry(-0.01, -0.12, 0.09, BOTH),
        "weighted_ce_ema": entry(0.14, 0.03, 0.25, BOTH),
        "new_idea": entry(0.30, 0.10, 0.50, BOTH),  # in no group: drawn last
        "no_pairs": {"shared_seeds": [], "reduction": None},  # nothing to draw
    },
}


def test_rows_are_grouped_with_the_recipe_and_the_choice_first():
    rows = rare4.forest_rows(COMPARISON)
    assert [r.method for r in rows] == [
        "clustered",
        "clustered_chosen_on_val",  # the highlighted pair in that order, whatever their values
        "clustered_joint",
        "weighted_ce_ema",
        "ce",  # then largest reduction first within a group
        "focal",
        "new_idea",
    ]
    assert [r.group for r in rows[:2]] == [rare4.HIGHLIGHTED] * 2 and rows[-1].group == rare4.OTHER_GROUP
    focal = rows[5]
    assert (focal.estimate, focal.low, focal.high) == pytest.approx((-10.0, -30.0, 5.0))  # percent
    assert focal.label == "focal (4 runs)"
    assert rows[2].label == "clustered_joint (2 runs, 1to2 only)"  # pooled over one direction only


def test_one_panel_per_backbone_with_a_pooled_comparison_at_the_headline_setting():
    pooled = {
        ("lstm", "2:2:1:26", 1.0): COMPARISON,
        ("lstm", "2:2:1:26", 0.5): COMPARISON,  # the data-size curve: not drawn
        ("cnn", "6:1:2:16", 1.0): COMPARISON,  # another ratio: not drawn
    }
    panels = rare4.forest_panels(pooled)
    assert list(panels) == ["LSTM, train ratio 2:2:1:26, whole training fold, pooled over 1to2, 2to1"]


def test_the_committed_figure_draws_the_reports_intervals():
    """Every row of the committed report's figure is the pooled macro error reduction of its JSON, and
    the figure has a row for every method compared there."""
    report = json.loads((RESULTS / "rare4.json").read_text())
    pooled = rare4.report_pooled(report)
    panels = rare4.forest_panels(pooled)
    assert [title.split(",")[0] for title in panels] == ["LSTM", "CNN"]
    for backbone, rows in zip(rare4.BACKBONES, panels.values()):
        methods = pooled[backbone, "2:2:1:26", 1.0]["methods"]
        assert {r.method for r in rows} == set(methods) - {"weighted_ce"}
        for r in rows:
            red = methods[r.method]["reduction"]["macro_err"]
            assert (r.estimate, r.low, r.high) == pytest.approx(
                (100 * red["estimate"], 100 * red["low"], 100 * red["high"])
            )
    headline = (RESULTS / "rare4.md").read_text().split("## Headline: 2:2:1:26")[1].split("\n## ")[0]
    recipe = next(r for r in panels[next(iter(panels))] if r.method == "clustered")  # as the table says
    row = next(line for line in headline.splitlines() if line.startswith("| LSTM | clustered | "))
    assert f"| {recipe.estimate:+.1f}% [{recipe.low:+.1f}, {recipe.high:+.1f}] |" in row


def test_the_figure_is_a_png_and_redrawn_from_the_json(tmp_path):
    path = rare4.forest_figure(
        rare4.forest_panels({("cnn", "2:2:1:26", 1.0): COMPARISON}), tmp_path / "f.png"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rare4.main(["--figure", str(RESULTS / "rare4.json"), "--results_dir", str(tmp_path / "out")])
    assert (tmp_path / "out" / "rare4.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"settings": [], "pooled": []}))
    with pytest.raises(SystemExit, match="no pooled comparison at 2:2:1:26"):
        rare4.main(["--figure", str(empty), "--results_dir", str(tmp_path / "out")])
