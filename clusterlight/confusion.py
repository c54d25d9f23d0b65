"""The confusion matrix to every logger: a picture for TensorBoard and W&B, a table for W&B, rows for CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import torch


def confusion_figure(confusion: torch.Tensor, class_names: list[str], title: str):
    """A matplotlib heat map of the counts, rows normalised to recall (the diagonal is 1 - error)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = confusion.double()
    recall = counts / counts.sum(1, keepdim=True).clamp_min(1)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.2 * n + 2, 1.2 * n + 1.5))
    ax.imshow(recall.numpy(), cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            colour = "white" if recall[i, j] > 0.5 else "black"
            ax.text(j, i, f"{int(counts[i, j])}\n{recall[i, j]:.2f}", ha="center", va="center", color=colour)
    ax.set_xticks(range(n), class_names, rotation=30, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def log_confusion(
    loggers: list, stage: str, confusion: torch.Tensor, class_names: list[str], epoch: int, step: int
) -> None:
    """Send ``confusion`` (rows: true class) to each logger; call on rank 0 only (no collectives here)."""
    pictures = [lg for lg in loggers if type(lg).__name__ in ("TensorBoardLogger", "WandbLogger")]
    fig = confusion_figure(confusion, class_names, f"{stage} confusion, epoch {epoch}") if pictures else None
    key = f"{stage}/confusion"
    for logger in loggers:
        kind = type(logger).__name__
        if kind == "TensorBoardLogger":
            logger.experiment.add_figure(key, fig, global_step=step, close=False)
        elif kind == "WandbLogger":
            names = class_names
            rows = [[t, p, int(confusion[i, j])] for i, t in enumerate(names) for j, p in enumerate(names)]
            logger.log_table(key=f"{key}_table", columns=["true", "predicted", "count"], data=rows, step=step)
            logger.log_image(key=key, images=[fig], step=step)
        elif kind == "CSVLogger":
            _append_rows(Path(logger.log_dir) / "confusion.csv", stage, epoch, step, confusion, class_names)
    if fig is not None:
        import matplotlib.pyplot as plt

        plt.close(fig)


def _append_rows(
    path: Path, stage: str, epoch: int, step: int, confusion: torch.Tensor, names: list[str]
) -> None:
    new = not path.is_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["stage", "epoch", "step", "true", "predicted", "count"])
        for i, t in enumerate(names):
            for j, p in enumerate(names):
                writer.writerow([stage, epoch, step, t, p, int(confusion[i, j])])
