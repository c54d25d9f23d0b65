"""In-batch mixing augmentations, applied by the DataModule to training batches on the device.

Each picks for some clips a partner clip from the same batch and adds it to the waveform;
labels are never changed, so every loss and sampler works unchanged. Both draw from
torch's global RNG on the batch's device (seeded by ``seed_everything``).
"""

from __future__ import annotations

import torch

from clusterlight.labels import BACKGROUND


def random_partner(allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of the boolean [B, B] matrix ``allowed``, a uniformly drawn allowed column and
    whether the row had one."""
    scores = torch.rand(allowed.shape, device=allowed.device).masked_fill(~allowed, -1.0)
    best, partner = scores.max(1)
    return partner, best >= 0


def rms(wave: torch.Tensor) -> torch.Tensor:
    return wave.float().pow(2).mean(1).sqrt().clamp_min(1e-6)


class BatchMix:
    """A training-batch augmentation: ``(batch, class_names) -> new waveforms`` [B, T]."""

    def __call__(self, batch: dict, class_names: list[str]) -> torch.Tensor:
        raise NotImplementedError


class BackgroundMix(BatchMix):
    """Adds to each event clip, with probability ``p``, a background clip of the same batch at an
    event-to-background ratio drawn uniformly from ``snr_db`` (dB of RMS).

    The rare events are heard over another background each epoch, so the abundant class
    becomes a resource for the rare ones (the way rare-event corpora such as DCASE 2017
    task 2 are synthesised). Background clips are left as they are.
    """

    def __init__(
        self, background: str = BACKGROUND, p: float = 0.5, snr_db: tuple[float, float] = (0.0, 20.0)
    ) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"BackgroundMix.p must be in [0, 1], got {p}")
        if snr_db[0] > snr_db[1]:
            raise ValueError(
                f"BackgroundMix.snr_db must be (low, high) with low <= high, got {tuple(snr_db)}"
            )
        self.background, self.p, self.snr_db = background, p, (float(snr_db[0]), float(snr_db[1]))

    def __call__(self, batch: dict, class_names: list[str]) -> torch.Tensor:
        if self.background not in class_names:
            raise ValueError(
                f"BackgroundMix.background {self.background!r} is not one of the classes {class_names}"
            )
        wave, labels = batch["wave"], batch["label"]
        is_bg = labels == class_names.index(self.background)
        partner, found = random_partner(is_bg[None, :].expand(len(labels), -1))
        chosen = found & ~is_bg & (torch.rand(len(labels), device=wave.device) < self.p)
        low, high = self.snr_db
        snr = low + (high - low) * torch.rand(len(labels), device=wave.device)
        gain = rms(wave) / (rms(wave[partner]) * 10 ** (snr / 20))
        return torch.where(chosen[:, None], wave + (gain[:, None] * wave[partner]).to(wave.dtype), wave)


class WithinClusterMix(BatchMix):
    """Replaces each clip, with probability ``p``, by ``w * x_i + (1 - w) * x_j``, ``w ~ U(min_weight, 1)``,
    where ``x_j`` is another clip of the same cluster in the batch (of the same class while the
    run has no clusters, e.g. for the class-weighted baseline).

    Mixing inside a cluster keeps each new clip within one mode of its class: new rare-class
    examples without blending the sub-types of a large class.
    """

    def __init__(self, p: float = 0.5, min_weight: float = 0.5) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"WithinClusterMix.p must be in [0, 1], got {p}")
        if not 0 <= min_weight <= 1:
            raise ValueError(f"WithinClusterMix.min_weight must be in [0, 1], got {min_weight}")
        self.p, self.min_weight = p, min_weight

    def __call__(self, batch: dict, class_names: list[str]) -> torch.Tensor:
        wave = batch["wave"]
        groups = batch.get("cluster", batch["label"])
        n = len(groups)
        same = (groups[:, None] == groups[None, :]) & ~torch.eye(n, dtype=torch.bool, device=groups.device)
        partner, found = random_partner(same)
        chosen = found & (torch.rand(n, device=wave.device) < self.p)
        w = self.min_weight + (1 - self.min_weight) * torch.rand(n, 1, device=wave.device)
        return torch.where(chosen[:, None], (w * wave + (1 - w) * wave[partner]).to(wave.dtype), wave)
