"""Samplers that shard themselves across DDP ranks.

All subclass ``DistributedSampler``, so Lightning leaves them in place instead of wrapping
them a second time. The training ones are seeded per epoch (``set_epoch``), which makes a
resumed run draw the same batches as an uninterrupted one; the evaluation one never repeats
a clip, so metrics under DDP equal a single process's.
"""

from __future__ import annotations

import math
from collections.abc import Sized
from typing import cast

import torch
from torch.utils.data import Dataset, DistributedSampler


def loader_seed(seed: int, epoch: int) -> int:
    """Seed of the training DataLoader's own generator in ``epoch`` (worker seeds derive from it)."""
    return seed * 100_003 + epoch


class EpochSeeded(DistributedSampler):
    """Base of the training samplers: ``set_epoch`` also reseeds ``loader_generator``, the training
    DataLoader's own generator, so the loader never draws from the global RNG and its worker seeds
    depend on (seed, epoch) alone: the same whether the epoch's iterator is made at fit start (a
    resumed run) or at epoch start (an uninterrupted one)."""

    loader_generator: torch.Generator | None = None

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if self.loader_generator is not None:
            self.loader_generator.manual_seed(loader_seed(self.seed, epoch))


class ShuffleSampler(EpochSeeded):
    """A seeded per-epoch shuffle over this rank's shard."""

    def __init__(self, dataset: Dataset, rank: int, world: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False)


class OversamplingSampler(EpochSeeded):
    """Random oversampling: each epoch draws ``len(labels)`` clips with replacement, every class equally
    likely."""

    def __init__(self, labels: torch.Tensor, rank: int, world: int, seed: int) -> None:
        self.labels = labels.long()
        indices = cast(Dataset, range(len(labels)))  # the base class reads only its length
        super().__init__(indices, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.num_samples = math.ceil(len(labels) / world)
        self.total_size = self.num_samples * world

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        counts = torch.bincount(self.labels).clamp_min(1).double()
        weights = (1.0 / counts)[self.labels]
        drawn = torch.multinomial(weights, self.total_size, replacement=True, generator=g)
        return iter(drawn[self.rank :: self.num_replicas].tolist())


class EvaluationShard(DistributedSampler):
    """This rank's clips ``rank, rank + world, ...`` in order, without the padding
    ``DistributedSampler`` adds: every clip is evaluated exactly once over all ranks (shards may
    differ by one clip), so a confusion matrix summed over ranks is the single-process one."""

    def __init__(self, dataset: Dataset, rank: int, world: int) -> None:
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=False, drop_last=False)
        self.num_samples = len(range(rank, len(cast(Sized, dataset)), world))

    def __iter__(self):
        return iter(range(self.rank, len(cast(Sized, self.dataset)), self.num_replicas))
