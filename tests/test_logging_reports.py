"""What the loggers receive: the confusion matrix as a picture (TensorBoard) and as rows (CSV)."""

import csv

from helpers.data import tiny_datamodule
from helpers.models import tiny_parts, tiny_trainer
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from clusterlight import Classifier


def test_confusion_matrix_reaches_tensorboard_and_csv(synth_root, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    dm = tiny_datamodule(synth_root, tmp_path / "cache")
    model = Classifier(*tiny_parts(), dm.class_names)
    tb, csv_logger = TensorBoardLogger(tmp_path / "tb"), CSVLogger(tmp_path / "csv")
    trainer = tiny_trainer(tmp_path, max_epochs=2, logger=[tb, csv_logger])
    trainer.fit(model, dm)
    trainer.test(model, dm)

    events = EventAccumulator(tb.log_dir, size_guidance={"images": 0}).Reload()
    assert {"val/confusion", "test/confusion"} <= set(events.Tags()["images"])
    assert len(events.Images("val/confusion")) == 2  # one per validation epoch, sanity check excluded

    with open(f"{csv_logger.log_dir}/confusion.csv") as f:
        rows = list(csv.DictReader(f))
    test_rows = [r for r in rows if r["stage"] == "test"]
    assert len(test_rows) == 16  # 4 x 4 classes
    confusion = model.results["test"]["confusion"]
    names = dm.class_names
    assert all(
        int(r["count"]) == confusion[names.index(r["true"])][names.index(r["predicted"])] for r in test_rows
    )
