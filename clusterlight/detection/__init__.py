"""Sound event detection in long recordings: window scores -> events (``events``), event-based scoring
with the DCASE 2017 task 2 rule (``scoring``), how early onsets come (``calibration``), a picture of
one recording's detection (``plot``)."""

from clusterlight.detection.calibration import onset_errors, onset_lead
from clusterlight.detection.events import (
    Event,
    choose_thresholds,
    median_filter,
    read_events_csv,
    scores_to_events,
    write_events_csv,
)
from clusterlight.detection.plot import plot_detection
from clusterlight.detection.scoring import Counts, EventScores, event_based_scores, match_onsets

__all__ = [
    "Counts",
    "Event",
    "EventScores",
    "choose_thresholds",
    "event_based_scores",
    "match_onsets",
    "median_filter",
    "onset_errors",
    "onset_lead",
    "plot_detection",
    "read_events_csv",
    "scores_to_events",
    "write_events_csv",
]
