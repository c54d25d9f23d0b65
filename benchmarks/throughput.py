"""Speed and scale figures, each measured side by side in one run.

Prints, on the device it runs on (GPU when present, else CPU), one numbered line (or group of lines) per
figure:
  1. training clips/s of cluster pretraining vs the class-weighted baseline (same backbone, batch, data),
     with an exact re-clustering pass and with the memory bank
  2. end-to-end training clips/s from the waveform cache (memory-mapped, and resident on the device)
     vs pure compute on in-memory tensors
  3. re-clustering time (embedding + k-means) as a share of epoch time at N = 100,000 (features)
  4. per-step cost of the centroid loss vs an exhaustive pairwise loss over N stored embeddings
  5. epoch time and peak memory at N = 10k, 100k, 1M (features; benchmarks/feature_scale.py, one
     process per N)
  6. cold-cache (decode) vs warm-cache (memory-mapped) first epoch, and on CPU the README main
     job's wall time (``--main_job``)
  7. with ``--compile``: baseline clips/s with the backbone compiled (CompileModel) vs eager
  8. opening the waveform cache with ``verify_cache: size`` vs ``full`` (seconds, ratio), and what
     the checksums cost when the cache is written; ``--cache_verify_only`` prints this figure alone
  9. export time (ONNX with the log-mel front end, TorchScript) of the quickstart model (or of
     ``--export_ckpt``), and CPU inference clips/s of PyTorch vs onnxruntime at batch 1 and 64, one
     thread each, side by side in this process (:func:`inference_throughput`); needs the
     ``onnx`` extra; ``--export_only`` prints this figure alone
 10. baseline training epoch time reading the log-mel feature cache (``data.feature_cache``) vs
     computing the log-mel of every batch from waveforms, same data, model and seed, the two
     interleaved; and the one-time cost of building the cache; ``--feature_cache_only`` prints this
     figure alone
Not part of the test suite. Usage: python benchmarks/throughput.py \
[--backbone lstm] [--steps 30] [--main_job] [--compile] [--cache_verify_only] [--export_only] \
[--feature_cache_only]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback

from clusterlight import (
    AudioDataModule,
    Classifier,
    ClusterCentroids,
    CompileModel,
    EmbeddingPretrain,
    LogMel,
    SyntheticSource,
    create_backbone,
)
from clusterlight.data.logmel_cache import load_logmel
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


def _trainer(steps: int, accelerator: str, callbacks, max_epochs: int | None = None) -> L.Trainer:
    return L.Trainer(
        accelerator=accelerator,
        devices=1,
        max_steps=steps,
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=callbacks,
        precision="bf16-mixed" if accelerator == "gpu" else "32-true",
    )


def _parts(backbone: str):
    return LogMel(time_pool=4), create_backbone(backbone)


def train_throughput(dm, backbone, steps, accelerator, names=("baseline", "exact", "bank")):
    """Clips/s over ``steps`` steps (several epochs, re-clustering included) for the baseline and
    pretraining."""
    out = {}
    for name in names:
        torch.manual_seed(0)
        if name in ("baseline", "compiled"):
            model = Classifier(*_parts(backbone), dm.class_names)
        else:
            model = EmbeddingPretrain(
                *_parts(backbone),
                dm.class_names,
                centroids=ClusterCentroids(embedding_source=name),
                plot_embeddings=False,
            )
        timer = StepTimer(
            warmup=8 if name == "compiled" else 3
        )  # compiling (and a recompile for the last batch) before timing
        _trainer(steps, accelerator, [timer, *([CompileModel()] if name == "compiled" else [])]).fit(
            model, dm
        )
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
    ctx = (
        torch.autocast("cuda", torch.bfloat16)
        if device.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
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


def loss_cost(
    n_bank: int, device: torch.device, batch: int = 256, dim: int = 64, clusters: int = 1000
) -> tuple[float, float]:
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


def first_epoch(source, cache_parent: Path, backbone: str, accelerator: str) -> tuple[float, float]:
    """Seconds for data set-up + one baseline training epoch, first with an empty waveform cache
    (every file decoded), then again with the cache just written (memory-mapped)."""
    cache = Path(tempfile.mkdtemp(dir=cache_parent))
    times = []
    for _ in range(2):
        dm = AudioDataModule(source=source, classes=CLASSES, class_ratio=RATIO, cache_dir=str(cache))
        torch.manual_seed(0)
        model = Classifier(*_parts(backbone), dm.class_names)
        t = time.perf_counter()
        _trainer(-1, accelerator, [], max_epochs=1).fit(model, dm)
        times.append(time.perf_counter() - t)
    shutil.rmtree(cache)
    return times[0], times[1]


class EpochTimer(Callback):
    """Wall time of each training epoch."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self._t = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._t)


