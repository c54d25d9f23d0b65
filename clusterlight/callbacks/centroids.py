"""The cluster centroids, kept as EMA buffers on the training device."""

from __future__ import annotations

from collections.abc import Iterable, Sized
from typing import Any, cast

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from clusterlight import distributed
from clusterlight.callbacks.finite_guard import NonFiniteError, step_skipped
from clusterlight.clusters import ClusterAssignments, clustered_data
from clusterlight.distances import normalize_embeddings
from clusterlight.init_args import RecordsInitArgs
from clusterlight.progress import progress

EMBEDDING_SOURCES = ("exact", "bank")
PROGRESS_MIN_BATCHES = 200  # an exact embedding pass this long (12,800 clips at batch 64) shows progress


def ema_update_(centroids: torch.Tensor, sums: torch.Tensor, counts: torch.Tensor, momentum: float) -> None:
    """``mu_k <- normalise(m * mu_k + (1 - m) * mean_k)`` in place, for clusters with ``counts > 0``."""
    mean = sums / counts.clamp_min(1)[:, None]
    moved = normalize_embeddings(momentum * centroids + (1 - momentum) * mean)
    centroids.copy_(torch.where(counts[:, None] > 0, moved, centroids))


class ClusterCentroids(RecordsInitArgs, Callback):
    """Keeps the cluster centroids as an EMA of the training embeddings; rebuilds clusters when due.

    At each training epoch start where the DataModule's :class:`ClusterAssignments` say the
    clusters are due, it embeds the training clips (each rank its shard, then all-gathered),
    has the assignments rebuilt by k-means (warm-started from the current centroids), and resets
    the centroids from the result. After every optimiser step :meth:`update` moves each centroid
    towards the mean of the batch's detached embeddings of that cluster; under DDP the
    per-cluster sums and counts are all-reduced first, so every rank holds identical centroids.
    No host sync happens per step. The centroids go into checkpoints; the assignments, what they
    cluster and the rebuild schedule are the DataModule's (:mod:`clusterlight.clusters`).

    A module that trains against the centroids holds its callback (its ``centroids`` argument) and
    returns it from ``configure_callbacks``; at ``setup`` the callback registers itself with the
    module (``pl_module.attach_centroids(self)``), so the module uses the very object the trainer runs,
    also where the trainer holds a copy (``ddp_spawn`` workers).

    Non-finite embeddings are refused without a host sync per step: :meth:`update` leaves rows
    with a NaN/inf out of the sums and counts (the centroids stay finite) and counts them on the
    device; :meth:`check_finite` reads that count once per epoch, at its end, and raises
    :class:`NonFiniteError` naming how many rows were non-finite. A non-finite loss is caught at
    once, before the step, by :class:`~clusterlight.callbacks.FiniteGuard`; a step it skips
    (``on_nonfinite="skip"``) moves no centroid and writes nothing to the memory bank.

    ``embedding_source="bank"`` makes re-clustering nearly free: each clip's embedding from
    its training step since the last rebuild is kept in a device-side memory bank (summed
    over ranks at rebuild time) and clustered instead of running an extra embedding pass;
    the exact pass is still used when the bank is incomplete (first epoch, partial epochs).
    """

    def __init__(self, momentum: float = 0.9, embedding_source: str = "exact") -> None:
        if not 0 <= momentum < 1:
            raise ValueError(f"ClusterCentroids.momentum must be in [0, 1), got {momentum}")
        if embedding_source not in EMBEDDING_SOURCES:
            raise ValueError(
                f"ClusterCentroids.embedding_source must be one of {EMBEDDING_SOURCES}, got "
                f"{embedding_source!r}"
            )
        self.momentum, self.embedding_source = momentum, embedding_source
        self.centroids: torch.Tensor | None = None
        self.clusters: ClusterAssignments | None = None  # the DataModule's, attached at setup
        self.bank: torch.Tensor | None = None
        self.bank_count: torch.Tensor | None = None
        self.nonfinite_rows: torch.Tensor | None = None  # [2] on the device: non-finite, finite rows
        self.restored_cluster_classes: torch.Tensor | None = None  # from a checkpoint, used without a trainer

    @property
    def ready(self) -> bool:
        if self.clusters is not None:
            return self.centroids is not None and self.clusters.built
        return self.centroids is not None and self.restored_cluster_classes is not None

    @property
    def cluster_classes(self) -> torch.Tensor:
        """Each cluster's class [K], on the centroids' device: the DataModule's assignments hold them
        while a trainer runs; a module loaded from a checkpoint alone has the checkpoint's."""
        if self.clusters is not None and self.centroids is not None:
            classes = self.clusters.to(self.centroids.device).cluster_classes
        else:
            classes = None if self.clusters is not None else self.restored_cluster_classes
        if classes is None:
            raise RuntimeError(
                "ClusterCentroids has no cluster classes before the clusters are built (see .ready)"
            )
        return classes

    def to(self, device: torch.device) -> None:
        """Move the centroid state to ``device`` (a no-op when already there)."""
        if self.centroids is not None and self.centroids.device != device:
            self.centroids = self.centroids.to(device)
        if self.restored_cluster_classes is not None:
            self.restored_cluster_classes = self.restored_cluster_classes.to(device)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Take the DataModule's cluster state; register with a module that trains against centroids."""
        self.clusters = clustered_data(trainer, type(self).__name__).clusters
        attach = getattr(pl_module, "attach_centroids", None)
        if attach is not None:
            attach(self)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.to(pl_module.device)
        epoch = trainer.current_epoch
        clusters = self.clusters
        assert clusters is not None  # taken from the DataModule at setup, which runs before
        if self.centroids is not None and not clusters.due(epoch):
            return
        embeddings = self.bank_embeddings()
        if embeddings is None:
            embeddings = embed_training_set(trainer, pl_module)
        centroids, stats = clusters.rebuild(embeddings, self.centroids, epoch)
        self.reset(centroids, len(embeddings))
        # identical on every rank (rank 0's clusters are broadcast): sync_dist averages equal values
        pl_module.log_dict(
            {f"cluster/{k}": v for k, v in stats.items()}, on_step=False, on_epoch=True, sync_dist=True
        )

    def reset(self, centroids: torch.Tensor, n_clips: int) -> None:
        """Start from freshly built clusters' ``centroids`` [K, d], with an empty memory bank for
        ``n_clips`` training clips when the bank is on."""
        self.centroids = centroids
        if self.embedding_source == "bank":
            self.bank = torch.zeros(n_clips, centroids.shape[1], device=centroids.device)
            self.bank_count = torch.zeros(n_clips, device=centroids.device)

    @torch.no_grad()
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs, batch: dict, batch_idx: int
    ) -> None:
        if step_skipped(trainer):  # FiniteGuard(on_nonfinite="skip") dropped this step: so do we
            return
        if isinstance(outputs, dict) and "embeddings" in outputs:  # else no cluster loss this run
            self.update(outputs["embeddings"], batch["cluster"], batch["index"])

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.check_finite(f"in epoch {trainer.current_epoch}")

    @torch.no_grad()
    def update(self, z: torch.Tensor, clusters: torch.Tensor, index: torch.Tensor) -> None:
        """One EMA step from a batch: unit-norm embeddings ``z`` [B, d] of training clips ``index``
        [B] in ``clusters`` [B]; also accumulates the memory bank when it is on.

        Rows of ``z`` with a NaN/inf are left out (of the centroids and the bank) and counted on the
        device, without a host sync; :meth:`check_finite` raises on them."""
        centroids = self.centroids
        if centroids is None:
            raise RuntimeError("ClusterCentroids.update before the centroids are built (reset)")
        z = z.float()
        finite = torch.isfinite(z).all(1)
        z = torch.where(finite[:, None], z, 0.0)
        weight = finite.to(z.dtype)
        rows = torch.stack([(~finite).sum(), finite.sum()])  # on the device: no host-to-device copy
        self.nonfinite_rows = rows if self.nonfinite_rows is None else self.nonfinite_rows + rows
        sums = torch.zeros_like(centroids).index_add_(0, clusters, z)
        counts = torch.zeros(len(centroids), dtype=z.dtype, device=z.device).index_add_(0, clusters, weight)
        distributed.all_reduce_sum_(sums)
        distributed.all_reduce_sum_(counts)
        ema_update_(centroids, sums, counts, self.momentum)
        if self.bank is not None and self.bank_count is not None:  # reset sets both
            self.bank.index_add_(0, index, z)
            self.bank_count.index_add_(0, index, weight)

    def check_finite(self, when: str = "") -> None:
        """Raise :class:`NonFiniteError` if :meth:`update` was given non-finite embeddings since the last
        check (one host read of a device counter; the same on every rank under DDP)."""
        rows, self.nonfinite_rows = self.nonfinite_rows, None
        if rows is None:
            return
        rows = distributed.all_reduce_sum_(rows.clone())
        bad, good = (int(v) for v in rows.tolist())
        total = bad + good
        if bad:
            raise NonFiniteError(
                f"ClusterCentroids: {bad} of the {total} training embeddings {when} were non-finite "
                "(NaN/inf); they were left out of the centroid update (the centroids stay finite), but "
                "the network produces non-finite embeddings: lower the learning rate or check the data",
                what="embeddings",
            )

    def bank_embeddings(self) -> torch.Tensor | None:
        """The memory bank's per-clip mean embedding, or None when it does not cover every clip."""
        if self.bank is None or self.bank_count is None:  # reset sets both
            return None
        distributed.all_reduce_sum_(self.bank)
        distributed.all_reduce_sum_(self.bank_count)
        if bool((self.bank_count == 0).any()):
            return None
        return self.bank / self.bank_count[:, None]

    def state_dict(self) -> dict:
        """The centroids and, once clusters are built, each cluster's class (so a module loaded from
        the checkpoint alone classifies by nearest centroid)."""
        if self.centroids is None:
            return {}
        state = {"centroids": self.centroids.cpu()}
        if self.ready:
            state["cluster_classes"] = self.cluster_classes.cpu()
        return state

    def load_state_dict(self, state: dict) -> None:
        # Runs before the module reaches its device: keep CPU tensors, moved on first use.
        self.centroids = state.get("centroids")
        self.restored_cluster_classes = state.get("cluster_classes")


