"""Trimming events (rule 6 of clusterlight.detection.events), and the trim measured on annotations."""

import numpy as np
import pytest

from clusterlight.detection import Event, onset_errors, onset_lead, scores_to_events

CLASSES = ["dog_bark", "gunshot", "background"]


def _gunshot_in_windows(first: int, last: int) -> np.ndarray:
    scores = np.zeros((12, 3))
    scores[:, 2] = 1.0
    scores[first : last + 1, 1] = 0.9
    return scores


@pytest.mark.parametrize(
    ("trim", "expected"),
    [
        (0.0, (1.5, 4.0)),  # windows 3 and 4 of 2 s every 0.5 s: [1.5, 2.5 + 2]
        (0.6, (2.1, 3.4)),
        (1.0, (2.5, 3.0)),  # exactly one hop left
        (2.0, (2.5, 3.0)),  # shorter than a hop: one hop around the middle
    ],
)
def test_trim_shortens_events_at_both_ends_down_to_one_hop(trim, expected):
    events = scores_to_events(_gunshot_in_windows(3, 4), CLASSES, 0.5, hop_s=0.5, window_s=2.0, trim_s=trim)
    assert [e.label for e in events] == ["gunshot"]
    assert (events[0].onset, events[0].offset) == pytest.approx(expected)


def test_trim_must_not_be_negative():
    with pytest.raises(ValueError, match="trim_s must be >= 0"):
        scores_to_events(_gunshot_in_windows(3, 4), CLASSES, 0.5, hop_s=0.5, window_s=2.0, trim_s=-0.1)


def test_onset_errors_take_the_nearest_same_class_detection_within_reach():
    reference = {"a.wav": [Event(10.0, 11.0, "gunshot"), Event(30.0, 31.0, "dog_bark")]}
    estimated = {
        "a.wav": [Event(8.5, 11.0, "gunshot"), Event(9.8, 10.5, "gunshot"), Event(29.0, 30, "baby_cry")]
    }
    assert onset_errors(reference, estimated, within=2.0) == pytest.approx([-0.2])
    assert onset_errors(reference, estimated, within=0.1) == []


def test_onset_lead_is_the_median_earliness_and_never_negative():
    reference = {"a.wav": [Event(t, t + 1, "gunshot") for t in (10.0, 20.0, 30.0)]}
    early = {"a.wav": [Event(8.5, 11, "gunshot"), Event(18.0, 21, "gunshot"), Event(29.0, 31, "gunshot")]}
    assert onset_lead(reference, early, within=2.5) == pytest.approx(1.5)  # median of 1.5, 2.0, 1.0
    late = {"a.wav": [Event(t + 0.3, t + 1, "gunshot") for t in (10.0, 20.0, 30.0)]}
    assert onset_lead(reference, late, within=2.5) == 0.0
    assert onset_lead(reference, {"a.wav": []}, within=2.5) == 0.0
    trimmed = {"a.wav": [e._replace(onset=e.onset + 1.5) for e in early["a.wav"]]}
    assert onset_lead(reference, trimmed, within=2.5) == pytest.approx(0.0)
