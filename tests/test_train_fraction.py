"""data.train_fraction: a nested, class-stratified, group-aware training subset that no seed changes."""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import pytest
from helpers.data import write_fold_manifest

from clusterlight.data import AudioDataModule, ManifestSource
from clusterlight.data.imbalance import ratio_counts
from clusterlight.data.records import Clip, DataError
from clusterlight.data.splits import nested_fraction

CLASSES = ["dog_bark", "car_horn", "background"]


@pytest.fixture(scope="module")
def fold_root(tmp_path_factory) -> Path:
    return write_fold_manifest(tmp_path_factory.mktemp("folds"))


def datamodule(root: Path, cache: Path, **kwargs) -> AudioDataModule:
    args = dict(
        source=ManifestSource(str(root), manifest="labels.csv", group_column="source_id"),
        classes=CLASSES,
        train_folds=["fold1"],
        val_folds=None,
        test_folds=["fold2"],
        val_fraction=0.25,
        sample_rate=8000,
        duration=0.1,
        cache_dir=str(cache),
    )
    dm = AudioDataModule(**{**args, **kwargs})
    dm.setup()
    return dm


def rows(dm: AudioDataModule, split: str) -> set[int]:
    return set(dm.datasets[split].rows.tolist())


def half_up(x: float) -> int:
    return math.floor(x + 0.5)


def grouped_clips() -> list[Clip]:
    clips = []
    for label, n_groups in (("dog", 30), ("bg", 90)):
        for g in range(n_groups):
            clips += [Clip(f"{label}{g}_{k}.wav", label, group=f"{label}-{g}") for k in range(1 + g % 4)]
    return clips


def test_subsets_are_nested():
    clips = grouped_clips()
    kept = {f: set(nested_fraction(clips, f)) for f in (0.25, 0.5, 1.0)}
    assert kept[0.25] < kept[0.5] < kept[1.0] == set(range(len(clips)))


def test_each_class_keeps_its_share_in_whole_groups_but_one():
    clips = grouped_clips()
    total = Counter(c.label for c in clips)
    for f in (0.1, 0.25, 0.5, 0.75):
        keep = set(nested_fraction(clips, f))
        assert Counter(clips[i].label for i in keep) == {c: half_up(f * n) for c, n in total.items()}
        for label in total:
            groups = {c.group for i, c in enumerate(clips) if i in keep and c.label == label}
            cut = [g for g in groups if any(i not in keep for i, c in enumerate(clips) if c.group == g)]
            assert len(cut) <= 1, (f, label, cut)


def test_every_class_keeps_a_clip_at_a_tiny_fraction():
    clips = grouped_clips()
    assert Counter(clips[i].label for i in nested_fraction(clips, 1e-6)) == {"dog": 1, "bg": 1}


def test_subset_depends_on_the_clips_not_their_order():
    clips = grouped_clips()
    shuffled = clips[:]
    random.Random(1).shuffle(shuffled)
    chosen = {clips[i].path for i in nested_fraction(clips, 0.4)}
    assert {shuffled[i].path for i in nested_fraction(shuffled, 0.4)} == chosen


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.01, 2, True, "0.5", None])
def test_bad_fractions_name_the_field(bad, tmp_path):
    with pytest.raises(DataError, match=r"data.train_fraction must be a number in \(0, 1\]"):
        AudioDataModule(train_fraction=bad, cache_dir=str(tmp_path))
    with pytest.raises(DataError, match=r"fraction must be a number in \(0, 1\]"):
        nested_fraction(grouped_clips(), bad)


def test_datamodule_reduces_only_the_training_split(fold_root, tmp_path):
    full = datamodule(fold_root, tmp_path / "cache")
    half = datamodule(fold_root, tmp_path / "cache", train_fraction=0.5)
    quarter = datamodule(fold_root, tmp_path / "cache", train_fraction=0.25)
    assert rows(quarter, "train") < rows(half, "train") < rows(full, "train")
    for split in ("val", "test"):
        assert rows(half, split) == rows(quarter, split) == rows(full, split)
    for name, n in full.counts["train"].items():
        assert half.counts["train"][name] == half_up(n / 2)
        assert quarter.counts["train"][name] == max(1, half_up(n / 4))


def test_every_seed_and_method_sees_the_same_subset(fold_root, tmp_path):
    """With a seed-independent validation split (here a cross-validation part) the training subset is
    the same for every seed; with the seeded carve it is the same fixed ranking applied to that seed's
    training split."""
    same = [datamodule(fold_root, tmp_path / "cache", train_fraction=0.5, val_part=0, seed=s) for s in (0, 3)]
    assert rows(same[0], "train") == rows(same[1], "train")
    again = datamodule(fold_root, tmp_path / "cache", train_fraction=0.5, seed=3)
    assert rows(again, "train") == rows(
        datamodule(fold_root, tmp_path / "cache", train_fraction=0.5, seed=3), "train"
    )


def test_class_ratio_subsamples_the_fraction(fold_root, tmp_path):
    ratio = {"dog_bark": 1, "car_horn": 1, "background": 3}
    for seed in (0, 1):
        subset = datamodule(fold_root, tmp_path / "cache", train_fraction=0.5, seed=seed)
        dm = datamodule(fold_root, tmp_path / "cache", train_fraction=0.5, class_ratio=ratio, seed=seed)
        assert rows(dm, "train") <= rows(subset, "train")
        assert dm.counts["train"] == ratio_counts(subset.counts["train"], ratio)
