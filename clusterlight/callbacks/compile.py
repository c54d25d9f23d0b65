"""``torch.compile`` as a Callback, so any config can switch it on (``trainer.callbacks``)."""

from __future__ import annotations

from typing import cast

from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn


class CompileModel(Callback):
    """Compiles the module's backbone (and with ``frontend=True`` its log-mel front end) in place when a
    run starts.

    In place (``nn.Module.compile``), so parameter names do not change: a checkpoint written
    by a compiled run loads into an eager one and back. The front end is left eager by
    default: its STFT is a complex-valued op that inductor does not generate code for. The
    first steps pay the compile time (and a recompile for a smaller last batch);
    ``benchmarks/throughput.py`` measures whether it pays off on a given device and backbone.
    """

    def __init__(self, mode: str | None = None, dynamic: bool | None = None, frontend: bool = False) -> None:
        self.mode, self.dynamic, self.frontend = mode, dynamic, frontend

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        for part in (pl_module.backbone, pl_module.frontend) if self.frontend else (pl_module.backbone,):
            cast(nn.Module, part).compile(mode=self.mode, dynamic=self.dynamic)
