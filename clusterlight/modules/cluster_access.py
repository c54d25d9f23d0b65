"""How a LightningModule that trains against centroids reaches its :class:`ClusterCentroids` callback.

The centroid settings (momentum, embedding source) live on the callback alone. A module takes an
optional ``centroids: ClusterCentroids`` argument and adds it with ``configure_callbacks``; when
``trainer.callbacks`` already holds one, that one is used, and configuring both is an error.
A module loaded from a checkpoint alone (``clusterlight.load``), attached to no trainer, uses its own
callback with the checkpoint's centroids and cluster classes.
"""

from __future__ import annotations

from lightning.pytorch import LightningModule

from clusterlight.callbacks.centroids import ClusterCentroids


class CentroidUser:
    """Mixin for modules that train against the centroids; call ``_init_centroids`` in ``__init__``."""

    def _init_centroids(self, centroids: ClusterCentroids | None) -> None:
        self._centroids_given = centroids is not None
        self.centroid_callback = centroids

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Outside a trainer (``load_from_checkpoint``), restore the checkpoint's centroids into the
        module's own callback; a trainer restores its callbacks itself."""
        super().on_load_checkpoint(checkpoint)
        if _trainer_of(self) is not None:
            return
        state = centroid_state(checkpoint)
        if state:
            if self.centroid_callback is None:
                self.centroid_callback = ClusterCentroids()
            self.centroid_callback.load_state_dict(state)

    def centroid_callbacks(self: LightningModule) -> list:
        """``configure_callbacks`` part: the module's ClusterCentroids unless the trainer has its own."""
        configured = [
            c
            for c in self.trainer.callbacks
            if isinstance(c, ClusterCentroids) and c is not self.centroid_callback
        ]
        if configured and self._centroids_given:
            raise ValueError(
                f"ClusterCentroids is configured twice: model.init_args.centroids "
                f"(momentum {self.centroid_callback.momentum}, embedding_source "
                f"{self.centroid_callback.embedding_source!r}) and trainer.callbacks (momentum "
                f"{configured[0].momentum}, embedding_source {configured[0].embedding_source!r}); keep one"
            )
        if configured or self.centroid_callback in self.trainer.callbacks:
            return []  # the trainer's own, or ours attached by an earlier fit/test of this trainer
        if self.centroid_callback is None:
            self.centroid_callback = ClusterCentroids()
        return [self.centroid_callback]


def _trainer_of(module: LightningModule):
    try:
        return module.trainer
    except RuntimeError:  # Lightning: "not attached to a Trainer"
        return None


def centroid_state(checkpoint: dict) -> dict:
    """The :class:`ClusterCentroids` state in a checkpoint's callback states, with the cluster classes,
    which checkpoints before 0.2 kept only in the DataModule's state; ``{}`` when there is none."""
    name = ClusterCentroids.__qualname__
    states = checkpoint.get("callbacks", {})
    state = next((v for k, v in states.items() if k.split("{")[0] == name and v), {})
    if state and "cluster_classes" not in state:
        data = next((v for v in checkpoint.values() if isinstance(v, dict) and "cluster_classes" in v), {})
        state = {**state, **({"cluster_classes": data["cluster_classes"]} if data else {})}
    return state


def find_centroids(module: LightningModule) -> ClusterCentroids:
    """The trainer's :class:`ClusterCentroids`; outside a trainer, the module's own (restored from its
    checkpoint by ``load_from_checkpoint``)."""
    trainer = _trainer_of(module)
    if trainer is None:
        own = getattr(module, "centroid_callback", None)
        if own is None:
            raise RuntimeError(
                f"{type(module).__name__} is attached to no Trainer and holds no cluster centroids: load it "
                "from a checkpoint of a trained run (clusterlight.load), or run it in a Trainer"
            )
        return own
    found = [c for c in trainer.callbacks if isinstance(c, ClusterCentroids)]
    if not found:
        raise RuntimeError(f"{type(module).__name__} needs a ClusterCentroids callback in trainer.callbacks")
    return found[0]
