"""Event-based scoring, the DCASE 2017 task 2 rule: onset only, a 500 ms collar.

It reproduces ``sed_eval.sound_event.EventBasedMetrics(evaluate_onset=True, evaluate_offset=False,
t_collar=0.5)`` (default ``event_matching_type="optimal"``) with class-wise averaging, without
depending on it (``tests/test_detection_scoring.py`` compares the two when sed_eval is installed).

**Matching.** Within one file and one class, a detection can match a reference whose onset is within
``collar`` seconds (``|onset_det - onset_ref| <= collar``, plus 1e-9 s against rounding); offsets are
ignored. Each reference and each detection is matched at most once, and the matching has the largest
possible number of pairs (what sed_eval's bipartite "optimal" matching counts). It is found by time
order: references by onset, each takes the earliest unmatched detection within its collar; because
every collar has the same width this greedy is maximal. Matching never crosses files or classes.

**Per class** (counts summed over files): ``Ntp`` matches, ``D = Nref - Ntp`` deletions,
``I = Nsys - Ntp`` insertions, no substitutions (a class is scored on its own, as in DCASE 2017
task 2), ``ER = (D + I) / Nref``, ``P = Ntp / Nsys``, ``R = Ntp / Nref``,
``F1 = 2 Ntp / (Nref + Nsys)``. Edge cases as sed_eval: F1 is ``nan`` when ``Nref = 0``; F1 is 0 when
``Nref > 0`` and ``Nsys = 0`` (sed_eval's ``empty_system_output_handling="zero_score"``; by default
sed_eval says ``nan`` there, which its class average then skips, flattering a silent system); ER is 0
when ``Nref = 0`` and ``Nsys = 0``, and ``inf`` when ``Nref = 0 < Nsys`` (sed_eval: ``Nsys / eps``).

**Class-wise average** (the DCASE 2017 task 2 figures, :attr:`EventScores.f1` and
:attr:`EventScores.error_rate`): the mean of the per-class F1 over the classes where it is defined
(``nanmean``), and the mean of the per-class ER over all ``classes`` (a class without references or
detections counts with ER 0, as in sed_eval: pass only the classes the evaluation set contains).

**Overall** (micro, :attr:`EventScores.overall_f1`, :attr:`EventScores.overall_error_rate`): all
classes pooled; a reference and a detection left unmatched whose onsets are within the collar but whose
classes differ are one substitution ``S`` (paired greedily by time order, as sed_eval pairs them in list
order), ``D = Nref - Ntp - S``, ``I = Nsys - Ntp - S``, ``ER = (S + D + I) / Nref``,
``F1 = 2 Ntp / (Nref + Nsys)``. When several maximal matchings exist, which events are left over can
differ from sed_eval's, and so can ``S`` (never the per-class figures).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from clusterlight.detection.events import Event

COLLAR_S = 0.5
_EPS = 1e-9


def as_event(item) -> Event:
    """An :class:`Event` from an ``Event``, a tuple ``(onset, offset, label[, score])``, a dict with
    ``onset``, ``offset`` and ``event_label`` (or ``label``) keys, or an object with those attributes."""
    if isinstance(item, Event):
        return item
    if isinstance(item, Mapping):
        label = item["event_label"] if "event_label" in item else item["label"]
        score = (float(item["score"]),) if "score" in item else ()
        return Event(float(item["onset"]), float(item["offset"]), str(label), *score)
    if isinstance(item, tuple | list):
        return Event(float(item[0]), float(item[1]), str(item[2]), *(float(s) for s in item[3:4]))
    label = getattr(item, "event_label", None) or item.label
    score = (float(item.score),) if hasattr(item, "score") else ()
    return Event(float(item.onset), float(item.offset), str(label), *score)


def match_onsets(reference: Sequence[float], estimated: Sequence[float], collar: float = COLLAR_S):
    """A maximum set of pairs ``(i, j)``: ``reference[i]`` matched with ``estimated[j]``, onsets within
    ``collar``, each index used at most once. References taken by onset, each with the earliest free
    detection in its collar."""
    ref_order = np.argsort(np.asarray(reference, dtype=np.float64), kind="stable")
    est_order = np.argsort(np.asarray(estimated, dtype=np.float64), kind="stable")
    pairs, p = [], 0
    for i in ref_order.tolist():
        r = float(reference[i])
        while p < len(est_order) and float(estimated[est_order[p]]) < r - collar - _EPS:
            p += 1  # too early for this reference, so for every later one too
        if p < len(est_order) and float(estimated[est_order[p]]) <= r + collar + _EPS:
            pairs.append((i, int(est_order[p])))
            p += 1
    return pairs


@dataclass(frozen=True)
class Counts:
    """Event counts of one class (or of all pooled, with substitutions)."""

    n_ref: int = 0
    n_sys: int = 0
    n_tp: int = 0
    n_subs: int = 0

    @property
    def deletions(self) -> int:
        return self.n_ref - self.n_tp - self.n_subs

    @property
    def insertions(self) -> int:
        return self.n_sys - self.n_tp - self.n_subs

    @property
    def precision(self) -> float:
        return self.n_tp / self.n_sys if self.n_sys else math.nan

    @property
    def recall(self) -> float:
        return self.n_tp / self.n_ref if self.n_ref else math.nan

    @property
    def f1(self) -> float:
        return 2 * self.n_tp / (self.n_ref + self.n_sys) if self.n_ref else math.nan

    @property
    def error_rate(self) -> float:
        errors = self.n_subs + self.deletions + self.insertions
        if self.n_ref == 0:
            return 0.0 if errors == 0 else math.inf
        return errors / self.n_ref

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple())))

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.n_ref, self.n_sys, self.n_tp, self.n_subs)

    def as_dict(self) -> dict[str, float]:
        return {
            "n_ref": self.n_ref,
            "n_sys": self.n_sys,
            "n_tp": self.n_tp,
            "substitutions": self.n_subs,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "error_rate": self.error_rate,
        }


@dataclass(frozen=True)
class EventScores:
    """Event-based scores: per class, their class-wise average, and overall (pooled)."""

    classes: tuple[str, ...]
    class_wise: dict[str, Counts]
    overall: Counts
    collar: float = COLLAR_S
    n_files: int = field(default=0)

    @property
    def f1(self) -> float:
        """Class-wise average F1 (nanmean over classes; nan when no class has references)."""
        values = [self.class_wise[c].f1 for c in self.classes]
        values = [v for v in values if not math.isnan(v)]
        return float(np.mean(values)) if values else math.nan

    @property
    def error_rate(self) -> float:
        """Class-wise average error rate (the DCASE 2017 task 2 ranking metric)."""
        return (
            float(np.mean([self.class_wise[c].error_rate for c in self.classes]))
            if self.classes
            else math.nan
        )

    @property
    def overall_f1(self) -> float:
        return self.overall.f1

    @property
    def overall_error_rate(self) -> float:
        return self.overall.error_rate

    def as_dict(self) -> dict:
        return {
            "collar": self.collar,
            "n_files": self.n_files,
            "class_wise_average": {"f1": self.f1, "error_rate": self.error_rate},
            "overall": self.overall.as_dict(),
            "class_wise": {c: self.class_wise[c].as_dict() for c in self.classes},
        }


def _substitutions(refs: list[Event], ests: list[Event], collar: float) -> int:
    """Leftover pairs with onsets within the collar (labels differ, or they would have matched)."""
    return len(match_onsets([e.onset for e in refs], [e.onset for e in ests], collar))


def event_based_scores(
    reference: Mapping[str, Iterable],
    estimated: Mapping[str, Iterable],
    classes: Sequence[str] | None = None,
    collar: float = COLLAR_S,
) -> EventScores:
    """Score detections against references, file by file, by the rule in the module docstring.

    ``reference`` and ``estimated`` map a file name to its events (anything :func:`as_event` takes). A
    file present in only one of them has no events in the other. ``classes`` (default: every label
    seen, sorted) are the classes scored and averaged; an event of another label is an error.
    """
    files = list(dict.fromkeys([*reference, *estimated]))
    ref_by_file = {f: [as_event(e) for e in reference.get(f, ())] for f in files}
    est_by_file = {f: [as_event(e) for e in estimated.get(f, ())] for f in files}
    seen = {e.label for events in (*ref_by_file.values(), *est_by_file.values()) for e in events}
    classes = tuple(sorted(seen)) if classes is None else tuple(classes)
    unknown = sorted(seen - set(classes))
    if unknown:
        raise ValueError(f"events of labels {unknown} not among the scored classes {list(classes)}")
    if collar < 0:
        raise ValueError(f"collar must be >= 0, got {collar}")

    class_wise = {c: Counts() for c in classes}
    overall = Counts()
    for f in files:
        refs, ests = ref_by_file[f], est_by_file[f]
        ref_left, est_left, n_tp = [], [], 0
        for c in classes:
            r = [e for e in refs if e.label == c]
            s = [e for e in ests if e.label == c]
            pairs = match_onsets([e.onset for e in r], [e.onset for e in s], collar)
            class_wise[c] = class_wise[c] + Counts(len(r), len(s), len(pairs))
            n_tp += len(pairs)
            ref_hit = {i for i, _ in pairs}
            est_hit = {j for _, j in pairs}
            ref_left += [e for i, e in enumerate(r) if i not in ref_hit]
            est_left += [e for j, e in enumerate(s) if j not in est_hit]
        overall = overall + Counts(len(refs), len(ests), n_tp, _substitutions(ref_left, est_left, collar))
    return EventScores(classes, class_wise, overall, collar, len(files))
