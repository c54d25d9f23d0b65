"""``clusterlight predict --config ... --ckpt_path best`` (LightningCLI, the DataModule's split) writes
``predictions.csv`` in the run folder: file names, predicted classes, class probabilities and labels."""

import csv
from pathlib import Path

import pytest
from helpers.cli import clusterlight, train_tiny_classifier
from helpers.configs import tiny_classifier_args

from clusterlight.inference import load, predict_files

pytestmark = pytest.mark.slow  # clusterlight fit and predict in subprocesses

CLASSES = ["dog_bark", "baby_cry", "gunshot", "background"]


def test_predict_on_the_split_writes_names_probabilities_and_labels(tmp_path):
    best = train_tiny_classifier(tmp_path, epochs=1)
    done = clusterlight(
        [
            "predict",
            *tiny_classifier_args(tmp_path),
            "--ckpt_path",
            "best",
        ]  # fmt: skip
    )
    out = next((tmp_path / "run").rglob("predictions.csv"))
    assert f"wrote 30 predictions to {out}" in done.stdout
    assert out.parent == best.parent.parent  # the run folder of the checkpoint
    with out.open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["path", "predicted", *(f"prob_{c}" for c in CLASSES), "label"]
        rows = list(reader)
    assert len({r["path"] for r in rows}) == 30 and all(Path(r["path"]).is_file() for r in rows)
    assert sum(r["label"] == "background" for r in rows) == 12  # the test split's labels
    for row in rows:
        probs = [float(row[f"prob_{c}"]) for c in CLASSES]
        assert sum(probs) == pytest.approx(1, abs=1e-5)
        assert row["predicted"] == CLASSES[probs.index(max(probs))]
    # the file-mode predict of the same files gives the same probabilities
    files = predict_files(load(best), [r["path"] for r in rows[:5]])
    for row, expected in zip(rows, files):
        assert [float(row[f"prob_{c}"]) for c in CLASSES] == pytest.approx(
            [expected[f"prob_{c}"] for c in CLASSES], abs=1e-5
        )
