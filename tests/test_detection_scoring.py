"""Event-based scoring (DCASE 2017 task 2: onset only, 500 ms collar) on hand-computed cases, against a
brute-force maximum matching, and against sed_eval when it is installed."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from clusterlight.detection.events import Event, read_events_csv
from clusterlight.detection.scoring import Counts, as_event, event_based_scores, match_onsets

DOG, CRY, GUN = "dog_bark", "baby_cry", "gunshot"


def ev(onset: float, label: str = DOG, length: float = 1.0) -> Event:
    return Event(onset, onset + length, label)


def test_perfect_detection():
    ref = {"a.wav": [ev(1.0), ev(5.0, GUN), ev(9.0, CRY)], "b.wav": [ev(2.0, GUN)]}
    s = event_based_scores(ref, ref)
    assert s.classes == (CRY, DOG, GUN)
    assert (s.f1, s.error_rate, s.overall_f1, s.overall_error_rate) == (1.0, 0.0, 1.0, 0.0)
    assert s.class_wise[GUN] == Counts(n_ref=2, n_sys=2, n_tp=2)
    assert s.n_files == 2


def test_onset_collar_half_a_second_either_side_offsets_ignored():
    ref = {"a.wav": [ev(10.0)]}
    for shift in (0.4, -0.4, 0.5, -0.5):
        s = event_based_scores(ref, {"a.wav": [Event(10.0 + shift, 30.0, DOG)]})
        assert (s.f1, s.error_rate) == (1.0, 0.0), shift
    late = event_based_scores(ref, {"a.wav": [ev(10.6)]})
    c = late.class_wise[DOG]
    assert (c.n_tp, c.deletions, c.insertions) == (0, 1, 1)
    assert (late.f1, late.error_rate) == (0.0, 2.0)
    assert (late.overall.n_subs, late.overall_error_rate) == (0, 2.0)
    assert event_based_scores(ref, {"a.wav": [ev(10.6)]}, collar=0.6).f1 == 1.0


def test_wrong_class_is_a_deletion_and_an_insertion_per_class_and_a_substitution_overall():
    ref = {"a.wav": [ev(1.0, DOG), ev(10.0, GUN)]}
    est = {"a.wav": [ev(1.0, GUN), ev(10.0, GUN)]}
    s = event_based_scores(ref, est)
    dog, gun = s.class_wise[DOG], s.class_wise[GUN]
    assert (dog.n_ref, dog.n_sys, dog.n_tp, dog.error_rate, dog.f1) == (1, 0, 0, 1.0, 0.0)
    assert (gun.n_ref, gun.n_sys, gun.n_tp, gun.error_rate) == (1, 2, 1, 1.0)
    assert gun.f1 == pytest.approx(2 / 3)
    assert s.error_rate == 1.0 and s.f1 == pytest.approx(1 / 3)
    o = s.overall
    assert (o.n_tp, o.n_subs, o.deletions, o.insertions) == (1, 1, 0, 0)
    assert s.overall_error_rate == 0.5 and s.overall_f1 == 0.5


def test_two_detections_for_one_reference_one_insertion():
    s = event_based_scores({"a.wav": [ev(3.0)]}, {"a.wav": [ev(2.8), ev(3.2)]})
    c = s.class_wise[DOG]
    assert (c.n_tp, c.deletions, c.insertions) == (1, 0, 1)
    assert (c.precision, c.recall, c.error_rate) == (0.5, 1.0, 1.0)
    assert s.f1 == pytest.approx(2 / 3)


def test_empty_references_or_detections():
    ref = {"a.wav": [ev(1.0), ev(4.0)]}
    missed = event_based_scores(ref, {})
    assert (missed.f1, missed.error_rate) == (0.0, 1.0)  # F1 0, not nan: a silent system scores 0
    assert math.isnan(missed.class_wise[DOG].precision)
    false_alarms = event_based_scores({"a.wav": []}, {"a.wav": [ev(1.0)]})
    assert math.isnan(false_alarms.f1) and false_alarms.error_rate == math.inf
    nothing = event_based_scores({"a.wav": []}, {"a.wav": []}, classes=[DOG])
    assert math.isnan(nothing.f1) and nothing.error_rate == 0.0
    # a class without references or detections averages in with ER 0 (as sed_eval); its F1 is skipped
    s = event_based_scores(ref, ref, classes=[DOG, GUN])
    assert (s.f1, s.error_rate) == (1.0, 0.0)
    assert event_based_scores(ref, {}, classes=[DOG, GUN]).error_rate == 0.5


def test_matching_never_crosses_files():
    s = event_based_scores({"a.wav": [ev(1.0)], "b.wav": []}, {"b.wav": [ev(1.0)]})
    c = s.class_wise[DOG]
    assert (c.n_tp, c.deletions, c.insertions, s.overall.n_subs) == (0, 1, 1, 0)
    two = event_based_scores(
        {"a.wav": [ev(1.0), ev(20.0, GUN)], "b.wav": [ev(1.0)]},
        {"a.wav": [ev(1.2), ev(30.0, GUN)], "b.wav": [ev(0.7), ev(5.0, CRY)]},
    )
    assert two.class_wise[DOG] == Counts(2, 2, 2)
    assert two.class_wise[GUN] == Counts(1, 1, 0)
    assert two.class_wise[CRY] == Counts(0, 1, 0)
    assert two.overall == Counts(n_ref=3, n_sys=4, n_tp=2)


def test_matching_is_maximal_where_nearest_first_is_not():
    # nearest-first pairs 1.0 with 1.2 and leaves 1.5 and 0.6 apart (one match); two are possible
    assert sorted(match_onsets([1.0, 1.5], [1.2, 0.6])) == [(0, 1), (1, 0)]
    s = event_based_scores({"a.wav": [ev(1.0), ev(1.5)]}, {"a.wav": [ev(1.2), ev(0.6)]})
    assert (s.f1, s.error_rate) == (1.0, 0.0)


def _max_matching_size(ref: list[float], est: list[float], collar: float) -> int:
    """Kuhn's augmenting paths on the full compatibility graph."""
    owner: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j, e in enumerate(est):
            if abs(e - ref[i]) <= collar and j not in seen:
                seen.add(j)
                if j not in owner or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return sum(augment(i, set()) for i in range(len(ref)))


