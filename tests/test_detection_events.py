"""Window scores -> events: thresholds, median filter, merging runs and gaps; threshold calibration."""

from __future__ import annotations

import numpy as np
import pytest

from clusterlight.detection.events import (
    Event,
    choose_thresholds,
    median_filter,
    read_events_csv,
    scores_to_events,
    write_events_csv,
)

NAMES = ["dog_bark", "gunshot", "background"]


def curve(n: int, **active: list[int]) -> np.ndarray:
    """[n, 3] scores: 0.1 everywhere, 0.9 at the listed windows of each named class."""
    s = np.full((n, len(NAMES)), 0.1)
    for name, windows in active.items():
        s[windows, NAMES.index(name)] = 0.9
    return s


def test_a_run_of_windows_is_one_event_from_first_window_start_to_last_window_end():
    s = curve(10, dog_bark=[3, 4, 5])
    s[4, 0] = 0.95
    events = scores_to_events(s, NAMES, 0.5, hop_s=0.5, window_s=1.0)
    assert events == [Event(1.5, 3.5, "dog_bark", 0.95)]
    assert isinstance(events[0], tuple) and events[0][:3] == (1.5, 3.5, "dog_bark")
    mean = scores_to_events(s, NAMES, 0.5, hop_s=0.5, window_s=1.0, score="mean")
    assert mean[0].score == pytest.approx((0.9 + 0.95 + 0.9) / 3)


def test_background_never_makes_events_and_needs_no_threshold():
    s = curve(6, background=[0, 1, 2, 3, 4, 5], gunshot=[5])
    events = scores_to_events(s, NAMES, {"dog_bark": 0.5, "gunshot": 0.5}, hop_s=1.0, window_s=2.0)
    assert events == [Event(5.0, 7.0, "gunshot", 0.9)]  # the last window ends past n * hop
    assert scores_to_events(s, NAMES, 0.5, 1.0, 2.0, background=None)[0].label == "background"


def test_thresholds_per_class_inclusive_as_dict_or_array():
    s = np.array([[0.3, 0.6, 0.0], [0.3, 0.6, 0.0]])
    assert [e.label for e in scores_to_events(s, NAMES, {"dog_bark": 0.3, "gunshot": 0.7}, 1, 1)] == [
        "dog_bark"
    ]
    assert [e.label for e in scores_to_events(s, NAMES, [0.31, 0.6, 1.0], 1, 1)] == ["gunshot"]
    with pytest.raises(ValueError, match="no threshold given for classes \\['gunshot'\\]"):
        scores_to_events(s, NAMES, {"dog_bark": 0.3}, 1, 1)
    with pytest.raises(ValueError, match="unknown classes \\['cat'\\]"):
        scores_to_events(s, NAMES, {"dog_bark": 0.3, "gunshot": 0.3, "cat": 0.1}, 1, 1)
    with pytest.raises(ValueError, match="n_classes=3"):
        scores_to_events(s[:, :2], NAMES, 0.5, 1, 1)


def test_events_are_sorted_by_onset_across_classes_and_start_s_shifts_them():
    s = curve(8, dog_bark=[5, 6], gunshot=[1])
    events = scores_to_events(s, NAMES, 0.5, hop_s=1.0, window_s=1.0, start_s=10.0)
    assert [(e.onset, e.offset, e.label) for e in events] == [
        (11.0, 12.0, "gunshot"),
        (15.0, 17.0, "dog_bark"),
    ]
    assert scores_to_events(np.zeros((0, 3)), NAMES, 0.5, 1.0, 1.0) == []


def test_median_filter_removes_a_spike_fills_a_hole_and_keeps_the_ends():
    x = np.array([[0, 1, 0, 0, 0, 1, 1, 0, 1, 1, 1]], dtype=float).T
    y = median_filter(x, 3)[:, 0]
    assert y.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert median_filter(np.ones((4, 2)), 5).tolist() == np.ones((4, 2)).tolist()
    assert median_filter(np.array([[1.0], [0.0], [0.0]]), 3)[0, 0] == 1.0  # edge padded, not zero padded
    both = median_filter(np.stack([x[:, 0], x[:, 0]], axis=1), [1, 3])
    assert both[:, 0].tolist() == x[:, 0].tolist() and both[:, 1].tolist() == y.tolist()
    for bad in (2, 0):
        with pytest.raises(ValueError, match="odd"):
            median_filter(x, bad)


