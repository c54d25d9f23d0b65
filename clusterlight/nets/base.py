"""The backbone contract and its registry: subclassing :class:`Backbone` with a ``name`` registers it."""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from clusterlight.init_args import RecordsInitArgs


class Backbone(RecordsInitArgs, nn.Module):
    """An embedding network: log-mel [B, n_mels, T] -> features [B, embed_dim].

    A subclass declared as ``class MyNet(Backbone, name="mynet")`` is registered under that name
    for :func:`create_backbone`; YAML configs name it by ``class_path`` (one YAML per backbone in
    ``configs/model/net/``). Subclasses call ``super().__init__(n_mels, embed_dim)``.
    """

    registry: ClassVar[dict[str, type[Backbone]]] = {}

    def __init_subclass__(cls, name: str | None = None, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            if name in Backbone.registry:
                raise ValueError(f"backbone name {name!r} is taken by {Backbone.registry[name].__qualname__}")
            Backbone.registry[name] = cls

    def __init__(self, n_mels: int, embed_dim: int) -> None:
        super().__init__()
        self.n_mels, self.embed_dim = n_mels, embed_dim


def create_backbone(name: str, **kwargs) -> Backbone:
    """``create_backbone("lstm", embed_dim=64)``: a registered backbone by name."""
    if name not in Backbone.registry:
        raise KeyError(f"unknown backbone {name!r}; available: {sorted(Backbone.registry)}")
    return Backbone.registry[name](**kwargs)
