"""Epoch time, re-clustering time and peak memory of cluster pretraining at a given N (speed and scale).

One run = one N, in its own process so that its peak memory is its own. Training reads
log-mel features [N, n_mels, frames] (random, float16) from a memory-mapped file, the way a
feature cache would serve them, and runs the method's step: backbone, ClusterMarginLoss
against the centroids, AdamW, then the library's own ``ClusterCentroids.update`` (EMA centroid
step and memory-bank write) on the library's ``ClusterAssignments``. At the end of the epoch
the classes are re-clustered by ``ClusterAssignments.rebuild``: from the bank (k-means only)
and, for comparison, with an exact embedding pass.

With ``--steps`` below an epoch's N / batch steps (the default on CPU, where an epoch at
N = 1M takes hours), the epoch time is the mean timed step times N / batch, and the exact
pass is its timed batches scaled the same way; k-means always runs on all N embeddings.
Prints one JSON line. Used by ``throughput.py``; runnable alone:

    python benchmarks/feature_scale.py --n 100000 --steps 30
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from clusterlight.callbacks.centroids import ClusterCentroids
from clusterlight.clusters import ClusterAssignments
from clusterlight.distances import normalize_embeddings
from clusterlight.losses import ClusterMarginLoss
from clusterlight.nets import create_backbone

RATIO = [6, 1, 2, 16]  # dog_bark : baby_cry : gunshot : background


def write_features(path: Path, n: int, n_mels: int, frames: int, chunk: int = 8192) -> np.memmap:
    """A float16 feature file of ``n`` random clips, memory-mapped read-only.

    Written in chunks with plain file writes (not sparse, so reads cost what real reads cost;
    not through a writable map, so the written pages never count in this process's memory).
    """
    g = torch.Generator().manual_seed(0)
    with open(path, "wb") as f:
        for start in range(0, n, chunk):
            f.write(torch.randn(min(chunk, n - start), n_mels, frames, generator=g).half().numpy().tobytes())
    return np.memmap(path, dtype=np.float16, mode="r", shape=(n, n_mels, frames))


def ratio_labels(n: int) -> torch.Tensor:
    counts = [math.floor(n * r / sum(RATIO)) for r in RATIO]
    counts[-1] += n - sum(counts)
    return torch.repeat_interleave(torch.arange(len(RATIO)), torch.tensor(counts))


class Timer:
    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self):
        self._sync()
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self._sync()
        self.seconds = time.perf_counter() - self.t

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


class AnonPeak:
    """Peak anonymous (heap) memory of this process, sampled from /proc every 20 ms while active.

    The process's peak RSS also counts pages of the memory-mapped feature file that reads
    touched (the kernel maps whole read-around windows), which are page cache, not memory the
    run needs; anonymous memory is what grows with the bank, the k-means and the model.
    """

    def __init__(self) -> None:
        self.peak_mib, self._stop = 0.0, threading.Event()

    @staticmethod
    def now_mib() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_mib = max(self.peak_mib, self.now_mib())

    def __enter__(self):
        self.peak_mib = self.now_mib()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, self.now_mib())


def measure(n: int, backbone: str, batch: int, steps: int | None, folder: Path, device: torch.device) -> dict:
    n_mels, frames = 64, 101  # 4 s at 16 kHz, hop 10 ms, averaged 4x in time: the LSTM configs' input
    t_write = time.perf_counter()
    feats = write_features(folder / f"features-{n}.f16", n, n_mels, frames)
    t_write = time.perf_counter() - t_write
    with AnonPeak() as anon:
        result = _train_and_recluster(feats, n, backbone, batch, steps, device, n_mels, frames)
    result.update(anon_peak_mib=anon.peak_mib, feature_file_gib=feats.nbytes / 2**30, write_s=t_write)
    return result


def _train_and_recluster(
    feats: np.memmap,
    n: int,
    backbone: str,
    batch: int,
    steps: int | None,
    device: torch.device,
    n_mels: int,
    frames: int,
) -> dict:
    labels = ratio_labels(n).to(device)
    names = [str(c) for c in range(len(RATIO))]
    torch.manual_seed(0)
    net = create_backbone(backbone, n_mels=n_mels).to(device)
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    loss_fn = ClusterMarginLoss()
    # the library's cluster state and centroid callback, driven by hand: first clusters from random embeddings
    clusters = ClusterAssignments(kmeans_iters=5)
    clusters.set_training_clips(labels, names)
    tracker = ClusterCentroids(momentum=0.9, embedding_source="bank")
    tracker.clusters = clusters
    start = normalize_embeddings(torch.randn(n, net.embed_dim, device=device))
    tracker.reset(clusters.rebuild(start, None, epoch=0)[0], n)
    del start
    amp = (
        torch.autocast("cuda", torch.bfloat16)
        if device.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )

    def load(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.sort(idx.numpy())
        x = torch.from_numpy(np.ascontiguousarray(feats[rows]))
        x = x.pin_memory() if device.type == "cuda" else x
        return x.to(device, non_blocking=True).float(), torch.from_numpy(rows).to(device)

    def train_step(idx: torch.Tensor) -> None:
        x, rows = load(idx)
        with amp:
            z = normalize_embeddings(net(x))
        ids = clusters.lookup(rows)
        loss = loss_fn(z, ids, tracker.centroids, tracker.cluster_classes)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tracker.update(z.detach(), ids, rows)  # EMA step and memory-bank write, as in training

    order = torch.randperm(n).split(batch)
    total_steps = len(order)
    timed = min(steps or total_steps, total_steps - 3)
    net.train()
    for idx in order[:3]:  # warm-up, not timed
        train_step(idx)
    with Timer(device) as train:
        for idx in order[3 : 3 + timed]:
            train_step(idx)
    epoch_s = train.seconds / timed * total_steps

    net.eval()
    with torch.no_grad(), Timer(device) as embed:
        for idx in order[:timed]:
            x, _ = load(idx)
            with amp:
                net(x)
    exact_pass_s = embed.seconds / timed * total_steps
    unseen = tracker.bank_count == 0  # on CPU only part of the epoch ran: fill the rest as if seen
    tracker.bank[unseen] = normalize_embeddings(torch.randn(int(unseen.sum()), net.embed_dim, device=device))
    tracker.bank_count[unseen] = 1
    clusters.kmeans_iters = 20
    with Timer(device) as km:
        clusters.rebuild(tracker.bank_embeddings(), tracker.centroids, epoch=1)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        peak_kind = "GPU max_memory_allocated"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak_kind = "process peak RSS, feature-file pages mapped by reads included"
    return {
        "n": n,
        "backbone": backbone,
        "batch": batch,
        "device": str(device),
        "clusters": len(tracker.centroids),
        "timed_steps": timed,
        "epoch_steps": total_steps,
        "estimated": timed < total_steps,
        "epoch_s": epoch_s,
        "step_ms": 1e3 * train.seconds / timed,
        "exact_pass_s": exact_pass_s,
        "kmeans_s": km.seconds,
        "peak_mib": peak,
        "peak_kind": peak_kind,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--backbone", default="lstm", choices=["lstm", "cnn"])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument(
        "--steps", type=int, default=None, help="timed steps (default: a whole epoch on GPU, 30 on CPU)"
    )
    p.add_argument(
        "--dir", default=None, help="where the feature file goes (default: a temporary folder, removed after)"
    )
    a = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    steps = a.steps if a.steps is not None else (None if device.type == "cuda" else 30)
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        print(json.dumps(measure(a.n, a.backbone, a.batch, steps, Path(tmp), device)))


if __name__ == "__main__":
    main()