def test_match_onsets_is_a_valid_maximum_matching():
    rng = np.random.default_rng(0)
    for _ in range(300):
        ref = np.round(rng.uniform(0, 5, rng.integers(0, 7)), 1).tolist()
        est = np.round(rng.uniform(0, 5, rng.integers(0, 7)), 1).tolist()
        pairs = match_onsets(ref, est, 0.5)
        assert len({i for i, _ in pairs}) == len(pairs) == len({j for _, j in pairs})
        assert all(abs(ref[i] - est[j]) <= 0.5 + 1e-9 for i, j in pairs)
        assert len(pairs) == _max_matching_size(ref, est, 0.5 + 1e-9)


def test_event_inputs_tuples_dicts_and_unknown_labels():
    assert as_event((1.0, 2.0, DOG)) == Event(1.0, 2.0, DOG)
    assert as_event([1.0, 2.0, DOG, 0.3]).score == 0.3
    assert as_event({"onset": 1, "offset": 2, "event_label": DOG}) == Event(1.0, 2.0, DOG)
    s = event_based_scores(
        {"a": [{"onset": 1.0, "offset": 2.0, "label": DOG}]}, {"a": [(1.1, 1.5, DOG, 0.9)]}
    )
    assert s.f1 == 1.0
    with pytest.raises(ValueError, match="\\['cat'\\]"):
        event_based_scores({"a": [ev(1.0, "cat")]}, {}, classes=[DOG])
    d = s.as_dict()
    assert d["class_wise"][DOG]["n_tp"] == 1 and d["class_wise_average"]["f1"] == 1.0


def test_generated_annotations_score_perfectly_against_themselves(tmp_path):
    from clusterlight.data.long_synth import generate_long

    manifest = generate_long(tmp_path / "rec", 2, 0.25, seed=1, sample_rate=8000, events_per_minute=12)
    files = [line.split(",")[0] for line in manifest.read_text().splitlines()[1:]]
    ref = read_events_csv(manifest.parent / "annotations.csv", files)
    assert sorted(ref) == sorted(files) and sum(map(len, ref.values())) == 6
    late = {f: [e._replace(onset=e.onset + 0.45) for e in events] for f, events in ref.items()}
    s = event_based_scores(ref, late, classes=[DOG, CRY, GUN])
    assert s.overall_f1 == 1.0 and s.overall_error_rate == 0.0


# ---- cross-check with sed_eval (optional: pip install sed_eval) ----


