"""Log-mel front end as an ``nn.Module``, so it runs on the model's device; optional SpecAugment."""

from __future__ import annotations

import torch
from torch import nn
from torchaudio import transforms as T

from clusterlight.init_args import RecordsInitArgs

LOG_OFFSET = 1e-6  # log(mel power + LOG_OFFSET)


def frontend_input(batch: dict) -> torch.Tensor:
    """What a batch feeds the front end: cached log-mel (``logmel``, from ``data.feature_cache``) or
    waveforms (``wave``)."""
    return batch["logmel"] if "logmel" in batch else batch["wave"]


class LogMel(RecordsInitArgs, nn.Module):
    """Waveforms [B, samples] -> log-mel [B, n_mels, frames].

    ``time_pool`` averages that many frames (a cheap way to shorten LSTM inputs).
    SpecAugment (``freq_masks`` masks of up to ``freq_mask_width`` bands and ``time_masks``
    masks of up to ``time_mask_width`` frames) is applied in training mode only.

    The input may also be log-mel [B, n_mels, frames] already (the log-mel feature cache,
    :mod:`clusterlight.data.logmel_cache`): then only the pooling and SpecAugment run.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        win_length: int = 400,
        hop_length: int = 160,
        n_mels: int = 64,
        f_min: float = 50.0,
        f_max: float | None = None,
        time_pool: int = 1,
        freq_masks: int = 0,
        freq_mask_width: int = 8,
        time_masks: int = 0,
        time_mask_width: int = 20,
    ) -> None:
        super().__init__()
        self.sample_rate, self.n_mels = sample_rate, n_mels
        self.mel = T.MelSpectrogram(
            sample_rate, n_fft, win_length, hop_length, f_min, f_max, n_mels=n_mels, power=2.0
        )
        self.time_pool = time_pool
        self.freq_masks = nn.ModuleList(
            T.FrequencyMasking(freq_mask_width, iid_masks=True) for _ in range(freq_masks)
        )
        self.time_masks = nn.ModuleList(
            T.TimeMasking(time_mask_width, iid_masks=True) for _ in range(time_masks)
        )

    def logmel(self, wave: torch.Tensor) -> torch.Tensor:
        """Log-mel [..., n_mels, frames] of waveforms [..., samples]: no pooling, no SpecAugment."""
        with torch.autocast(wave.device.type, enabled=False):
            return torch.log(self.mel(wave.float()) + LOG_OFFSET)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            if x.shape[1] != self.n_mels:
                raise ValueError(
                    f"log-mel input has {x.shape[1]} mel bands, the front end {self.n_mels} "
                    "(was the feature cache made with other front-end settings?)"
                )
        else:
            x = self.logmel(x)
        if self.time_pool > 1:
            x = nn.functional.avg_pool1d(x, self.time_pool, ceil_mode=True)
        if self.training:
            for mask in [*self.freq_masks, *self.time_masks]:
                x = mask(x.unsqueeze(1)).squeeze(1)
        return x
