"""How early a detector puts onsets, measured on annotated recordings: the ``trim_s`` of detection."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from clusterlight.detection.scoring import as_event


def onset_errors(
    reference: Mapping[str, Iterable], estimated: Mapping[str, Iterable], within: float
) -> list[float]:
    """For each reference event, its nearest same-class detection's onset minus its own (seconds),
    when one lies within ``within`` seconds (events with none are left out)."""
    out = []
    for file, refs in reference.items():
        found = [as_event(e) for e in estimated.get(file, ())]
        for r in map(as_event, refs):
            gaps = [
                e.onset - r.onset for e in found if e.label == r.label and abs(e.onset - r.onset) <= within
            ]
            if gaps:
                out.append(min(gaps, key=abs))
    return out


def onset_lead(reference: Mapping[str, Iterable], estimated: Mapping[str, Iterable], within: float) -> float:
    """The median of how early detected onsets come (0 when they are late on the median, or when no
    reference event has a detection within ``within`` seconds): the ``trim_s`` that centres the onset
    errors of untrimmed detections on these recordings. Measure it on validation recordings."""
    errors = onset_errors(reference, estimated, within)
    return max(0.0, -float(np.median(errors))) if errors else 0.0
