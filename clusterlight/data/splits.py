"""Train/validation/test splits: by fold column, or seeded and group-aware."""

from __future__ import annotations

import numpy as np

from clusterlight.data.records import Clip, DataError


def group_split(clips: list[Clip], fractions: list[float], seed: int) -> list[list[int]]:
    """Split clip indices into ``len(fractions)`` parts of about those shares, never splitting a group.

    Clips without a group are their own group. Groups are shuffled with ``seed`` and dealt
    greedily, per class (of a group's first clip), to the part furthest below its target share, so
    each part keeps roughly the class balance of the whole.
    """
    if not np.isclose(sum(fractions), 1.0) or min(fractions) < 0:
        raise DataError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(clips):
        groups.setdefault(c.group if c.group is not None else f"#{i}", []).append(i)
    parts: list[list[int]] = [[] for _ in fractions]
    for label in sorted({c.label for c in clips}):
        keys = [k for k, members in groups.items() if clips[members[0]].label == label]
        total = sum(len(groups[k]) for k in keys)
        filled = np.zeros(len(fractions))
        for j in rng.permutation(len(keys)):
            members = groups[keys[j]]
            deficit = np.asarray(fractions) * total - filled
            part = int(np.argmax(deficit))
            parts[part].extend(members)
            filled[part] += len(members)
    return [sorted(p) for p in parts]
