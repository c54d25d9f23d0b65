"""k-means in torch (runs on the embeddings' device) and the method's per-class cluster split."""

from __future__ import annotations

import torch

from clusterlight.distances import normalize_embeddings, squared_distances


def refuse_non_finite(
    x: torch.Tensor, what: str = "k-means", labels: torch.Tensor | None = None, class_names=None
) -> None:
    """Refuse embeddings ``x`` [n, d] with a NaN/inf in any row (one host read when all are finite):
    clustering them would give NaN centroids and arbitrary assignments. The ``ValueError`` says how many
    rows, and with ``labels`` [n] and ``class_names`` how many of each class."""
    bad = ~torch.isfinite(x).all(1) if x.ndim > 1 else ~torch.isfinite(x)
    if not bool(bad.any()):
        return
    if labels is not None:
        per_class = torch.bincount(labels[bad.to(labels.device)], minlength=len(class_names)).tolist()
        classes = ", ".join(f"{c}: {n}" for c, n in zip(class_names, per_class) if n)
        what = f"{what} (non-finite rows per class: {classes})"
    raise ValueError(
        f"{what}: {int(bad.sum())} of {len(x)} embedding rows are non-finite (NaN/inf); refusing to "
        "cluster them (the network producing them has diverged: lower the learning rate or check the data)"
    )


def kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (D^2 sampling); the random draws use the CPU ``generator``."""
    first = int(torch.randint(len(x), (1,), generator=generator))
    centers = [x[first]]
    d2 = squared_distances(x, x[first : first + 1]).squeeze(1)
    for _ in range(1, k):
        probs = d2.double().cpu()
        probs = probs / probs.sum() if probs.sum() > 0 else torch.full_like(probs, 1.0 / len(probs))
        nxt = int(torch.multinomial(probs, 1, generator=generator))
        centers.append(x[nxt])
        d2 = torch.minimum(d2, squared_distances(x, x[nxt : nxt + 1]).squeeze(1))
    return torch.stack(centers)


def balanced_assign(dist: torch.Tensor) -> torch.Tensor:
    """Cluster labels [n] for squared distances ``dist`` [n, k], no cluster holding more than ``ceil(n / k)``.

    Greedy rounds, vectorised on the device: every unassigned point proposes to its nearest
    centroid that still has room; each centroid accepts its closest proposals up to its
    remaining capacity. A round either places every pending point or fills a centroid, so it
    ends within ``k`` rounds.
    """
    n, k = dist.shape
    room = torch.full((k,), -(-n // k), dtype=torch.long, device=dist.device)
    labels = torch.full((n,), -1, dtype=torch.long, device=dist.device)
    while bool((labels < 0).any()):
        pending = (labels < 0).nonzero().squeeze(1)
        d = dist[pending].masked_fill(room[None, :] == 0, float("inf"))
        choice = d.argmin(1)
        order = torch.argsort(d.gather(1, choice[:, None]).squeeze(1))
        order = order[torch.argsort(choice[order], stable=True)]  # grouped by centroid, closest first
        chosen = choice[order]
        rank = torch.arange(len(order), device=dist.device) - torch.searchsorted(chosen, chosen)
        accept = rank < room[chosen]
        labels[pending[order[accept]]] = chosen[accept]
        room -= torch.bincount(chosen[accept], minlength=k)
    return labels


def kmeans(
    x: torch.Tensor,
    k: int,
    iters: int = 20,
    init: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    balanced: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means of ``x`` [n, d] into ``k`` clusters; returns (centroids [k, d], labels [n]).

    Seeded by k-means++ unless ``init`` is given (warm start). A cluster that empties is
    re-seeded with the point farthest from its own centroid, so no centroid is ever NaN.
    ``balanced`` assigns each point under a cap of ``ceil(n / k)`` points per cluster
    (:func:`balanced_assign`) instead of simply to its nearest centroid. Non-finite rows of ``x`` are
    refused (:func:`refuse_non_finite`).
    """
    refuse_non_finite(x)
    return _lloyd(x, k, iters, init, generator, balanced)


def _lloyd(
    x: torch.Tensor,
    k: int,
    iters: int,
    init: torch.Tensor | None,
    generator: torch.Generator | None,
    balanced: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`kmeans` of finite ``x`` (the caller has checked)."""
    if not 1 <= k <= len(x):
        raise ValueError(f"k-means needs 1 <= k <= n points, got k={k}, n={len(x)}")
    generator = generator or torch.Generator().manual_seed(0)
    x = x.float()
    centroids = init.float().clone() if init is not None else kmeans_plus_plus(x, k, generator)
    for _ in range(iters + 1):
        dist = squared_distances(x, centroids)
        labels = balanced_assign(dist) if balanced and k > 1 else dist.argmin(1)
        counts = torch.bincount(labels, minlength=k)
        empty = (counts == 0).nonzero().squeeze(1)
        if len(empty):
            far = dist.gather(1, labels[:, None]).squeeze(1).topk(len(empty)).indices
            labels[far] = empty
            counts = torch.bincount(labels, minlength=k)
        new = torch.zeros_like(centroids).index_add_(0, labels, x) / counts.clamp_min(1)[:, None]
        new = torch.where(counts[:, None] > 0, new, centroids)
        if torch.equal(new, centroids):
            break
        centroids = new
    return centroids, labels


def cluster_counts(class_counts: list[int], cluster_size: int | None = None) -> list[int]:
    """How many clusters each class gets: ``k_c = max(1, round(n_c / cluster_size))`` (0 for an empty
    class), ``cluster_size`` defaulting to the smallest class's count."""
    cluster_size = cluster_size or min(c for c in class_counts if c > 0)
    return [max(1, round(n / cluster_size)) if n > 0 else 0 for n in class_counts]


def split_classes_into_clusters(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    k_per_class: list[int],
    iters: int = 20,
    init: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    balanced: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split every class by k-means (``balanced``: equal-size k-means) on L2-normalised embeddings.

    Cluster ids are contiguous per class (class 0's clusters first). Returns unit-norm
    centroids [K, d], each clip's cluster id [n], and each cluster's class [K]. ``init``
    (the previous centroids, same layout) warm-starts every class. The embeddings must be finite: the
    caller checks them once (:meth:`~clusterlight.clusters.ClusterAssignments.rebuild` does, with
    :func:`refuse_non_finite`).
    """
    z = normalize_embeddings(embeddings)
    generator = generator or torch.Generator().manual_seed(0)
    centroids, assignments, start = [], torch.empty(len(z), dtype=torch.long, device=z.device), 0
    for c, k in enumerate(k_per_class):
        if k == 0:
            continue
        members = (labels == c).nonzero().squeeze(1)
        warm = init[start : start + k].to(z) if init is not None else None
        cent, lab = _lloyd(z[members], k, iters, warm, generator, balanced)
        centroids.append(cent)
        assignments[members] = lab + start
        start += k
    classes = torch.repeat_interleave(
        torch.arange(len(k_per_class), device=z.device), torch.tensor(k_per_class, device=z.device)
    )
    return normalize_embeddings(torch.cat(centroids)), assignments, classes
