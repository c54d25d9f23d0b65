from collections import Counter

import pytest

from clusterlight.data.imbalance import ratio_counts, subsample_to_ratio
from clusterlight.data.records import DataError


def test_ratio_counts_are_the_largest_feasible():
    available = {"dog": 100, "horn": 36, "gun": 35, "bg": 702}
    counts = ratio_counts(available, {"dog": 6, "horn": 1, "gun": 2, "bg": 16})
    # scale = min(100/6, 36/1, 35/2, 702/16) = 16.67 (dog is limiting)
    assert counts == {"dog": 100, "horn": 16, "gun": 33, "bg": 266}


def test_ratio_counts_exact_when_divisible():
    assert ratio_counts({"a": 240, "b": 240, "c": 240, "d": 640}, {"a": 6, "b": 1, "c": 2, "d": 16}) == {
        "a": 240,
        "b": 40,
        "c": 80,
        "d": 640,
    }


def test_subsample_is_exact_seeded_and_deterministic():
    labels = ["a"] * 50 + ["b"] * 50 + ["c"] * 500
    idx = subsample_to_ratio(labels, {"a": 2, "b": 1, "c": 10}, seed=7)
    assert Counter(labels[i] for i in idx) == {"a": 50, "b": 25, "c": 250}
    assert list(idx) == list(subsample_to_ratio(labels, {"a": 2, "b": 1, "c": 10}, seed=7))
    assert list(idx) != list(subsample_to_ratio(labels, {"a": 2, "b": 1, "c": 10}, seed=8))
    assert len(set(idx)) == len(idx)


@pytest.mark.parametrize(
    "ratio, match",
    [
        ({"a": 1, "b": 1}, "missing: \\['c'\\]"),
        ({"a": 1, "b": 1, "c": 1, "z": 1}, "unknown: \\['z'\\]"),
        ({"a": 1, "b": 0, "c": 1}, "positive"),
        ({"a": 1, "b": 1000, "c": 1}, "would get 0 clips"),
    ],
)
def test_impossible_ratios_are_clear_errors(ratio, match):
    with pytest.raises(DataError, match=match):
        subsample_to_ratio(["a"] * 10 + ["b"] * 10 + ["c"] * 10, ratio, seed=0)


def test_class_without_clips_cannot_meet_a_ratio():
    with pytest.raises(DataError, match=r"\['b'\] have no training clips"):
        subsample_to_ratio(["a"] * 10, {"a": 1, "b": 1}, seed=0, classes=["a", "b"])
