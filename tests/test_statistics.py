"""clusterlight.experiment.statistics (its tables: experiment.markdown) and benchmarks/pooling.py against
hand-computed cases (run dicts built by hand, no training)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from helpers.benchmarks import load_benchmark
from helpers.results import run

from clusterlight.experiment.markdown import comparison_markdown as markdown
from clusterlight.experiment.statistics import (
    compare,
    paired_differences,
    relative_reduction_ci,
    share_better,
    std_ratio_ci,
    std_with_ci,
    stratified_clip_counts,
)

CLASSES = ["a", "b"]


pooling = load_benchmark("pooling")
compare_pooled, pooled_markdown = pooling.compare_pooled, pooling.pooled_markdown
pooled_reduction_ci, pooled_std_ratio_ci = pooling.pooled_reduction_ci, pooling.pooled_std_ratio_ci
pooled_std_with_ci = pooling.pooled_std_with_ci


# the hand-made case: 4 clips of a, 2 of b, two seeds
LABELS = [0, 0, 0, 0, 1, 1]
REF_PREDS = {1: [0, 0, 1, 1, 1, 0], 2: [0, 0, 0, 1, 1, 1]}  # err_a .5 / .25, err_b .5 / 0
MET_PREDS = {1: [0, 0, 0, 0, 1, 0], 2: [0, 0, 0, 1, 1, 1]}  # err_a 0 / .25, err_b .5 / 0


def hand_runs(with_clips=True):
    ref = {s: run(p, LABELS, with_clips=with_clips) for s, p in REF_PREDS.items()}
    met = {s: run(p, LABELS, with_clips=with_clips) for s, p in MET_PREDS.items()}
    return ref, met


def random_runs(n_clips, seeds, err_ref, err_met, n_classes=2, rng_seed=0, with_clips=True):
    """Per seed, the reference wrong on a random ``err_ref`` share of each class's clips and the method
    on an ``err_met`` share; labels balanced over the classes."""
    rng = np.random.default_rng(rng_seed)
    labels = np.arange(n_clips) % n_classes
    names = [f"c{i}" for i in range(n_classes)]

    def preds(err):
        wrong = rng.random(n_clips) < err
        return np.where(wrong, (labels + 1) % n_classes, labels)

    ref = {s: run(preds(err_ref), labels, names, with_clips) for s in seeds}
    met = {s: run(preds(err_met), labels, names, with_clips) for s in seeds}
    return ref, met, names


def test_paired_differences_and_share_better_on_shared_seeds_with_ties():
    ref = {1: 0.3, 2: 0.2, 3: 0.5, 4: 0.1}
    met = {1: 0.2, 2: 0.2, 3: 0.6, 5: 0.0}  # seed 4 and 5 unshared
    diffs = paired_differences(ref, met)
    assert list(diffs) == [1, 2, 3]
    assert diffs[1] == pytest.approx(-0.1) and diffs[2] == 0.0 and diffs[3] == pytest.approx(0.1)
    assert share_better(ref, met) == pytest.approx((1 + 0.5 + 0) / 3)
    assert share_better({1: 0.5, 2: 0.5}, {1: 0.1, 2: 0.4}) == 1.0
    assert paired_differences({1: 0.1}, {2: 0.1}) == {} and share_better({1: 0.1}, {2: 0.1}) is None


def test_reduction_point_estimates_equal_hand_computed_values():
    ref, met = hand_runs()
    # mean over seeds: ref a .375, b .25, macro .3125; method a .125, b .25, macro .1875
    for res in (relative_reduction_ci(ref, met, CLASSES), relative_reduction_ci(*hand_runs(False), CLASSES)):
        assert res["err_a"]["estimate"] == pytest.approx((0.375 - 0.125) / 0.375)
        assert res["err_b"]["estimate"] == pytest.approx(0.0)
        assert res["macro_err"]["estimate"] == pytest.approx((0.3125 - 0.1875) / 0.3125)
    assert relative_reduction_ci(ref, met, CLASSES)["resampled"] == "seeds and clips"


def test_identical_methods_give_a_zero_width_interval_at_zero():
    ref, _, names = random_runs(200, range(5), 0.3, 0.3)
    res = relative_reduction_ci(ref, ref, names, n_boot=300)
    for k in ["err_c0", "err_c1", "macro_err"]:
        assert res[k]["estimate"] == 0.0
        assert res[k]["low"] == 0.0 and res[k]["high"] == 0.0
        assert res[k]["excludes_zero"] is False


def test_method_right_wherever_the_reference_is_wrong_excludes_zero():
    rng = np.random.default_rng(1)
    labels = np.arange(200) % 2
    ref, met = {}, {}
    for s in range(4):
        ref_wrong = rng.random(200) < 0.4
        met_wrong = ~ref_wrong & (rng.random(200) < 0.1)  # right on every clip the reference gets wrong
        ref[s] = run(np.where(ref_wrong, 1 - labels, labels), labels)
        met[s] = run(np.where(met_wrong, 1 - labels, labels), labels)
    res = relative_reduction_ci(ref, met, CLASSES, n_boot=500)
    for k in ["err_a", "err_b", "macro_err"]:
        assert res[k]["low"] > 0 and res[k]["excludes_zero"] is True
        assert res[k]["low"] <= res[k]["estimate"] <= res[k]["high"]
    # and the other way round it excludes zero from below
    back = relative_reduction_ci(met, ref, CLASSES, n_boot=500)
    assert back["macro_err"]["high"] < 0 and back["macro_err"]["excludes_zero"] is True


def test_stratified_clip_resampling_keeps_each_class_count():
    labels = np.array([2, 0, 1, 1, 0, 1, 2, 1, 1, 0])
    counts = stratified_clip_counts(labels, 400, np.random.default_rng(0))
    assert counts.shape == (400, labels.size)
    for c in (0, 1, 2):
        assert (counts[:, labels == c].sum(1) == (labels == c).sum()).all()
    assert (counts == 0).any() and (counts > 1).any()  # really resampled, not the identity
    assert len({tuple(row) for row in counts}) > 50


def test_std_with_ci_of_1_2_3_4():
    res = std_with_ci([1, 2, 3, 4])
    assert res["std"] == pytest.approx(1.2909944, abs=1e-7)
    assert res["low"] <= res["std"] <= res["high"] and res["n"] == 4
    assert std_with_ci([1, 2, 3, 4]) == res  # reproducible
    assert std_with_ci([0.3]) == {"std": None, "low": None, "high": None, "n": 1}


def test_std_ratio_of_half_the_spread_is_one_half():
    ref = {s: v for s, v in enumerate([0.30, 0.25, 0.41, 0.33, 0.28, 0.36])}
    met = {s: 0.1 + 0.5 * v for s, v in ref.items()}
    met[99] = 5.0  # unshared seed: ignored
    res = std_ratio_ci(ref, met)
    assert res["ratio"] == pytest.approx(0.5)
    assert res["low"] == pytest.approx(0.5) and res["high"] == pytest.approx(0.5)
    assert res["excludes_one"] is True and res["seeds"] == list(range(6))
    # two seeds: half the resamples draw one seed twice (std 0 in the reference) and are dropped
    two = std_ratio_ci({1: 0.2, 2: 0.4}, {1: 0.3, 2: 0.4}, n_boot=1000)
    assert two["ratio"] == pytest.approx(0.5) and 400 < two["dropped"] < 600
    assert std_ratio_ci({1: 0.2}, {1: 0.3})["ratio"] is None


def test_interval_is_reproducible_and_shrinks_with_more_clips():
    small = random_runs(100, range(5), 0.4, 0.3, rng_seed=3)
    big = random_runs(10_000, range(5), 0.4, 0.3, rng_seed=3)
    a = relative_reduction_ci(*small[:2], small[2], n_boot=500, seed=7)
    assert relative_reduction_ci(*small[:2], small[2], n_boot=500, seed=7) == a
    assert relative_reduction_ci(*small[:2], small[2], n_boot=500, seed=8)["macro_err"] != a["macro_err"]
    b = relative_reduction_ci(*big[:2], big[2], n_boot=500, seed=7)
    for k in ["err_c0", "err_c1", "macro_err"]:
        assert b[k]["high"] - b[k]["low"] < (a[k]["high"] - a[k]["low"]) / 3
    assert b["n_clips"] == 10_000 and a["n_clips"] == 100


def test_fallback_to_seeds_only_without_per_clip_predictions():
    ref, met, names = random_runs(100, range(6), 0.4, 0.2, with_clips=False)
    res = relative_reduction_ci(ref, met, names, n_boot=300)
    assert res["resampled"] == "seeds" and res["n_clips"] is None and "predictions" in res["note"]
    assert res["macro_err"]["low"] <= res["macro_err"]["estimate"] <= res["macro_err"]["high"]
    # predictions in some runs only: still seeds only
    with_clips = random_runs(100, range(6), 0.4, 0.2)[0]
    assert relative_reduction_ci(with_clips, met, names, n_boot=50)["resampled"] == "seeds"
    # labels that differ between runs cannot be paired clip by clip
    other = {s: run(r["predictions"][::-1], r["labels"][::-1], names) for s, r in with_clips.items()}
    other[0]["labels"], other[0]["predictions"] = other[0]["labels"][:-1], other[0]["predictions"][:-1]
    assert relative_reduction_ci(with_clips, other, names, n_boot=50)["resampled"] == "seeds"


def test_one_shared_seed_resamples_clips_only_or_gives_no_interval():
    ref, met, names = random_runs(300, [0], 0.4, 0.2)
    clips = relative_reduction_ci(ref, met, names, n_boot=300)
    assert clips["resampled"] == "clips" and clips["macro_err"]["low"] is not None
    assert clips["macro_err"]["low"] <= clips["macro_err"]["estimate"] <= clips["macro_err"]["high"]
    ref, met, names = random_runs(300, [0], 0.4, 0.2, with_clips=False)
    none = relative_reduction_ci(ref, met, names)
    assert none["resampled"] == "none" and none["macro_err"]["estimate"] is not None
    assert none["macro_err"]["low"] is None and none["macro_err"]["excludes_zero"] is False
    with pytest.raises(ValueError, match="share no seed"):
        relative_reduction_ci({1: ref[0]}, {2: met[0]}, names)


def test_resamples_without_reference_errors_are_dropped_and_counted():
    labels = [0, 0, 0, 0, 1, 1]
    ref = {1: run([0, 0, 0, 1, 1, 1], labels), 2: run([0, 0, 0, 0, 1, 1], labels)}  # b never wrong
    met = {1: run([0, 0, 0, 0, 1, 0], labels), 2: run([0, 0, 0, 0, 1, 1], labels)}
    res = relative_reduction_ci(ref, met, CLASSES, n_boot=400)
    assert res["err_b"]["estimate"] is None and res["err_b"]["dropped"] == 400
    assert res["err_b"]["low"] is None and res["err_b"]["excludes_zero"] is False
    # err_a: one wrong clip of 4 on one seed; resamples missing it (seed 2 twice or clip not drawn) dropped
    assert 0 < res["err_a"]["dropped"] < 400 and res["err_a"]["estimate"] == pytest.approx(1.0)


def test_compare_is_json_serialisable_and_markdown_marks_intervals():
    ref, met, names = random_runs(200, range(5), 0.4, 0.1, n_classes=3, rng_seed=5)
    same = {s: dict(r) for s, r in ref.items() if s < 4}
    comp = compare({"ce": ref, "cluster": met, "same": same}, "ce", names, n_boot=300)
    text = json.dumps(comp, allow_nan=False)  # plain floats / bools / lists, no numpy types, no NaN
    assert json.loads(text) == comp
    c = comp["methods"]["cluster"]
    assert c["share_better"] == 1.0 and set(c["macro_err_diff"]) == {"0", "1", "2", "3", "4"}
    assert all(d < 0 for d in c["macro_err_diff"].values())
    assert c["reduction"]["macro_err"]["excludes_zero"] is True
    assert c["reduction"]["resampled"] == "seeds and clips"
    assert comp["methods"]["ce"]["std"]["n"] == 5 and "reduction" not in comp["methods"]["ce"]
    assert comp["methods"]["same"]["share_better"] == 0.5
    assert comp["methods"]["same"]["shared_seeds"] == [0, 1, 2, 3]
    md = markdown(comp, names)
    lines = md.splitlines()
    row = next(line for line in lines if line.startswith("| cluster |"))
    cells = [x.strip() for x in row.strip("|").split("|")]
    assert len(cells) == 1 + len(names) + 1 + 3
    assert cells[1].startswith("+") and cells[1].endswith("] *") and "% [" in cells[1]
    assert cells[-1] == "5/5"
    same_row = next(line for line in lines if line.startswith("| same |"))
    assert " *" not in same_row.split("|")[2] and same_row.rstrip(" |").endswith("2/4")
    assert "95%" in lines[-1] and "seeds and clips" in lines[-1]
    assert lines[0].count("|") == len(cells) + 1


def test_bootstrap_is_fast_for_ten_seeds_thousand_clips_four_classes():
    ref, met, names = random_runs(1000, range(10), 0.3, 0.2, n_classes=4)
    start = time.perf_counter()
    res = relative_reduction_ci(ref, met, names, n_boot=2000)
    assert time.perf_counter() - start < 3.0
    assert res["resampled"] == "seeds and clips" and not math.isnan(res["macro_err"]["low"])


# ---- pooled over strata (benchmarks/pooling.py) ------------------------------------------------------


def metrics_run(macro: float) -> dict:
    """A run with only metrics: both classes and the macro error equal to ``macro``."""
    return {"metrics": {"err_a": macro, "err_b": macro, "macro_err": macro}}


def test_pooled_estimate_is_the_mean_over_every_stratum_seed_run():
    # stratum B, one seed: ref err_a .5, err_b 0 (macro .25); method err_a 0, err_b .5 (macro .25)
    for with_clips in (True, False):
        a = hand_runs(with_clips)
        b = ({0: run([1, 1, 0, 0, 1, 1], LABELS, with_clips=with_clips)},)
        b += ({0: run([0, 0, 0, 0, 0, 1], LABELS, with_clips=with_clips)},)
        res = pooled_reduction_ci({"A": a, "B": b}, CLASSES, n_boot=200)
        # pooled over the three runs: ref a (.5 + .25 + .5) / 3, method a (0 + .25 + 0) / 3
        assert res["err_a"]["estimate"] == pytest.approx((1.25 - 0.25) / 1.25)
        assert res["err_b"]["estimate"] == pytest.approx((0.5 - 1.0) / 0.5)  # ref (.5+0+0)/3, met (.5+0+.5)/3
        assert res["macro_err"]["estimate"] == pytest.approx((0.875 - 0.625) / 0.875)
        assert res["seeds"] == ["A/1", "A/2", "B/0"] and res["strata"] == {"A": [1, 2], "B": [0]}
    assert res["resampled"] == "none / seeds, within each stratum" and res["macro_err"]["low"] is None
    with_clips = pooled_reduction_ci({"A": hand_runs(), "B": hand_runs()}, CLASSES, n_boot=200)
    assert with_clips["resampled"] == "seeds and clips, within each stratum" and with_clips["n_clips"] == 12


def test_pooling_one_stratum_is_the_unpooled_comparison():
    ref, met, names = random_runs(150, range(4), 0.4, 0.3, n_classes=3, rng_seed=2)
    one = pooled_reduction_ci({"only": (ref, met)}, names, n_boot=300, seed=5)
    plain = relative_reduction_ci(ref, met, names, n_boot=300, seed=5)
    for k in ["err_c0", "err_c1", "err_c2", "macro_err"]:
        assert one[k] == plain[k]


def test_pooled_resamples_stay_inside_each_stratum():
    """Stratum A: method .1 vs reference .2 on both seeds; B: .6 vs .6. Every stratified resample has
    the same per-stratum means, so the interval is the point (.4 - .35) / .4; resampling the four
    (stratum, seed) runs as one pool would spread it."""
    a = ({0: metrics_run(0.2), 1: metrics_run(0.2)}, {0: metrics_run(0.1), 1: metrics_run(0.1)})
    b = ({0: metrics_run(0.6), 1: metrics_run(0.6)}, {0: metrics_run(0.6), 1: metrics_run(0.6)})
    res = pooled_reduction_ci({"A": a, "B": b}, CLASSES, n_boot=300)["macro_err"]
    assert res["estimate"] == pytest.approx(0.125)
    assert res["low"] == pytest.approx(0.125) and res["high"] == pytest.approx(0.125)
    assert res["excludes_zero"] is True
    with pytest.raises(ValueError, match="share no seed in any stratum"):
        pooled_reduction_ci({"A": ({0: metrics_run(0.2)}, {1: metrics_run(0.1)})}, CLASSES)


def test_pooled_std_is_the_within_stratum_spread():
    res = pooled_std_with_ci({"A": [1, 3], "B": [2, 2, 5]})  # variances 2 and 3, 1 + 2 degrees of freedom
    assert res["std"] == pytest.approx(math.sqrt((1 * 2 + 2 * 3) / 3)) and res["n"] == 5
    assert res["low"] <= res["std"] <= res["high"]
    assert pooled_std_with_ci({"A": [1, 3], "B": [2, 2, 5]}) == res  # reproducible
    assert pooled_std_with_ci({"A": [1, 3], "B": [100]})["std"] == pytest.approx(math.sqrt(2))
    assert pooled_std_with_ci({"A": [1], "B": [2]}) == {"std": None, "low": None, "high": None, "n": 2}


def test_pooled_std_ratio_ignores_a_shift_between_strata():
    ref = {"A": {0: 0.30, 1: 0.25, 2: 0.41}, "B": {0: 0.33, 1: 0.28, 2: 0.36, 3: 0.5}}
    met = {d: {s: 2 * v + (0.5 if d == "B" else 0.0) for s, v in per.items()} for d, per in ref.items()}
    del met["B"][3]  # unshared: ignored
    res = pooled_std_ratio_ci(ref, met)
    assert res["ratio"] == pytest.approx(2.0)
    assert res["low"] == pytest.approx(2.0) and res["high"] == pytest.approx(2.0)
    assert res["excludes_one"] is True and res["seeds"] == ["A/0", "A/1", "A/2", "B/0", "B/1", "B/2"]
    assert pooled_std_ratio_ci({"A": {0: 0.2}}, {"A": {0: 0.3}})["ratio"] is None


def test_compare_pooled_pairs_per_stratum_and_seed_and_prints():
    strata = {
        "1to2": {
            "ce": {0: metrics_run(0.4), 1: metrics_run(0.3)},
            "cl": {0: metrics_run(0.2), 1: metrics_run(0.3)},
        },
        "2to1": {"ce": {0: metrics_run(0.5), 1: metrics_run(0.5)}, "cl": {0: metrics_run(0.6)}},
    }
    strata["2to1"]["only_here"] = {0: metrics_run(0.1)}
    comp = compare_pooled(strata, "ce", CLASSES, n_boot=200)
    assert json.loads(json.dumps(comp, allow_nan=False)) == comp
    cl = comp["methods"]["cl"]
    assert cl["shared_seeds"] == ["1to2/0", "1to2/1", "2to1/0"]
    assert cl["macro_err_diff"] == pytest.approx({"1to2/0": -0.2, "1to2/1": 0.0, "2to1/0": 0.1})
    assert cl["share_better"] == pytest.approx(1.5 / 3)
    # pooled errors: ce (.4 + .3 + .5) / 3, cl (.2 + .3 + .6) / 3 over the shared (stratum, seed) runs
    assert cl["reduction"]["macro_err"]["estimate"] == pytest.approx((1.2 - 1.1) / 1.2)
    assert comp["methods"]["ce"]["std"]["std"] == pytest.approx(math.sqrt(0.005 / 2))  # 1to2: .4, .3; 2to1: 0
    assert comp["methods"]["only_here"]["shared_seeds"] == ["2to1/0"]
    md = pooled_markdown(comp, CLASSES)
    assert "| cl |" in md and md.splitlines()[-1].startswith("Pooled over 1to2, 2to1")
    assert next(line for line in md.splitlines() if line.startswith("| cl |")).rstrip(" |").endswith("1.5/3")
    assert "| cl | 1to2/0: -0.200, 1to2/1: +0.000, 2to1/0: +0.100 |" in md.splitlines()  # per-seed pairs
    with pytest.raises(ValueError, match="reference 'x' has no runs"):
        compare_pooled(strata, "x", CLASSES)


def test_intervals_equal_the_enumerated_bootstrap_distribution():
    """Cases small enough to enumerate every resample by hand; each interval is the 2.5 / 97.5
    percentiles of that exact distribution (no atom lies near either, so 2000 resamples find them)."""
    # std of two seeds [0.3, 0.5]: a resample draws one seed twice (std 0, p = 1/2) or both (std 0.1414)
    std = std_with_ci([0.3, 0.5])
    assert (std["std"], std["low"], std["high"]) == pytest.approx((math.sqrt(0.02), 0.0, math.sqrt(0.02)))
    # seeds only (no clips): reference macro error 0.4 and 0.2, method 0.2 and 0.2. Resamples: seeds
    # (0, 0), p = 1/4: (0.4 - 0.2) / 0.4 = 0.5; (1, 1), p = 1/4: 0; one of each, p = 1/2: 0.1 / 0.3
    ref = {0: metrics_run(0.4), 1: metrics_run(0.2)}
    met = {0: metrics_run(0.2), 1: metrics_run(0.2)}
    red = relative_reduction_ci(ref, met, CLASSES)
    assert red["resampled"] == "seeds"
    macro = red["macro_err"]
    assert (macro["estimate"], macro["low"], macro["high"]) == pytest.approx((1 / 3, 0.0, 0.5))
    assert macro["excludes_zero"] is False and macro["dropped"] == 0
    # one seed, clips only: class a has clips p (reference wrong, method right) and q (the reverse), class
    # b one clip both get right. Resamples of class a: (p, p), p = 1/4: macro 0.5 vs 0, reduction 1;
    # (q, q), p = 1/4: the reference makes no error, dropped; one of each, p = 1/2: 0.25 vs 0.25, 0
    labels = [0, 0, 1]
    clips = relative_reduction_ci({0: run([1, 0, 1], labels)}, {0: run([0, 1, 1], labels)}, CLASSES)
    assert clips["resampled"] == "clips"
    macro = clips["macro_err"]
    assert (macro["estimate"], macro["low"], macro["high"]) == pytest.approx((0.0, 0.0, 1.0))
    assert 400 < macro["dropped"] < 600  # a quarter of 2000, binomial sd about 19
    assert clips["err_a"]["low"] == pytest.approx(0.0) and clips["err_b"]["estimate"] is None  # no b errors


def test_per_seed_differences_are_listed_only_for_compared_methods():
    ref, met, names = random_runs(50, range(2), 0.4, 0.1, n_classes=2, rng_seed=1)
    alone = markdown(compare({"ce": ref}, "ce", names, n_boot=50), names)  # only the reference finished
    assert "per-seed macro error difference" not in alone and "| ce | (reference) |" in alone
    md = markdown(compare({"ce": ref, "late": {5: met[0]}}, "ce", names, n_boot=50), names)
    assert "| late | no shared seed |" in md.splitlines()
    assert "| late | n/a | n/a | n/a | " in md  # its row: nothing to compare
