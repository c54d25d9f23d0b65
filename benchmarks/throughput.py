"""Speed figures, each measured side by side in one process (issue: speed and scale).

Prints, on the device it runs on (GPU when present, else CPU):
  1. training clips/s of cluster pretraining vs the class-weighted baseline (same backbone, batch, data)
  2. end-to-end training clips/s from the waveform cache vs pure compute on in-memory tensors
  3. re-clustering time (exact embedding pass + per-class k-means) as a share of epoch time
  4. per-step cost of the centroid loss vs an exhaustive pairwise loss over N stored embeddings
  5. cold-cache (decode) vs warm-cache (memory-mapped) data set-up
Not part of the test suite. Usage: python benchmarks/throughput.py [--backbone lstm] [--steps 30]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback

from clusterlight import AudioDataModule, Classifier, EmbeddingPretrain, LogMel, SyntheticSource, create_backbone
from clusterlight.callbacks.centroids import embed_training_set
from clusterlight.clustering import cluster_per_class, clusters_per_class
from clusterlight.losses import ClusterMarginLoss

CLASSES = ["dog_bark", "baby_cry", "gunshot", "background"]
RATIO = {"dog_bark": 6, "baby_cry": 1, "gunshot": 2, "background": 16}


class StepTimer(Callback):
    """Wall time of training steps after ``warmup`` steps (synchronised on GPU)."""

    def __init__(self, warmup: int = 3) -> None:
        self.warmup, self.times, self.clips, self._t = warmup, [], 0, 0.0

    def _sync(self):
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self._sync()
            self._t = time.perf_counter()
        if trainer.global_step >= self.warmup:
            self.clips += len(batch["label"])

    def on_train_end(self, trainer, pl_module):
        self._sync()
        self.seconds = time.perf_counter() - self._t

    @property
    def clips_per_s(self) -> float:
        return self.clips / self.seconds


def _trainer(steps: int, accelerator: str, callbacks) -> L.Trainer:
    return L.Trainer(
        accelerator=accelerator, devices=1, max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, callbacks=callbacks,
        precision="bf16-mixed" if accelerator == "gpu" else "32-true",
    )


def _parts(backbone: str):
    return LogMel(time_pool=4), create_backbone(backbone)


def train_throughput(dm, backbone, steps, accelerator):
    """Clips/s over ``steps`` steps (several epochs, re-clustering included) for the baseline and pretraining."""
    out = {}
    for name in ("baseline", "exact", "bank"):
        torch.manual_seed(0)
        if name == "baseline":
            model = Classifier(*_parts(backbone), dm.class_names)
        else:
            model = EmbeddingPretrain(*_parts(backbone), dm.class_names, embedding_source=name, plot_embeddings=False)
        timer = StepTimer()
        _trainer(steps, accelerator, [timer]).fit(model, dm)
        out[name] = timer.clips_per_s
    return out


def pure_compute(dm, backbone, steps, accelerator):
    """Front end + backbone + head fwd/bwd/AdamW on one in-memory random batch (no data loading)."""
    device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    model = Classifier(*_parts(backbone), dm.class_names).to(device)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    wave = torch.randn(dm.batch_size, int(dm.sample_rate * dm.duration), device=device)
    label = torch.randint(0, len(dm.class_names), (dm.batch_size,), device=device)
    weights = torch.ones(len(dm.class_names), device=device)
    ctx = torch.autocast("cuda", torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    for i in range(steps + 3):
        if i == 3:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
        with ctx:
            loss = F.cross_entropy(model.head(model.features(wave)).float(), label, weight=weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * dm.batch_size / (time.perf_counter() - t)


def recluster_share(dm, backbone, accelerator, train_clips_per_s):
    model = EmbeddingPretrain(*_parts(backbone), dm.class_names, plot_embeddings=False)
    trainer = _trainer(1, accelerator, [])
    trainer.fit(model, dm)  # attaches the datamodule and device
    n = len(dm.datasets["train"])
    t = time.perf_counter()
    emb = embed_training_set(trainer, model)
    t_embed = time.perf_counter() - t
    labels = dm.train_labels.to(emb.device)
    t = time.perf_counter()
    cluster_per_class(emb, labels, clusters_per_class(torch.bincount(labels).tolist()), 20)
    t_kmeans = time.perf_counter() - t
    epoch = n / train_clips_per_s
    return n, t_embed, t_kmeans, epoch


def loss_cost(n_bank: int, device: torch.device, batch: int = 256, dim: int = 64, clusters: int = 1000) -> tuple[float, float]:
    """Seconds per step: the centroid loss vs distances to all N stored embeddings (+ hardest negative)."""
    z = F.normalize(torch.randn(batch, dim, device=device), dim=1).requires_grad_()
    cents = F.normalize(torch.randn(clusters, dim, device=device), dim=1)
    cls = torch.arange(clusters, device=device) % 4
    cl = torch.randint(0, clusters, (batch,), device=device)
    bank = F.normalize(torch.randn(n_bank, dim, device=device), dim=1)
    bank_labels = torch.randint(0, 4, (n_bank,), device=device)
    loss_fn = ClusterMarginLoss()

    def centroid():
        loss_fn(z, cl, cents, cls).backward()

    def pairwise():
        d = torch.cdist(z, bank).pow(2)
        neg = d.masked_fill(bank_labels[None] == cls[cl][:, None], float("inf")).amin(1)
        pos = d.masked_fill(bank_labels[None] != cls[cl][:, None], 0).amax(1)
        torch.relu(1.0 + pos - neg).mean().backward()

    out = []
    for fn in (centroid, pairwise):
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(5):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        out.append((time.perf_counter() - t) / 5)
    return out[0], out[1]


def cache_setup(source, cache_parent: Path) -> tuple[float, float]:
    cache = Path(tempfile.mkdtemp(dir=cache_parent))
    times = []
    for _ in range(2):
        dm = AudioDataModule(source=source, classes=CLASSES, class_ratio=RATIO, cache_dir=str(cache))
        t = time.perf_counter()
        dm.setup("fit")
        times.append(time.perf_counter() - t)
    shutil.rmtree(cache)
    return times[0], times[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="lstm", choices=["lstm", "cnn"])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--cache_dir", default=".cache")
    p.add_argument("--bank_sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    a = p.parse_args()
    accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    print(f"device: {torch.cuda.get_device_name() if accelerator == 'gpu' else 'cpu'} ({torch.get_num_threads()} threads), backbone {a.backbone}")
    source = SyntheticSource(root=f"{a.cache_dir}/synth")
    dm = AudioDataModule(source=source, classes=CLASSES, class_ratio=RATIO, cache_dir=a.cache_dir, num_workers=2 if accelerator == "gpu" else 0)
    dm.prepare_data()

    tp = train_throughput(dm, a.backbone, a.steps, accelerator)
    print(f"1. training clips/s over {a.steps} steps, re-clustering every epoch included: baseline {tp['baseline']:.0f}, cluster pretraining "
          f"{tp['exact']:.0f} with an exact embedding pass (ratio {tp['exact'] / tp['baseline']:.2f}), {tp['bank']:.0f} with the memory bank "
          f"(ratio {tp['bank'] / tp['baseline']:.2f}; target >= 0.9 on GPU)")
    pure = pure_compute(dm, a.backbone, a.steps, accelerator)
    print(f"2. end-to-end {tp['baseline']:.0f} clips/s vs pure compute {pure:.0f} clips/s on in-memory tensors: ratio {tp['baseline'] / pure:.2f} (target >= 0.8 for the LSTM on GPU)")
    n, t_embed, t_km, epoch = recluster_share(dm, a.backbone, accelerator, tp["baseline"])
    print(f"3. re-clustering at N={n} ({epoch:.1f} s of training per epoch): exact pass {t_embed:.2f} s + k-means {t_km:.3f} s = "
          f"{100 * (t_embed + t_km) / (epoch + t_embed + t_km):.1f}% of an epoch; memory bank (k-means only) {100 * t_km / (epoch + t_km):.2f}% (target <= 5%)")
    for nb in a.bank_sizes:
        c, pw = loss_cost(nb, device)
        print(f"4. per-step loss cost, batch 256, 1000 centroids vs N={nb:,} stored embeddings: centroid {1e3 * c:.2f} ms, pairwise {1e3 * pw:.1f} ms, ratio {pw / c:.0f}x")
    cold, warm = cache_setup(source, Path(a.cache_dir))
    print(f"5. data set-up (first epoch's data cost): cold cache (decode {len(dm.store.clips)} files) {cold:.1f} s, warm cache (memory-map) {warm:.2f} s, ratio {cold / warm:.0f}x")


if __name__ == "__main__":
    main()
