"""Typed access to the ``Trainer`` attributes Lightning sets at run time (its connectors assign
``trainer.callbacks`` and ``trainer.datamodule``; the ``Trainer`` class does not declare them, so a type
checker does not see them)."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningDataModule, Trainer


def callbacks_of(trainer: Trainer) -> list[Callback]:
    """``trainer.callbacks``: the trainer's callbacks list itself (appending to it adds a callback)."""
    return trainer.callbacks  # type: ignore[attr-defined]  # set by Lightning's callback connector


def datamodule_of(trainer: Trainer) -> LightningDataModule | None:
    """``trainer.datamodule``: the DataModule the trainer runs, or None."""
    return trainer.datamodule  # type: ignore[attr-defined]  # set by Lightning's data connector
