"""Training samplers that shard themselves across DDP ranks.

Both subclass ``DistributedSampler``, so Lightning leaves them in place instead of
wrapping them a second time, and both are seeded per epoch (``set_epoch``), which makes
a resumed run draw the same batches as an uninterrupted one.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset, DistributedSampler


def shuffle_sampler(dataset: Dataset, rank: int, world: int, seed: int) -> DistributedSampler:
    """A seeded per-epoch shuffle over this rank's shard."""
    return DistributedSampler(
        dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False
    )


class OversamplingSampler(DistributedSampler):
    """Random oversampling: each epoch draws ``len(labels)`` clips with replacement, every class equally
    likely."""

    def __init__(self, labels: torch.Tensor, rank: int, world: int, seed: int) -> None:
        self.labels = labels.long()
        super().__init__(
            range(len(labels)), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False
        )
        self.num_samples = math.ceil(len(labels) / world)
        self.total_size = self.num_samples * world

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        counts = torch.bincount(self.labels).clamp_min(1).double()
        weights = (1.0 / counts)[self.labels]
        drawn = torch.multinomial(weights, self.total_size, replacement=True, generator=g)
        return iter(drawn[self.rank :: self.num_replicas].tolist())
