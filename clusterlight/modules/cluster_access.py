"""How a LightningModule that trains against centroids holds its :class:`ClusterCentroids` callback.

The centroid settings (momentum, embedding source) are configured one way: the module's ``centroids``
argument (``model.init_args.centroids``; default settings when not given). The module holds that
callback and returns it from ``configure_callbacks``; a ``ClusterCentroids`` in ``trainer.callbacks``
is refused, naming the argument to use. When the trainer runs a copy of the callback (``ddp_spawn``
workers), the callback registers itself with the module at ``setup`` (:meth:`attach_centroids`), so the
module always uses the object the trainer runs. A module loaded from a checkpoint alone
(``clusterlight.load``), attached to no trainer, restores the checkpoint's centroids and cluster classes
into its own callback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lightning.pytorch import LightningModule, Trainer

from clusterlight.callbacks.centroids import ClusterCentroids
from clusterlight.trainer_attrs import callbacks_of

if TYPE_CHECKING:  # the mixin is only ever combined with a LightningModule (the hooks it overrides)
    _MixinBase = LightningModule
else:
    _MixinBase = object

_FROM_MODULE = "_from_module"  # marks a callback a module attached (not one of trainer.callbacks)


class CentroidUser(_MixinBase):
    """Mixin for modules that train against the centroids; call ``_init_centroids`` in ``__init__``."""

    centroid_callback: ClusterCentroids

    def _init_centroids(self, centroids: ClusterCentroids | None) -> None:
        self.centroid_callback = centroids if centroids is not None else ClusterCentroids()

    def attach_centroids(self, callback: ClusterCentroids) -> None:
        """Use ``callback``, the one the trainer runs (:meth:`ClusterCentroids.setup` calls this)."""
        self.centroid_callback = callback

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Outside a trainer (``load_from_checkpoint``), restore the checkpoint's centroids into the
        module's callback; a trainer restores its callbacks itself."""
        super().on_load_checkpoint(checkpoint)
        state = centroid_state(checkpoint)
        if state and _trainer_of(self) is None:
            self.centroid_callback.load_state_dict(state)

    def centroid_callbacks(self) -> list:
        """``configure_callbacks`` part: the module's ClusterCentroids (replacing, by Lightning's rule, one
        that another module attached to this trainer before)."""
        configured = [
            c
            for c in callbacks_of(self.trainer)
            if isinstance(c, ClusterCentroids) and not getattr(c, _FROM_MODULE, False)
        ]
        if configured:
            raise ValueError(
                f"a ClusterCentroids callback is in trainer.callbacks (momentum {configured[0].momentum}, "
                f"embedding_source {configured[0].embedding_source!r}): the centroid settings of "
                f"{type(self).__name__} are its centroids argument (model.init_args.centroids); move "
                "them there"
            )
        setattr(self.centroid_callback, _FROM_MODULE, True)
        return [self.centroid_callback]


def _trainer_of(module: LightningModule) -> Trainer | None:
    try:
        return module.trainer
    except RuntimeError:  # Lightning: "not attached to a Trainer"
        return None


def centroid_state(checkpoint: dict) -> dict:
    """The :class:`ClusterCentroids` state in a checkpoint's callback states (the centroids and each
    cluster's class); ``{}`` when there is none."""
    name = ClusterCentroids.__qualname__
    states = checkpoint.get("callbacks", {})
    return next((v for k, v in states.items() if k.split("{")[0] == name and v), {})