@torch.no_grad()
def embed_training_set(trainer: Trainer, pl_module: LightningModule) -> torch.Tensor:
    """Embeddings [n_train, d] of all training clips in order, identical on every rank."""
    data = clustered_data(trainer, "embed_training_set")
    if data.clusters.labels is None:
        raise RuntimeError(
            "embed_training_set: the DataModule's clusters have no training clips (set at setup)"
        )
    n = len(data.clusters.labels)
    was_training = pl_module.training
    pl_module.eval()
    indices, chunks = [], []
    batches: Iterable = data.embedding_dataloader()
    if trainer.is_global_zero and len(cast(Sized, batches)) >= PROGRESS_MIN_BATCHES:
        batches = progress(batches, "embedding the training clips", unit="batches")
    with trainer.precision_plugin.forward_context():
        for batch in batches:
            indices.append(batch["index"])
            # pl_module: a module with embed() (an AudioModule)
            chunks.append(cast(Any, pl_module).embed(data.load_inputs(batch, pl_module.device)).float())
    pl_module.train(was_training)
    rank, world = distributed.rank_and_world()
    per_rank = -(-n // world)
    z = torch.zeros(per_rank, chunks[0].shape[1], device=pl_module.device)
    idx = torch.full((per_rank,), -1, dtype=torch.long, device=pl_module.device)
    local = torch.cat(chunks)
    z[: len(local)] = local
    idx[: len(local)] = torch.cat(indices).to(pl_module.device)
    z, idx = distributed.all_gather_cat(z), distributed.all_gather_cat(idx)
    out = torch.empty(n, z.shape[1], device=z.device)
    out[idx[idx >= 0]] = z[idx >= 0]
    return out