def feature_cache_epochs(source, cache_dir: str, backbone: str, accelerator: str, rounds: int = 2) -> dict:
    """Figure 10: seconds per baseline training epoch (median of the epochs after the first of each fit)
    with the log-mel feature cache and without (the log-mel of every batch computed from waveforms),
    fits interleaved ``rounds`` times; and seconds to build the cache once from the waveform cache."""
    epochs: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for cached in (False, True):
            dm = AudioDataModule(
                source=source, classes=CLASSES, class_ratio=RATIO, cache_dir=cache_dir, feature_cache=cached
            )
            torch.manual_seed(0)
            model = Classifier(*_parts(backbone), dm.class_names)
            timer = EpochTimer()
            _trainer(-1, accelerator, [timer], max_epochs=3).fit(model, dm)
            epochs[cached] += timer.times[1:]
    with tempfile.TemporaryDirectory() as fresh:
        t = time.perf_counter()
        load_logmel(dm.store, model.frontend, dm.datasets["train"].n_samples, dm.padding, fresh)
        build = time.perf_counter() - t
    median = {k: sorted(v)[len(v) // 2] for k, v in epochs.items()}
    return {
        "cached_s": median[True],
        "waveform_s": median[False],
        "build_s": build,
        "clips": len(dm.datasets["train"]),
        "files": len(dm.store),
    }


def print_feature_cache_epochs(source, cache_dir: str, backbone: str, accelerator: str) -> None:
    r = feature_cache_epochs(source, cache_dir, backbone, accelerator)
    print(
        f"10. baseline epoch ({r['clips']} training clips, {backbone}): from the log-mel feature cache "
        f"{r['cached_s']:.2f} s vs log-mel computed per batch from waveforms {r['waveform_s']:.2f} s: "
        f"ratio {r['waveform_s'] / r['cached_s']:.2f}x faster with the cache; building it once "
        f"({r['files']} files) {r['build_s']:.1f} s",
        flush=True,
    )


def scale_run(n: int, backbone: str, steps: int | None) -> dict:
    """benchmarks/feature_scale.py for one N, in its own process (so its peak memory is its own)."""
    cmd = [
        sys.executable,
        str(Path(__file__).with_name("feature_scale.py")),
        "--n",
        str(n),
        "--backbone",
        backbone,
    ]
    if steps is not None:
        cmd += ["--steps", str(steps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def cache_verify_cost(dm: AudioDataModule, repeats: int = 3) -> dict:
    """Figure 8: seconds to open the data module's waveform cache with each ``verify`` mode (best of
    ``repeats``, page cache warm), and the checksum work its writing adds (every audio file + both
    arrays hashed once)."""
    from clusterlight.data.array_store import file_digest
    from clusterlight.data.audio import load_waveforms

    clips = dm.labelled_clips()
    store = load_waveforms(clips, dm.sample_rate, dm.cache_dir, dm.on_bad_file)  # built if absent
    out = {"files": len(clips), "cache_mib": store.nbytes / 2**20}
    out["audio_mib"] = sum(Path(c.path).stat().st_size for c in clips) / 2**20
    for mode in ("size", "full"):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            load_waveforms(clips, dm.sample_rate, dm.cache_dir, dm.on_bad_file, verify=mode)
            times.append(time.perf_counter() - t)
        out[mode] = min(times)
    folder = store.folder
    t = time.perf_counter()
    for c in clips:
        file_digest(c.path)
    for path in sorted(folder.glob("shard-*/*.npy")):
        file_digest(path)
    out["write_checksums"] = time.perf_counter() - t
    return out


def print_cache_verify_cost(dm: AudioDataModule) -> None:
    r = cache_verify_cost(dm)
    print(
        f"8. opening the waveform cache ({r['files']} files, {r['audio_mib']:.0f} MiB audio, "
        f"{r['cache_mib']:.0f} MiB cache; best of 3, page cache warm): verify_cache size "
        f"{r['size']:.3f} s, full {r['full']:.3f} s (ratio {r['full'] / r['size']:.0f}x vs size); "
        f"checksums added to writing the cache: {r['write_checksums']:.2f} s",
        flush=True,
    )


def quickstart_checkpoint(workdir: Path, cache_dir: str) -> Path:
    """A checkpoint of the quickstart's baseline model (LSTM, 2 s clips at 16 kHz) from ``clusterlight
    fit`` after 3 training steps: export and inference cost depend on the network, not on training."""
    configs = Path(__file__).resolve().parents[1] / "configs"
    cmd = [sys.executable, "-m", "clusterlight", "fit"]
    for name in ("trainer/cpu.yaml", "data/synth.yaml", "model/baseline.yaml", "model/net/lstm.yaml"):
        cmd += ["--config", str(configs / name)]
    cmd += [
        "--data.init_args.source.init_args.root", f"{cache_dir}/synth",
        "--data.init_args.cache_dir", cache_dir,
        "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "3",
        "--trainer.limit_val_batches", "2",
        "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(workdir),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"clusterlight fit failed:\n{done.stderr[-3000:]}")
    return next(workdir.rglob("best-*.ckpt"))


def _clips_per_second(run, seconds: float, batch: int) -> float:
    run()  # warm-up
    run()
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds or n < 3:
        run()
        n += 1
    return n * batch / elapsed


def inference_throughput(
    model,
    onnx_path: str | Path,
    batch_sizes: Sequence[int] = (1, 64),
    seconds: float = 2.0,
    threads: int | None = None,
) -> dict:
    """CPU clips/s of PyTorch (the module, ``inference_mode``) and onnxruntime (the ONNX file, plus
    :func:`numpy_logmel` when the front end is outside it) per batch size, side by side in this
    process after warm-up, each with ``threads`` intra-op threads (default: torch's current count;
    torch's is restored afterwards); and the export time from the sidecar. On a loaded machine
    (other processes on the cores) several threads can be much slower than one, PyTorch's above all."""
    import onnxruntime as ort

    from clusterlight.inference.export import Probabilities, numpy_logmel

    onnx_path = Path(onnx_path)
    info = json.loads(onnx_path.with_name(onnx_path.name + ".json").read_text())
    previous = torch.get_num_threads()
    threads = threads or previous
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    frontend = dict(info["frontend"], sidecar_dir=str(onnx_path.parent))
    wrapper = Probabilities(model, include_frontend=True).eval()
    result = {
        "onnx": str(onnx_path),
        "include_frontend": info["include_frontend"],
        "stft": info.get("stft"),
        "export_seconds": info.get("export_seconds"),
        "threads": threads,
        "clip_seconds": info["duration"],
        "batches": {},
    }
    rng = np.random.default_rng(0)
    torch.set_num_threads(threads)
    try:
        for batch in batch_sizes:
            wave = (0.1 * rng.standard_normal((batch, info["samples"]))).astype(np.float32)
            tensor = torch.from_numpy(wave)

            def torch_run(tensor=tensor):
                with torch.inference_mode():
                    return wrapper(tensor)

            def ort_run(wave=wave):
                x = wave if info["include_frontend"] else numpy_logmel(wave, frontend)
                return session.run(None, {info["input"]["name"]: x})[0]

            torch_rate = _clips_per_second(torch_run, seconds, batch)
            ort_rate = _clips_per_second(ort_run, seconds, batch)
            result["batches"][batch] = {
                "torch_clips_per_s": round(torch_rate, 1),
                "onnxruntime_clips_per_s": round(ort_rate, 1),
                "speedup": round(ort_rate / torch_rate, 2),
            }
    finally:
        torch.set_num_threads(previous)
    return result


def export_timings(ckpt: Path, workdir: Path, seconds: float = 3.0) -> dict:
    """Figure 9: wall time of each export call (the ONNX one includes checking onnxruntime against
    PyTorch) and of the export alone (as the sidecar records it), then clips/s at batch 1 and 64."""
    from clusterlight.inference.export import export_onnx, export_torchscript
    from clusterlight.inference.loading import load

    model = load(ckpt)
    out = {}
    for fmt, export, name in (
        ("onnx", export_onnx, "model.onnx"),
        ("torchscript", export_torchscript, "model.pt"),
    ):
        t = time.perf_counter()
        path = export(model, workdir / name)
        out[fmt] = {
            "call_s": time.perf_counter() - t,
            "export_s": json.loads(path.with_name(path.name + ".json").read_text())["export_seconds"],
        }
    out["throughput"] = inference_throughput(model, workdir / "model.onnx", (1, 64), seconds, threads=1)
    return out


def print_export_timings(ckpt: str | None, cache_dir: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(ckpt) if ckpt else quickstart_checkpoint(Path(tmp) / "fit", cache_dir)
        r = export_timings(path, Path(tmp))
    onnx, ts, tp = r["onnx"], r["torchscript"], r["throughput"]
    which = ckpt or "the quickstart baseline model (LSTM 2x128, 2 s clips at 16 kHz, 3 training steps)"
    print(
        f"9. export of {which}: ONNX with the log-mel front end (STFT as {tp['stft']}) "
        f"{onnx['export_s']:.2f} s ({onnx['call_s']:.2f} s with the onnxruntime check), TorchScript "
        f"{ts['export_s']:.2f} s; CPU inference, 1 thread, side by side:",
        flush=True,
    )
    for batch, b in tp["batches"].items():
        print(
            f"   batch {batch:>2}: PyTorch {b['torch_clips_per_s']:.1f} clips/s, onnxruntime "
            f"{b['onnxruntime_clips_per_s']:.1f} clips/s (ratio {b['speedup']:.2f}x)",
            flush=True,
        )


def main_job_wall_time() -> float:
    """The README's main job (``clusterlight experiment`` on quickstart.yaml) in an empty folder, so
    the synthetic data, the cache and every run are made from nothing, as on a fresh clone."""
    exp = Path(__file__).resolve().parents[1] / "configs" / "experiment" / "quickstart.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "clusterlight",
            "experiment",
            "--config",
            str(exp),
            "--output_dir",
            "runs",
        ]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=tmp, capture_output=True)
        return time.perf_counter() - t


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="lstm", choices=["lstm", "cnn"])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--cache_dir", default=".cache")
    p.add_argument("--bank_sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--scale_sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument(
        "--scale_steps",
        type=int,
        default=None,
        help="timed steps per N (default: whole epochs on GPU, 30 on CPU)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="also time the baseline with torch.compile (CompileModel) against eager",
    )
    p.add_argument(
        "--cache_verify_only",
        action="store_true",
        help="print only figure 8 (the cost of opening the waveform cache with verify_cache size vs full)",
    )
    p.add_argument(
        "--export_only",
        action="store_true",
        help="print only figure 9 (export time, PyTorch vs onnxruntime clips/s)",
    )
    p.add_argument(
        "--feature_cache_only",
        action="store_true",
        help="print only figure 10 (epoch time with the log-mel feature cache vs without)",
    )
    p.add_argument(
        "--export_ckpt",
        default=None,
        help="figure 9's checkpoint (default: the quickstart model after 3 training steps)",
    )
    p.add_argument(
        "--main_job",
        action="store_true",
        help="also time the README main job from scratch (about 3 min on a 2-core CPU)",
    )
    return p


def print_training_figures(dm, source, a, accelerator: str) -> dict:
    """Figures 1 and 2; returns the training clips/s by name."""
    tp = train_throughput(dm, a.backbone, a.steps, accelerator)
    print(
        f"1. training clips/s over {a.steps} steps, re-clustering every epoch included: "
        f"baseline {tp['baseline']:.0f}, cluster pretraining "
        f"{tp['exact']:.0f} with an exact embedding pass (ratio {tp['exact'] / tp['baseline']:.2f}), "
        f"{tp['bank']:.0f} with the memory bank "
        f"(ratio {tp['bank'] / tp['baseline']:.2f})",
        flush=True,
    )
    resident = AudioDataModule(
        source=source, classes=CLASSES, class_ratio=RATIO, cache_dir=a.cache_dir, waveforms_on_device=True
    )
    tp["resident"] = train_throughput(resident, a.backbone, a.steps, accelerator, names=("baseline",))[
        "baseline"
    ]
    pure = pure_compute(dm, a.backbone, a.steps, accelerator)
    print(
        f"2. end-to-end baseline training vs pure compute {pure:.0f} clips/s on in-memory tensors: "
        f"from the memory-mapped cache "
        f"{tp['baseline']:.0f} clips/s (ratio {tp['baseline'] / pure:.2f}), "
        f"waveforms resident on the device {tp['resident']:.0f} clips/s "
        f"(ratio {tp['resident'] / pure:.2f})",
        flush=True,
    )
    return tp


def print_scale_figures(a, device) -> None:
    """Figures 3, 4 and 5."""
    scale = {n: scale_run(n, a.backbone, a.scale_steps) for n in sorted(set(a.scale_sizes) | {100_000})}
    r = scale[100_000]
    how = (
        f"epoch time from {r['timed_steps']} timed steps x {r['epoch_steps']}"
        if r["estimated"]
        else "a whole epoch timed"
    )
    exact_share = (
        100 * (r["exact_pass_s"] + r["kmeans_s"]) / (r["epoch_s"] + r["exact_pass_s"] + r["kmeans_s"])
    )
    print(
        f"3. re-clustering at N=100,000 ({r['clusters']} clusters; epoch {r['epoch_s']:.1f} s, {how}): "
        f"memory bank (k-means only) "
        f"{r['kmeans_s']:.2f} s = {100 * r['kmeans_s'] / (r['epoch_s'] + r['kmeans_s']):.2f}% of an epoch; "
        f"exact pass "
        f"{r['exact_pass_s']:.1f} s + k-means = {exact_share:.1f}%",
        flush=True,
    )
    for nb in a.bank_sizes:
        c, pw = loss_cost(nb, device)
        print(
            f"4. per-step loss cost, batch 256, 1000 centroids vs N={nb:,} stored embeddings: "
            f"centroid {1e3 * c:.2f} ms, pairwise {1e3 * pw:.1f} ms, "
            f"ratio {pw / c:.0f}x",
            flush=True,
        )
    smallest = scale[min(a.scale_sizes)]
    for n in sorted(a.scale_sizes):
        r = scale[n]
        grow = n / smallest["n"]
        basis = (
            "estimated from " + str(r["timed_steps"]) + " timed steps" if r["estimated"] else "whole epoch"
        )
        print(
            f"5. N={n:>9,}: epoch {r['epoch_s']:8.1f} s "
            f"({r['epoch_s'] / smallest['epoch_s']:6.1f}x for {grow:.0f}x the clips; "
            f"{basis}), "
            f"step {r['step_ms']:.0f} ms, "
            f"k-means {r['kmeans_s']:.2f} s, peak anonymous memory {r['anon_peak_mib']:.0f} MiB "
            f"({r['anon_peak_mib'] / smallest['anon_peak_mib']:.1f}x), "
            f"peak {r['peak_mib']:.0f} MiB ({r['peak_kind']}); feature file {r['feature_file_gib']:.1f} GiB",
            flush=True,
        )


def print_first_epoch(dm, source, a, accelerator: str) -> None:
    """Figure 6 (and the main job's wall time with ``--main_job``)."""
    cold, warm = first_epoch(source, Path(a.cache_dir), a.backbone, accelerator)
    print(
        f"6. first epoch (data set-up + one baseline epoch, {len(dm.store.clips)} files): "
        f"cold cache (decode) {cold:.1f} s, "
        f"warm cache (memory-map) {warm:.1f} s, ratio {cold / warm:.1f}x",
        flush=True,
    )
    if a.main_job:
        print(
            f"6. README main job (clusterlight experiment, quickstart.yaml, from an empty folder): "
            f"{main_job_wall_time() / 60:.1f} min",
            flush=True,
        )


def print_compiled(dm, a, accelerator: str, baseline: float) -> None:
    """Figure 7."""
    compiled = train_throughput(dm, a.backbone, a.steps + 5, accelerator, names=("compiled",))["compiled"]
    print(
        f"7. baseline with the backbone compiled (torch.compile, after 8 untimed steps) "
        f"{compiled:.0f} clips/s vs eager "
        f"{baseline:.0f} clips/s: ratio {compiled / baseline:.2f}",
        flush=True,
    )


def main() -> None:
    a = _parser().parse_args()
    if a.export_only:
        print(f"device: cpu ({torch.get_num_threads()} threads available; figure 9 uses 1)", flush=True)
        print_export_timings(a.export_ckpt, a.cache_dir)
        return
    accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    print(
        f"device: {torch.cuda.get_device_name() if accelerator == 'gpu' else 'cpu'} "
        f"({torch.get_num_threads()} threads), backbone {a.backbone}",
        flush=True,
    )
    source = SyntheticSource(root=f"{a.cache_dir}/synth")
    dm = AudioDataModule(
        source=source,
        classes=CLASSES,
        class_ratio=RATIO,
        cache_dir=a.cache_dir,
        num_workers=2 if accelerator == "gpu" else 0,
    )
    dm.prepare_data()
    if a.cache_verify_only:
        print_cache_verify_cost(dm)
        return
    if a.feature_cache_only:
        print_feature_cache_epochs(source, a.cache_dir, a.backbone, accelerator)
        return

    tp = print_training_figures(dm, source, a, accelerator)
    print_scale_figures(a, device)
    print_first_epoch(dm, source, a, accelerator)
    if a.compile:
        print_compiled(dm, a, accelerator, tp["baseline"])
    print_cache_verify_cost(dm)
    print_export_timings(a.export_ckpt, a.cache_dir)
    print_feature_cache_epochs(source, a.cache_dir, a.backbone, accelerator)


if __name__ == "__main__":
    main()
