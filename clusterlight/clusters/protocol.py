"""What the centroid callback needs from a DataModule: the contract, typed, with a clear error."""

from __future__ import annotations

import inspect
from typing import Protocol, cast

import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader

from clusterlight.clusters.assignments import ClusterAssignments
from clusterlight.trainer_attrs import datamodule_of


class ClusteredData(Protocol):
    """A DataModule whose training clips can be clustered (:class:`~clusterlight.data.AudioDataModule`).

    ``clusters`` holds the cluster state and what it clusters (each training clip's class, in the
    order ``embedding_dataloader`` and batch ``index`` use, and the class names: set at ``setup``);
    ``load_inputs`` turns a batch of that loader into the front end's input (waveforms or cached
    log-mel) on a device.
    """

    clusters: ClusterAssignments

    def embedding_dataloader(self) -> DataLoader: ...

    def load_inputs(self, batch: dict, device: torch.device) -> torch.Tensor: ...


_MEMBERS = ("clusters", "embedding_dataloader", "load_inputs")


def clustered_data(trainer: Trainer, who: str) -> ClusteredData:
    """The trainer's DataModule as :class:`ClusteredData`, or a ``TypeError`` naming what is missing.

    Checked statically (``inspect.getattr_static``): properties are not evaluated, so the check
    works before ``setup``.
    """
    dm = datamodule_of(trainer)
    if dm is None:
        raise TypeError(
            f"{who} needs a DataModule (e.g. AudioDataModule) passed to the Trainer as datamodule"
        )
    missing = [name for name in _MEMBERS if inspect.getattr_static(dm, name, None) is None]
    if missing:
        raise TypeError(
            f"{who} needs a DataModule that provides clusterlight.clusters.ClusteredData; "
            f"{type(dm).__name__} lacks {missing}"
        )
    return cast(ClusteredData, dm)  # checked member by member above
