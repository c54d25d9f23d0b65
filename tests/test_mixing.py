"""In-batch mixing augmentations: what gets mixed with what, at which level, and only in training."""

import math

import pytest
import torch
from helpers.data import CLASSES, tiny_datamodule
from helpers.models import tiny_parts, tiny_trainer

from clusterlight.data import BackgroundMix, BatchMix, WithinClusterMix
from clusterlight.modules import Classifier


def _batch(labels, clusters=None, t=32):
    labels = torch.tensor(labels)
    g = torch.Generator().manual_seed(0)
    batch = {"wave": torch.randn(len(labels), t, generator=g), "label": labels}
    if clusters is not None:
        batch["cluster"] = torch.tensor(clusters)
    return batch


def test_background_mix_adds_a_background_clip_at_the_drawn_level():
    torch.manual_seed(0)
    batch = _batch([0, 1, 2, 3, 3, 0, 3, 2])
    out = BackgroundMix(background="background", p=1.0, snr_db=(5.0, 15.0))(batch, CLASSES)
    bg = torch.nonzero(batch["label"] == 3).squeeze(1)
    assert torch.equal(out[bg], batch["wave"][bg])  # background clips are untouched
    for i in torch.nonzero(batch["label"] != 3).squeeze(1):
        added = out[i] - batch["wave"][i]
        # the added signal is a scaled copy of one of the batch's background clips ...
        fits = [
            torch.allclose(added / (added.norm() / batch["wave"][j].norm()), batch["wave"][j], atol=1e-4)
            for j in bg
        ]
        assert any(fits)
        # ... at an event-to-background ratio inside snr_db
        snr = 20 * math.log10(batch["wave"][i].pow(2).mean().sqrt() / added.pow(2).mean().sqrt())
        assert 5.0 - 1e-3 <= snr <= 15.0 + 1e-3


def test_background_mix_probability_and_errors():
    batch = _batch([0, 1, 2, 3])
    assert torch.equal(BackgroundMix(p=0.0)(batch, CLASSES), batch["wave"])
    with pytest.raises(ValueError, match="'noise' is not one of the classes"):
        BackgroundMix(background="noise")(batch, CLASSES)
    with pytest.raises(ValueError, match="snr_db"):
        BackgroundMix(snr_db=(10.0, 0.0))
    no_background = _batch([0, 1, 2, 0])
    assert torch.equal(BackgroundMix(p=1.0)(no_background, CLASSES), no_background["wave"])


@pytest.mark.parametrize("use_clusters", [True, False])
def test_within_cluster_mix_only_mixes_inside_a_group(use_clusters):
    torch.manual_seed(0)
    labels = [0, 0, 0, 1, 3, 3, 3, 3]
    clusters = [0, 0, 1, 2, 3, 3, 4, 4]  # class 0 split in two clusters; clip 2 and 3 have no partner
    groups = torch.tensor(clusters if use_clusters else labels)
    batch = _batch(labels, clusters if use_clusters else None, t=8)
    batch["wave"] = torch.eye(8)  # clip i is the unit vector e_i: each output row shows its sources
    out = WithinClusterMix(p=1.0, min_weight=0.6)(batch, CLASSES)
    for i in range(8):
        sources = torch.nonzero(out[i]).squeeze(1).tolist()
        alone = int((groups == groups[i]).sum()) == 1
        if alone:
            assert sources == [i]
        else:
            assert len(sources) == 2 and i in sources and out[i, i] >= 0.6 - 1e-6
            assert all(groups[j] == groups[i] for j in sources)
            assert torch.isclose(out[i].sum(), torch.tensor(1.0))


def test_mixing_applies_to_training_batches_only(synth_root, tmp_path):
    calls = []

    class Spy(BatchMix):
        def __call__(self, batch, class_names):
            calls.append(len(batch["wave"]))
            return batch["wave"]

    dm = tiny_datamodule(synth_root, tmp_path / "cache", mixing=Spy())
    trainer = tiny_trainer(tmp_path, max_epochs=1, num_sanity_val_steps=2)
    trainer.fit(Classifier(*tiny_parts(), dm.class_names), dm)
    assert len(calls) == trainer.num_training_batches  # validation batches are never mixed
    trainer.test(Classifier(*tiny_parts(), dm.class_names), dm, verbose=False)
    assert len(calls) == trainer.num_training_batches
