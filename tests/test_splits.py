from collections import Counter

import pytest
from helpers.data import TINY_COUNTS, tiny_datamodule

from clusterlight.data.records import Clip, DataError
from clusterlight.data.splits import group_split

TRAIN_COUNTS = TINY_COUNTS["train"]


def _clips():
    clips = []
    for label, n_groups in (("dog", 20), ("bg", 60)):
        for g in range(n_groups):
            for k in range(1 + g % 4):
                clips.append(Clip(f"{label}{g}_{k}.wav", label, group=f"{label}-{g}"))
    return clips


def test_groups_never_span_two_parts():
    clips = _clips()
    parts = group_split(clips, [0.7, 0.15, 0.15], seed=1)
    assert sorted(i for p in parts for i in p) == list(range(len(clips)))
    owner = {}
    for k, part in enumerate(parts):
        for i in part:
            assert owner.setdefault(clips[i].group, k) == k


def test_fractions_and_class_balance_roughly_kept():
    clips = _clips()
    train, val, test = group_split(clips, [0.7, 0.15, 0.15], seed=2)
    assert abs(len(train) / len(clips) - 0.7) < 0.05
    for part in (val, test):
        labels = Counter(clips[i].label for i in part)
        assert labels["dog"] > 0 and labels["bg"] > labels["dog"]


def test_split_is_seeded():
    clips = _clips()
    assert group_split(clips, [0.8, 0.2], seed=3) == group_split(clips, [0.8, 0.2], seed=3)
    assert group_split(clips, [0.8, 0.2], seed=3) != group_split(clips, [0.8, 0.2], seed=4)


def test_a_part_left_without_a_class_takes_the_group_nearest_its_target():
    """car_horn: one 10-clip recording and one 1-clip one; at 80/20 the dealing alone leaves validation
    without car_horn whenever the small group comes first (the big one then goes to training too)."""
    clips = [Clip(f"big{k}.wav", "car_horn", group="big") for k in range(10)]
    clips += [Clip("small.wav", "car_horn", group="small"), Clip("bg.wav", "bg", group="bg")]
    for seed in range(10):
        train, val = group_split(clips, [0.8, 0.2], seed)
        assert val == [10] and train == [*range(10), 11]  # the lone bg group stays in one part


def test_every_part_gets_every_class_with_enough_groups():
    sizes = [19, 7, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1]  # car_horn recordings of UrbanSound8K fold 2
    clips = [Clip(f"c{g}_{k}.wav", "car_horn", group=f"c{g}") for g, n in enumerate(sizes) for k in range(n)]
    for seed in range(30):
        for fractions in ([0.8, 0.2], [0.2] * 5):
            parts = group_split(clips, fractions, seed)
            assert all(parts) and sorted(i for p in parts for i in p) == list(range(len(clips)))


def test_bad_fractions():
    with pytest.raises(DataError, match="sum to 1"):
        group_split(_clips(), [0.5, 0.2], seed=0)


def test_val_part_cross_validates_the_training_folds(synth_root, tmp_path):
    vals, trains = [], []
    for k in range(4):
        dm = tiny_datamodule(
            synth_root, tmp_path / "cache", val_folds=None, val_fraction=0.25, val_part=k, seed=k
        )
        dm.setup()
        rows = {name: set(dm.datasets[name].rows.tolist()) for name in ("train", "val")}
        assert not rows["train"] & rows["val"]
        vals.append(rows["val"])
        trains.append(rows["train"])
    every = set().union(*vals)
    assert (
        sum(len(v) for v in vals) == len(every) == sum(TRAIN_COUNTS.values())
    )  # each training-fold clip validates once
    assert all(trains[k] == every - vals[k] for k in range(4))


def test_val_part_errors_name_the_field(synth_root, tmp_path):
    with pytest.raises(DataError, match=r"data.val_part must be in \[0, 4\)"):
        tiny_datamodule(synth_root, tmp_path / "cache", val_folds=None, val_fraction=0.25, val_part=4)
    dm = tiny_datamodule(synth_root, tmp_path / "cache", val_part=0)  # the source's own val fold is set
    with pytest.raises(DataError, match="val_part needs val_folds: null"):
        dm.setup()