def test_median_filter_before_threshold_equals_majority_vote_on_decisions():
    rng = np.random.default_rng(0)
    s = rng.random((200, 3))
    for k in (3, 5, 7):
        votes = median_filter((s >= 0.6).astype(float), k)
        assert np.array_equal(median_filter(s, k) >= 0.6, votes >= 0.5)


def test_median_filter_in_scores_to_events():
    s = curve(12, dog_bark=[2, 3, 5, 6, 9])  # a one-window hole at 4, a lone window at 9
    raw = scores_to_events(s, NAMES, 0.5, hop_s=1.0, window_s=1.0)
    assert [(e.onset, e.offset) for e in raw] == [(2.0, 4.0), (5.0, 7.0), (9.0, 10.0)]
    filtered = scores_to_events(s, NAMES, 0.5, hop_s=1.0, window_s=1.0, median_filter_length=3)
    assert [(e.onset, e.offset) for e in filtered] == [(2.0, 7.0)]


def test_min_gap_merges_same_class_events_only_below_the_gap():
    s = curve(10, dog_bark=[0, 1, 4, 5], gunshot=[3])
    s[4, 0] = 0.7
    kw = dict(hop_s=1.0, window_s=1.0, score="mean")
    apart = scores_to_events(s, NAMES, 0.5, **kw, min_gap_s=2.0)  # gap 2.0 s is not < 2.0
    assert [(e.onset, e.offset, e.label) for e in apart] == [
        (0.0, 2.0, "dog_bark"),
        (3.0, 4.0, "gunshot"),
        (4.0, 6.0, "dog_bark"),
    ]
    merged = scores_to_events(s, NAMES, 0.5, **kw, min_gap_s=2.5)
    assert [(e.onset, e.offset, e.label) for e in merged] == [(0.0, 6.0, "dog_bark"), (3.0, 4.0, "gunshot")]
    assert merged[0].score == pytest.approx((0.9 + 0.9 + 0.7 + 0.9) / 4)  # the gap's windows do not count


def test_overlapping_windows_never_give_overlapping_events_of_one_class():
    s = curve(10, dog_bark=[1, 2, 4, 5])  # window 3 inactive, but windows 2 and 4 overlap (1.5 s > 2 hops)
    events = scores_to_events(s, NAMES, 0.5, hop_s=0.5, window_s=1.5)
    assert [(e.onset, e.offset) for e in events] == [(0.5, 4.0)]
    touching = scores_to_events(s, NAMES, 0.5, hop_s=0.5, window_s=1.0)  # gap 0: touching, merged
    assert [(e.onset, e.offset) for e in touching] == [(0.5, 3.5)]
    apart = scores_to_events(s, NAMES, 0.5, hop_s=0.5, window_s=0.5)
    assert [(e.onset, e.offset) for e in apart] == [(0.5, 1.5), (2.0, 3.0)]
    # windows 2 and 5 touch: gap 3 * 0.1 - 0.3 s, which is 5.6e-17 in floating point, counts as 0
    rounded = scores_to_events(curve(10, dog_bark=[1, 2, 5, 6]), NAMES, 0.5, hop_s=0.1, window_s=0.3)
    assert [(e.onset, e.offset) for e in rounded] == [(0.1, pytest.approx(0.9))]


def test_bad_arguments():
    s = curve(3)
    with pytest.raises(ValueError, match="positive"):
        scores_to_events(s, NAMES, 0.5, hop_s=0.0, window_s=1.0)
    with pytest.raises(ValueError, match="'median'"):
        scores_to_events(s, NAMES, 0.5, 1.0, 1.0, score="median")