def _sed_eval_metrics(ref: dict, est: dict, classes: list[str]):
    sed_eval = pytest.importorskip("sed_eval")
    dcase_util = pytest.importorskip("dcase_util")

    def container(events, file):
        return dcase_util.containers.MetaDataContainer(
            [{"filename": file, "event_label": e.label, "onset": e.onset, "offset": e.offset} for e in events]
        )

    metrics = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=classes,
        evaluate_onset=True,
        evaluate_offset=False,
        t_collar=0.5,
        empty_system_output_handling="zero_score",
    )
    for f in dict.fromkeys([*ref, *est]):
        metrics.evaluate(container(ref.get(f, []), f), container(est.get(f, []), f))
    return metrics


def _random_case(rng: np.random.Generator, classes: list[str]):
    ref, est = {}, {}
    for f in range(3):
        onsets = np.sort(rng.uniform(0, 30, rng.integers(0, 6)))
        ref[f"{f}.wav"] = [ev(float(o), str(rng.choice(classes)), 0.5) for o in onsets]
        dets = []
        for e in ref[f"{f}.wav"]:
            if rng.random() < 0.7:  # detected, maybe late, maybe as the wrong class
                label = e.label if rng.random() < 0.8 else str(rng.choice(classes))
                dets.append(ev(e.onset + float(rng.uniform(-0.8, 0.8)), label, 0.5))
        dets += [ev(float(o), str(rng.choice(classes)), 0.5) for o in rng.uniform(0, 30, rng.integers(0, 3))]
        est[f"{f}.wav"] = sorted(dets)
    return ref, est


def test_agrees_with_sed_eval():
    classes = [DOG, CRY, GUN]
    hand = [
        ({"a": [ev(1.0)]}, {"a": [ev(1.4)]}),
        ({"a": [ev(1.0)]}, {"a": [ev(1.6)]}),
        ({"a": [ev(1.0, DOG), ev(10.0, GUN)]}, {"a": [ev(1.0, GUN), ev(10.0, GUN)]}),
        ({"a": [ev(3.0)]}, {"a": [ev(2.8), ev(3.2)]}),
        ({"a": [ev(1.0), ev(1.5)]}, {"a": [ev(0.6), ev(1.2)]}),
        ({"a": [ev(1.0)], "b": []}, {"b": [ev(1.0)]}),
        ({"a": [ev(1.0, CRY), ev(5.0, GUN)]}, {}),
    ]
    rng = np.random.default_rng(0)
    cases = hand + [_random_case(rng, classes) for _ in range(40)]
    for ref, est in cases:
        ours = event_based_scores(ref, est, classes=classes)
        theirs = _sed_eval_metrics(ref, est, classes)
        for c in classes:
            cw = theirs.class_wise[c]
            assert (ours.class_wise[c].n_ref, ours.class_wise[c].n_sys, ours.class_wise[c].n_tp) == (
                cw["Nref"],
                cw["Nsys"],
                cw["Ntp"],
            )
            their_c = theirs.results_class_wise_metrics()[c]
            if cw["Nref"] > 0:
                assert ours.class_wise[c].f1 == pytest.approx(their_c["f_measure"]["f_measure"])
                assert ours.class_wise[c].error_rate == pytest.approx(their_c["error_rate"]["error_rate"])
        avg = theirs.results_class_wise_average_metrics()
        assert ours.f1 == pytest.approx(avg["f_measure"]["f_measure"], nan_ok=True)
        if all(ours.class_wise[c].n_ref > 0 or ours.class_wise[c].n_sys == 0 for c in classes):
            assert ours.error_rate == pytest.approx(avg["error_rate"]["error_rate"])
        overall = theirs.results_overall_metrics()
        assert ours.overall_f1 == pytest.approx(overall["f_measure"]["f_measure"], nan_ok=True)
        if ours.overall.n_ref:
            assert ours.overall.n_subs == theirs.overall["Nsubs"], (ref, est)
            assert ours.overall_error_rate == pytest.approx(overall["error_rate"]["error_rate"])


def test_all_permutations_of_a_crowded_case_agree_with_sed_eval():
    """Several references and detections within one collar: the counts do not depend on list order."""
    ref = [ev(1.0), ev(1.3), ev(1.9, GUN)]
    est = [ev(0.6), ev(1.1), ev(1.7), ev(2.3, GUN)]
    for perm in itertools.permutations(est):
        ours = event_based_scores({"a": ref}, {"a": list(perm)}, classes=[DOG, GUN])
        theirs = _sed_eval_metrics({"a": ref}, {"a": list(perm)}, [DOG, GUN])
        assert [ours.class_wise[c].n_tp for c in (DOG, GUN)] == [
            theirs.class_wise[c]["Ntp"] for c in (DOG, GUN)
        ]
