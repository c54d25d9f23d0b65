"""``predictions.csv`` of ``clusterlight predict --config ...``: a DataModule split's clips, their predicted
class and class probabilities, in the columns of the file-mode ``clusterlight predict`` plus ``label``."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import cast

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from clusterlight import distributed


def clip_paths(dataset, index: list[int]) -> list[str | None]:
    """The source files of the clips at split positions ``index`` of ``dataset`` (an
    :class:`~clusterlight.data.dataset.ClipDataset`); None for a dataset that does not keep them."""
    store, rows = getattr(dataset, "store", None), getattr(dataset, "rows", None)
    if store is None or rows is None:
        return [None] * len(index)
    return [str(store.clips[int(rows[i])].path) for i in index]


class SplitPredictionWriter(BasePredictionWriter):
    """Writes every predicted clip to ``<run folder>/<filename>`` (``trainer.log_dir``) when a predict
    epoch ends: ``path, predicted, prob_<class>..., label`` in split order (``label`` empty where
    unknown), from :meth:`AudioModule.predict_step <clusterlight.modules.base.AudioModule.predict_step>`
    outputs. Under DDP each rank keeps its rows; they are gathered and rank 0 writes the file (the
    rows are collected per batch, so this works where Lightning keeps no predictions, as under
    ``ddp_spawn``). ``path`` is where the file was written."""

    def __init__(self, filename: str = "predictions.csv") -> None:
        super().__init__(write_interval="batch")
        self.filename = filename
        self.path: Path | None = None
        self._rows: list[dict] = []

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._rows = []

    def write_on_batch_end(
        self, trainer, pl_module, prediction: dict, batch_indices, batch, batch_idx: int, dataloader_idx: int
    ) -> None:
        probabilities = prediction["probabilities"].float().cpu().tolist()
        for i, index in enumerate(prediction["index"].tolist()):
            row = {"path": prediction["path"][i], "predicted": prediction["predicted"][i]}
            row.update({f"prob_{c}": p for c, p in zip(pl_module.class_names, probabilities[i])})
            self._rows.append({**row, "label": prediction["label"][i], "order": (dataloader_idx, index)})

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        rows = [r for part in distributed.all_gather_objects(self._rows) for r in part]  # every rank
        self._rows = []
        folder = Path(trainer.log_dir or trainer.default_root_dir)  # a broadcast: every rank calls it
        self.path = folder / self.filename
        if not trainer.is_global_zero:
            return
        fields = [
            "path",
            "predicted",
            *(f"prob_{c}" for c in cast(list[str], pl_module.class_names)),
            "label",
        ]
        folder.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(sorted(rows, key=lambda r: r["order"]))
        print(f"[clusterlight] wrote {len(rows)} predictions to {self.path}", flush=True)