def test_choose_thresholds_hand_computed():
    # dog_bark: sorted scores 0.9 0.8 0.7 0.4 0.3, positives 1 1 0 1 0 (P = 3)
    # F1 when the top k are positive: 2/4, 4/5, 4/6, 6/7, 6/8 -> k = 4, threshold (0.4 + 0.3) / 2
    dog = np.array([0.7, 0.3, 0.9, 0.4, 0.8])
    labels = np.array([2, 2, 0, 0, 0])  # class indices; 2 = background
    s = np.stack([dog, np.zeros(5), 1 - dog], axis=1)
    thr = choose_thresholds(s, labels, NAMES, default=0.42)
    assert thr == {"dog_bark": pytest.approx(0.35), "gunshot": 0.42}  # no gunshot window: the default
    onehot = np.eye(3, dtype=int)[labels]
    assert choose_thresholds(s, onehot, NAMES, default=0.42) == thr
    assert "background" in choose_thresholds(s, labels, NAMES, background=None)


def test_choose_thresholds_ties_go_to_the_highest_threshold_and_equal_scores_decide_together():
    # positives 1 1 0 0 0 0 1 1: k = 2 gives 4/6, k = 8 gives 8/12: equal, the higher threshold wins
    scores = np.array([0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    s = np.stack([scores, scores, scores], axis=1)
    y = np.array([1, 1, 0, 0, 0, 0, 1, 1])
    labels = np.stack([y, np.zeros(8, int), 1 - y], axis=1)
    assert choose_thresholds(s, labels, NAMES)["dog_bark"] == pytest.approx(0.65)
    # all windows positive is best: threshold = the lowest score itself (>= keeps it)
    assert choose_thresholds(s, np.stack([np.ones(8), np.zeros(8), np.zeros(8)], 1), NAMES)[
        "dog_bark"
    ] == pytest.approx(0.1)
    # tied scores go together: 0.5 (pos) and 0.5 (neg); >= 0.9 gives F1 2/3, >= 0.5 gives 4/5
    tied = np.array([[0.9, 0, 0], [0.5, 0, 0], [0.5, 0, 0], [0.1, 0, 0]])
    assert choose_thresholds(tied, [0, 0, 2, 2], NAMES)["dog_bark"] == pytest.approx(0.3)
    tied[1, 0] = 0.6  # now separable: >= 0.6 gives F1 1
    assert choose_thresholds(tied, [0, 0, 2, 2], NAMES)["dog_bark"] == pytest.approx(0.55)


def _f1(pred: np.ndarray, y: np.ndarray) -> float:
    tp = np.sum(pred & y)
    return 2 * tp / (pred.sum() + y.sum())


def test_choose_thresholds_reaches_the_best_f1_of_any_threshold():
    rng = np.random.default_rng(1)
    for _ in range(20):
        y = rng.random(60) < 0.2
        y[0] = True
        s = np.round(np.where(y, rng.normal(0.6, 0.2, 60), rng.normal(0.4, 0.2, 60)), 2)
        scores = np.stack([s, np.zeros(60), np.zeros(60)], axis=1)
        labels = np.stack([y, np.zeros(60, bool), ~y], axis=1)
        t = choose_thresholds(scores, labels, NAMES)["dog_bark"]
        best = max(_f1(s >= c, y) for c in np.unique(s))
        assert _f1(s >= t, y) == pytest.approx(best)


def test_events_csv_round_trip(tmp_path):
    events = {"a.wav": [Event(1.0, 2.5, "dog_bark", 0.8), Event(0.5, 0.75, "gunshot", 0.6)], "b.wav": []}
    path = write_events_csv(tmp_path / "det.csv", events)
    back = read_events_csv(path, files=["b.wav", "c.wav"])
    assert back == {"a.wav": sorted(events["a.wav"]), "b.wav": [], "c.wav": []}
    (tmp_path / "bad.csv").write_text("file,onset,label\n")
    with pytest.raises(ValueError, match="missing columns \\['event_label', 'offset'\\]"):
        read_events_csv(tmp_path / "bad.csv")
