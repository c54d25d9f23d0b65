"""A method chosen on validation: the candidate whose selected checkpoints have the lowest validation
macro error, reported beside the others under its own name, so the table states what a user who picks
a variant on validation (never on the test split) would get.

In an experiment file::

    choose_on_validation:
      name: clustered_chosen_on_val      # the row it gets in every table
      among: [clustered, clustered_ema]  # candidate methods
      min_seeds: 3                       # a candidate needs this many finished seeds

The candidates are compared on the seeds every eligible one has finished (paired, like the tables),
by the mean validation macro error of their selected checkpoints (:func:`validation_error`); test
errors are never read. The candidates should select their checkpoints by the same rule: a rule that
picks the best single validation epoch always looks at least as good on validation as one that does
not (a smoothed curve's best window), whatever either does on test.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast


class ChoiceError(ValueError):
    """A malformed ``choose_on_validation``, named with the field and what was expected."""


@dataclass(frozen=True)
class ValidationChoice:
    """``choose_on_validation`` of an experiment file (see the module docstring)."""

    name: str
    among: tuple[str, ...]
    min_seeds: int = 1

    @classmethod
    def from_experiment(cls, exp: Mapping, methods: Iterable[str]) -> ValidationChoice | None:
        """The experiment's choice, or ``None`` without one; a ``ChoiceError`` naming the field otherwise."""
        spec = exp.get("choose_on_validation")
        if spec is None:
            return None
        where = f"experiment '{exp.get('name')}': choose_on_validation"
        if not isinstance(spec, Mapping):
            raise ChoiceError(f"{where} must be a mapping {{name, among, min_seeds}}, got {spec!r}")
        unknown = sorted(set(spec) - {"name", "among", "min_seeds"})
        if unknown:
            raise ChoiceError(f"{where}: unknown key(s) {unknown}; expected name, among, min_seeds")
        methods = list(methods)
        among = spec.get("among")
        if isinstance(among, str) or not isinstance(among, Sequence):
            raise ChoiceError(f"{where}.among must be a list of the experiment's methods, got {among!r}")
        among = tuple(dict.fromkeys(str(m) for m in among))
        missing = [m for m in among if m not in methods]
        if len(among) < 2 or missing:
            raise ChoiceError(
                f"{where}.among must name at least two different methods of the experiment; got "
                f"{list(among)}" + (f" (no method(s) {missing})" if missing else "")
            )
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise ChoiceError(f"{where}.name must name the choice's row, e.g. clustered_chosen_on_val")
        if name in methods:
            raise ChoiceError(f"{where}.name '{name}' is already a method's name; give the choice its own")
        min_seeds = spec.get("min_seeds", 1)
        if not isinstance(min_seeds, int) or isinstance(min_seeds, bool) or min_seeds < 1:
            raise ChoiceError(f"{where}.min_seeds must be a whole number of at least 1, got {min_seeds!r}")
        return cls(name, among, min_seeds)


def validation_error(run: Mapping) -> float | None:
    """The validation macro error of a run's selected checkpoint: its own validation pass (``val``), or,
    for a result without one, the monitored score (``selected_val_macro_err``). The score alone is not
    comparable when a run selects by a smoothed curve (an average over epochs)."""
    val = (run.get("val") or {}).get("metrics") or {}
    return val.get("macro_err", run.get("selected_val_macro_err"))


def choose_on_validation(
    runs: Mapping[str, Mapping[int, Mapping]], among: Iterable[str], min_seeds: int = 1
) -> tuple[str | None, dict[str, float], list[int]]:
    """``(chosen, mean validation macro error per eligible candidate, the seeds compared on)``.

    A candidate is eligible with at least ``min_seeds`` finished runs, each with a
    :func:`validation_error`; the eligible ones are compared on the seeds they all have (so each
    mean is over the same seeds); ``chosen`` is ``None`` when fewer than ``min_seeds`` seeds are shared.
    Ties go to the candidate named first."""
    eligible = [
        m
        for m in among
        if len(runs.get(m) or {}) >= max(min_seeds, 1)
        and all(validation_error(r) is not None for r in runs[m].values())
    ]
    shared = sorted(set.intersection(*(set(runs[m]) for m in eligible))) if eligible else []
    if len(shared) < max(min_seeds, 1):
        return None, {}, shared
    # eligible: every run has a validation error
    means = {m: statistics.fmean(cast(float, validation_error(runs[m][s])) for s in shared) for m in eligible}
    return min(means, key=means.__getitem__), means, shared
