"""Train/validation/test splits: by fold column, or seeded and group-aware; nested training subsets."""

from __future__ import annotations

import hashlib
import math

import numpy as np

from clusterlight.data.records import Clip, DataError


def group_split(clips: list[Clip], fractions: list[float], seed: int) -> list[list[int]]:
    """Split clip indices into ``len(fractions)`` parts of about those shares, never splitting a group.

    Clips without a group are their own group. Groups are shuffled with ``seed`` and dealt
    greedily, per class (of a group's first clip), to the part furthest below its target share, so
    each part keeps roughly the class balance of the whole. A class with at least as many groups as
    there are parts of positive share is in each of them: when the dealing leaves such a part without
    the class (a large group dealt last can do that), it takes, from the part furthest above its
    target that holds two groups of the class or more, the group whose size is nearest its own target.
    """
    if not np.isclose(sum(fractions), 1.0) or min(fractions) < 0:
        raise DataError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(clips):
        groups.setdefault(c.group if c.group is not None else f"#{i}", []).append(i)
    shares = np.asarray(fractions, dtype=np.float64)
    parts: list[list[int]] = [[] for _ in fractions]
    for label in sorted({c.label for c in clips}):
        keys = [k for k, members in groups.items() if clips[members[0]].label == label]
        total = sum(len(groups[k]) for k in keys)
        dealt: list[list[str]] = [[] for _ in fractions]
        filled = np.zeros(len(fractions))
        for j in rng.permutation(len(keys)):
            part = int(np.argmax(shares * total - filled))
            dealt[part].append(keys[j])
            filled[part] += len(groups[keys[j]])
        if len(keys) >= int((shares > 0).sum()):
            _fill_empty_parts(dealt, filled, shares * total, {k: len(groups[k]) for k in keys})
        for part, part_keys in enumerate(dealt):
            parts[part].extend(i for k in part_keys for i in groups[k])
    return [sorted(p) for p in parts]


def _fill_empty_parts(dealt: list[list[str]], filled: np.ndarray, target: np.ndarray, size: dict) -> None:
    """Give each part with a positive target and no group one group (in place; see ``group_split``)."""
    for part in np.flatnonzero((target > 0) & (filled == 0)):
        donors = [p for p in range(len(dealt)) if len(dealt[p]) > 1]
        donor = max(donors, key=lambda p: filled[p] - target[p])
        key = min(dealt[donor], key=lambda k: abs(size[k] - target[part]))
        dealt[donor].remove(key)
        dealt[part].append(key)
        filled[donor] -= size[key]
        filled[part] += size[key]


def _rank_key(key: str) -> tuple[str, str]:
    """A fixed pseudo-random rank of a group key: a hash, so it depends on the key alone."""
    return hashlib.sha1(key.encode()).hexdigest(), key


def nested_fraction(clips: list[Clip], fraction: float) -> list[int]:
    """Indices (sorted) of ``max(1, round(fraction x n_c))`` clips of each class ``c``, group by group.

    Each class's clips are ranked group by group: the groups (a clip without a group is its own, keyed
    by its path; a group belongs to the class of its first clip) in the order of a hash of their key,
    the clips of a group by path. The first clips of that ranking are kept, so the subset holds whole
    groups (source recordings: fewer recordings, not fewer slices of each) but for at most one group per
    class, which is cut to hit the count. The ranking depends on the keys and paths alone, not on a seed
    nor on the order of ``clips``, so every training seed and method keeps the same subset of the same
    clips; a smaller fraction keeps a subset of what a larger one keeps; ``fraction`` 1 keeps everything.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise DataError(f"fraction must be a number in (0, 1], got {fraction!r}")
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(clips):
        groups.setdefault(c.group if c.group is not None else c.path, []).append(i)
    keep: list[int] = []
    for label in sorted({c.label for c in clips}):
        keys = sorted((k for k, members in groups.items() if clips[members[0]].label == label), key=_rank_key)
        ranked = [i for k in keys for i in sorted(groups[k], key=lambda i: clips[i].path)]
        keep.extend(ranked[: max(1, math.floor(fraction * len(ranked) + 0.5))])
    return sorted(keep)
