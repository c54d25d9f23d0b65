"""Fault matrix: inject each fault into a tiny run and report what the code does about it.

Prints a Markdown table (fault | outcome | lost) and the FiniteGuard's overhead. Outcomes: "clear error"
(the run stops, the message names what and where), "counted skip", "recovered", "resumed", "warned",
"accepted silently". "lost" is "yes" when something was silently wrong or gone: a checkpoint or result
overwritten or missing, code from a file run, a fault that reached training unannounced.

Rows (``--fast``: the first six and the overhead; the full run adds the rest):
  NaN run through the CLI (learning rate spiked to 1e9 after epoch 0), NaN batches with
  ``FiniteGuard(on_nonfinite="skip")``, a crafted unsafe checkpoint as ``pretrained_checkpoint``,
  a non-checkpoint file as ``pretrained_checkpoint``, a backbone-shape mismatch, a pretrained
  checkpoint with NaN weights; an unsafe checkpoint as ``--ckpt_path`` (Lightning's own loader),
  SIGKILL mid-fit then ``fit --ckpt_path last`` (bit-identical to an uninterrupted run), SIGKILL
  mid-experiment then a rerun (finished runs reused, same results), and the data faults through
  ``AudioDataModule(...).setup()``: a truncated or byte-flipped waveform cache, a duplicated manifest
  row, a path outside the dataset root, a truncated WAV, an all-zero clip.

Not part of the test suite (``tests/test_run_faults.py`` runs ``--fast``). Usage:
  python benchmarks/faults.py [--fast] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.pytorch import Callback

from clusterlight.features import frontend_input

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
CONFIGS = ROOT / "configs"
CLASSES = ["dog_bark", "baby_cry", "gunshot", "background"]
TINY_COUNTS = {
    "train": {"dog_bark": 24, "baby_cry": 24, "gunshot": 24, "background": 48},
    "val": {"dog_bark": 6, "baby_cry": 6, "gunshot": 6, "background": 12},
    "test": {"dog_bark": 6, "baby_cry": 6, "gunshot": 6, "background": 12},
}
STEPS_PER_EPOCH = 8  # 120 training clips, batch 16


# --- fault injection (importable by the CLI runs as ``faults.<name>``: PYTHONPATH=benchmarks) --------


class NaNBatch(Callback):
    """Puts a NaN into the training batch's front-end input (waveforms or cached log-mel) at the given
    global steps."""

    def __init__(self, steps: list[int] = (3,)) -> None:
        self.steps = set(steps)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step in self.steps:
            frontend_input(batch)[0, :100] = float("nan")


class LrSpike(Callback):
    """Sets every learning rate to ``lr`` from training epoch ``epoch`` on: the run diverges."""

    def __init__(self, epoch: int = 1, lr: float = 1e9) -> None:
        self.epoch, self.lr = epoch, lr

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch >= self.epoch:
            for optimizer in trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = self.lr


class CreatesAFile:
    """Unpickling this object would create ``path``: a stand-in for any code a pickle can run."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


# --- helpers ---------------------------------------------------------------------------------------


@dataclass
class Row:
    fault: str
    outcome: str
    lost: bool


def short(text: str, n: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def error_line(stderr: str, names=("NonFiniteError", "CheckpointError", "Error:")) -> str:
    """The last line of a traceback that names an exception."""
    lines = [ln for ln in stderr.splitlines() if any(n in ln for n in names) and not ln.startswith(" ")]
    line = lines[-1] if lines else stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return line.replace("clusterlight.callbacks.finite_guard.", "")


def write_yaml(path: Path, cfg: dict) -> str:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def data_config(work: Path) -> dict:
    return {
        "data": {
            "class_path": "clusterlight.data.AudioDataModule",
            "init_args": {
                "source": {
                    "class_path": "clusterlight.data.SyntheticSource",
                    "init_args": {
                        "root": str(work / "synth"),
                        "counts": TINY_COUNTS,
                        "sample_rate": 8000,
                        "duration": 1.0,
                        "snr_db": [6.0, 12.0],
                    },
                },
                "classes": CLASSES,
                "sample_rate": 8000,
                "duration": 1.0,
                "batch_size": 16,
                "cache_dir": str(work / "cache"),
            },
        }
    }


def fit_args(work: Path, root: Path, stage: str = "baseline", callbacks=(), epochs: int = 3) -> list[str]:
    configs = [
        write_yaml(work / "data.yaml", data_config(work)),
        str(CONFIGS / f"model/{stage}.yaml"),
        str(CONFIGS / "model/net/lstm.yaml"),
    ]
    if callbacks:
        configs.append(
            write_yaml(root.with_suffix(".callbacks.yaml"), {"trainer": {"callbacks": list(callbacks)}})
        )
    args = ["fit", "--config", str(CONFIGS / "trainer/cpu.yaml")]
    for c in configs:
        args += ["--config", c]
    return args + [
        "--model.init_args.backbone.init_args.hidden", "32",
        "--model.init_args.frontend.init_args.sample_rate", "8000",
        "--trainer.max_epochs", str(epochs),
        "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(root),
        "--seed_everything", "0",
    ]  # fmt: skip


def env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH), os.environ.get("PYTHONPATH", "")])}


def cli(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "clusterlight", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env(), cwd=ROOT)


def checkpoints(root: Path) -> Path:
    return root / "lightning_logs/version_0/checkpoints"


def finite_state(path: Path) -> bool:
    state = torch.load(path, weights_only=True)["state_dict"]
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


def tiny_parts(embed_dim: int = 16):
    from clusterlight.features import LogMel
    from clusterlight.nets import LSTMEmbedder

    frontend = LogMel(sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=32, time_pool=4)
    return frontend, LSTMEmbedder(n_mels=32, hidden=32, layers=1, embed_dim=embed_dim, dropout=0.0)


# --- run faults --------------------------------------------------------------------------------------


def nan_run(work: Path) -> Row:
    root = work / "nan_run"
    spike = {"class_path": "faults.LrSpike", "init_args": {"epoch": 1, "lr": 1.0e9}}
    done = cli(fit_args(work, root, callbacks=[spike]))
    folder = checkpoints(root)
    files = sorted(p.name for p in folder.glob("*.ckpt"))
    last = folder / "last.ckpt"
    intact = last.is_file() and torch.load(last, weights_only=True)["epoch"] == 0 and finite_state(last)
    err = error_line(done.stderr)
    named = f"the last good checkpoint is {last}" in err
    outcome = (
        f"clear error, exit {done.returncode}: {short(err.split('; the gradient')[0], 110)} (+ the "
        f"parameters, the last good checkpoint); checkpoints {files}, last.ckpt = epoch 0, finite"
        if done.returncode != 0 and "NonFiniteError" in err and intact and named
        else f"exit {done.returncode}; {short(err)}; checkpoints {files}, last.ckpt intact: {intact}"
    )
    lost = not (done.returncode != 0 and intact and named and files == ["best-epoch=000.ckpt", "last.ckpt"])
    return Row("NaN run (CLI fit, lr 1e9 from epoch 1)", outcome, lost)


def nan_skip(work: Path) -> Row:
    root = work / "nan_skip"
    guard = {"class_path": "clusterlight.FiniteGuard", "init_args": {"on_nonfinite": "skip"}}
    nan = {"class_path": "faults.NaNBatch", "init_args": {"steps": [3, 11]}}
    done = cli(fit_args(work, root, callbacks=[guard, nan]))
    last = checkpoints(root) / "last.ckpt"
    ok = done.returncode == 0 and last.is_file()
    state = torch.load(last, weights_only=True) if ok else {}
    skipped = next((v for k, v in state.get("callbacks", {}).items() if k.startswith("FiniteGuard")), {})
    warned = "FiniteGuard skipped 2 optimizer step(s)" in done.stderr
    good = ok and state["epoch"] == 2 and finite_state(last) and skipped.get("skipped_steps") == 2 and warned
    outcome = (
        "counted skip: 2 of 24 steps skipped (train/skipped_steps, end-of-fit warning), fit finished, "
        "weights finite"
        if good
        else f"exit {done.returncode}; {short(error_line(done.stderr))}; skipped {skipped}"
    )
    return Row("NaN batches at steps 3 and 11, FiniteGuard(on_nonfinite='skip')", outcome, not good)


def _pretrained(work: Path) -> tuple[list[str], Path]:
    from clusterlight import EmbeddingPretrain

    path = work / "pretrained.ckpt"
    model = EmbeddingPretrain(*tiny_parts(), CLASSES, plot_embeddings=False)
    torch.save({"state_dict": model.state_dict()}, path)
    return CLASSES, path


def _finetune_error(path: Path, embed_dim: int = 16) -> str | None:
    from clusterlight import JointFinetune

    try:
        JointFinetune(*tiny_parts(embed_dim), CLASSES, pretrained_checkpoint=str(path))
    except Exception as e:  # what a user sees
        return f"{type(e).__name__}: {e}"
    return None


def unsafe_pretrained(work: Path) -> Row:
    created = work / "created-by-unpickling"
    path = work / "unsafe.ckpt"
    _, good = _pretrained(work)
    state = torch.load(good, weights_only=True)
    torch.save({**state, "extra": CreatesAFile(created)}, path)
    err = _finetune_error(path)
    ran = created.exists()
    clear = err is not None and "outside the allow-list" in err and "not loaded" in err
    outcome = f"clear error: {short(err, 150)}" if clear and not ran else f"error {err}; code ran: {ran}"
    return Row(
        "crafted unsafe checkpoint (pickle opens a file) as pretrained_checkpoint", outcome, ran or not clear
    )


def not_a_checkpoint(work: Path) -> Row:
    path = work / "notes.ckpt"
    path.write_bytes(b"these are my notes, not a checkpoint\n" * 10)
    err = _finetune_error(path)
    clear = err is not None and "is not a PyTorch checkpoint" in err and str(path) in err
    return Row("a text file as pretrained_checkpoint", f"clear error: {short(err, 150)}", not clear)


def shape_mismatch(work: Path) -> Row:
    _, path = _pretrained(work)
    err = _finetune_error(path, embed_dim=24)
    clear = err is not None and "checkpoint (16, 64), this model (24, 64)" in err
    return Row("backbone of another shape (embed_dim 16 vs 24)", f"clear error: {short(err, 170)}", not clear)


def nan_pretrained(work: Path) -> Row:
    _, path = _pretrained(work)
    state = torch.load(path, weights_only=True)
    state["state_dict"]["backbone.lstm.weight_ih_l0"][0, 0] = float("nan")
    bad = work / "diverged.ckpt"
    torch.save(state, bad)
    err = _finetune_error(bad)
    clear = err is not None and "non-finite" in err and "backbone.lstm.weight_ih_l0" in err
    return Row("pretrained checkpoint with a NaN weight", f"clear error: {short(err, 150)}", not clear)


def unsafe_ckpt_path(work: Path) -> Row:
    created = work / "created-by-ckpt-path"
    path = work / "unsafe-test.ckpt"
    torch.save({"state_dict": {}, "extra": CreatesAFile(created)}, path)
    done = cli(["test", *fit_args(work, work / "unsafe_test")[1:], "--ckpt_path", str(path)])
    ran = created.exists()
    err = error_line(done.stderr, ("Error", "error"))
    outcome = f"clear error (Lightning's loader, weights_only), exit {done.returncode}: {short(err, 120)}"
    return Row("crafted unsafe checkpoint as test --ckpt_path", outcome, ran or done.returncode == 0)


def sigkill_fit(work: Path) -> Row:
    whole, killed = work / "fit_whole", work / "fit_killed"
    args = fit_args(work, whole, stage="pretrain", epochs=4)
    cli(args)
    cmd = [sys.executable, "-m", "clusterlight", *fit_args(work, killed, stage="pretrain", epochs=4)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(), cwd=ROOT)
    last = checkpoints(killed) / "last.ckpt"
    deadline = time.time() + 300
    while not last.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at = torch.load(last, weights_only=True)["epoch"] if last.is_file() else None
    resumed = cli([*fit_args(work, killed, stage="pretrain", epochs=4), "--ckpt_path", "last"])
    a = torch.load(checkpoints(whole) / "last.ckpt", weights_only=True)
    b = torch.load(last, weights_only=True) if last.is_file() else {"state_dict": {}, "epoch": None}
    same = a["epoch"] == b["epoch"] == 3 and all(
        torch.equal(v, b["state_dict"].get(k)) for k, v in a["state_dict"].items()
    )
    ok = resumed.returncode == 0 and same and at is not None and at < 3
    outcome = (
        f"resumed: killed after epoch {at}, fit --ckpt_path last ends bit-identical to the uninterrupted run"
        if ok
        else f"killed at epoch {at}; resume exit {resumed.returncode}; identical: {same}"
    )
    return Row("SIGKILL mid-fit, then fit --ckpt_path last", outcome, not ok)


def _experiment(work: Path) -> str:
    common = [
        str(CONFIGS / "trainer/cpu.yaml"),
        str(CONFIGS / "logger/csv.yaml"),
        write_yaml(work / "data.yaml", data_config(work)),
    ]
    lstm = str(CONFIGS / "model/net/lstm.yaml")
    exp = {
        "name": "faults",
        "seeds": [0],
        "common": common,
        "overrides": {
            "trainer": {"max_epochs": 2},
            "model": {
                "init_args": {
                    "frontend": {"init_args": {"sample_rate": 8000}},
                    "backbone": {"init_args": {"hidden": 32, "layers": 1}},
                }
            },
        },
        "methods": {
            "baseline": {
                "stages": [{"name": "fit", "configs": [str(CONFIGS / "model/baseline.yaml"), lstm]}]
            },
            "clustered": {
                "stages": [
                    {"name": "pretrain", "configs": [str(CONFIGS / "model/pretrain.yaml"), lstm]},
                    {
                        "name": "finetune",
                        "configs": [str(CONFIGS / "model/finetune.yaml"), lstm],
                        "init_from": "pretrain",
                    },
                ]
            },
        },
    }
    return write_yaml(work / "experiment.yaml", exp)


def _runs(out: Path) -> dict:
    runs = json.loads((out / "results.json").read_text())["runs"]
    return {
        m: {s: {k: v for k, v in r.items() if k != "wall_s"} for s, r in per.items()}
        for m, per in runs.items()
    }


def sigkill_experiment(work: Path) -> Row:
    exp = _experiment(work)
    whole, killed = work / "exp_whole", work / "exp_killed"
    cli(["experiment", "--config", exp, "--output_dir", str(whole)])
    cmd = [sys.executable, "-m", "clusterlight", "experiment", "--config", exp, "--output_dir", str(killed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(), cwd=ROOT)
    first = killed / "seed0/baseline/result.json"
    deadline = time.time() + 300
    while not first.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(2.0)  # into the clustered run
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished_before = (killed / "seed0/clustered/result.json").is_file()
    rerun = cli(["experiment", "--config", exp, "--output_dir", str(killed)])
    reused = "baseline: reusing the finished run" in rerun.stdout
    same = rerun.returncode == 0 and _runs(whole) == _runs(killed)
    ok = reused and same and not finished_before
    outcome = (
        "resumed: the rerun reused the finished baseline run, trained the killed one; results identical"
        if ok
        else f"rerun exit {rerun.returncode}; reused: {reused}; identical: {same}; "
        f"killed too late: {finished_before}"
    )
    return Row("SIGKILL mid-experiment, then the same command again", outcome, not ok)


# --- data faults, through AudioDataModule(...).setup() ----------------------------------------------------


def _tones(folder: Path, n_per: int = 4) -> list[list[str]]:
    import numpy as np
    import soundfile as sf

    rows = []
    for split in ("train", "val", "test"):
        for label, freq in (("a", 300.0), ("b", 900.0)):
            for i in range(n_per):
                name = f"{split}_{label}_{i}.wav"
                t = np.arange(4000) / 8000
                sf.write(folder / name, 0.3 * np.sin(2 * np.pi * (freq + 37 * i) * t), 8000)
                rows.append([name, label, split])
    return rows


def _manifest(folder: Path, rows: list[list[str]]) -> None:
    with (folder / "manifest.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        w.writerows(rows)


def _datamodule(folder: Path, cache: Path, **kwargs):
    from clusterlight.data import AudioDataModule, ManifestSource

    return AudioDataModule(
        source=ManifestSource(root=str(folder)), classes=["a", "b"], sample_rate=8000, duration=0.5,
        batch_size=4, cache_dir=str(cache), **kwargs,
    )  # fmt: skip


def _setup(dm) -> tuple[Exception | None, list[str]]:
    """``dm.setup("fit")``: the exception it raised (or None) and the warnings it gave (both channels)."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Keep(level=logging.WARNING)
    logging.getLogger().addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                dm.setup("fit")
                error = None
            except Exception as e:
                error = e
    finally:
        logging.getLogger().removeHandler(handler)
    found = records + [str(w.message) for w in caught if "treespec" not in str(w.message)]
    return error, found


def _waves(dm) -> list:
    return [
        dm.datasets[s][i]["wave"].clone()
        for s in ("train", "val", "test")
        for i in range(len(dm.datasets[s]))
    ]


def _outcome(error, said) -> str:
    if error is not None:
        return f"clear error: {type(error).__name__}: {short(error, 140)}"
    if said:
        return f"warned: {short(said[0], 150)}"
    return "accepted silently"


def data_case(work: Path, name: str) -> Path:
    folder = work / "data" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def cache_fault(work: Path, how: str, verify: str = "size") -> Row:
    import numpy as np

    from clusterlight.data.shard_build import shard_name

    folder = data_case(work, f"cache_{how}_{verify}")
    _manifest(folder, _tones(folder))
    cache = folder / "cache"
    first = _datamodule(folder, cache)
    first.setup("fit")
    reference = _waves(first)
    (waves,) = cache.glob(f"waves-*/{shard_name(0)}/waves.npy")  # the first shard's waveforms
    data = bytearray(waves.read_bytes())
    if how == "truncated":
        waves.write_bytes(bytes(data[: len(data) // 2]))
    else:  # flip bytes in the middle, same size
        start = len(data) // 2
        data[start : start + 64] = bytes(b ^ 0x5A for b in data[start : start + 64])
        waves.write_bytes(bytes(data))
    dm = _datamodule(folder, cache, verify_cache=verify)
    error, said = _setup(dm)
    if error is None:
        same = all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(reference, _waves(dm)))
        outcome = (
            ("recovered (cache rebuilt): " + short(said[0], 120)) if same and said else _outcome(error, said)
        )
        lost = not same
    else:
        outcome, lost = _outcome(error, said), False
    label = {"truncated": "waveform cache truncated", "flipped": "waveform cache bytes flipped (same size)"}[
        how
    ]
    return Row(f"{label}, verify_cache: {verify}", outcome, lost)


def duplicate_rows(work: Path) -> Row:
    folder = data_case(work, "duplicates")
    rows = _tones(folder)
    _manifest(folder, [*rows, rows[0]])
    dm = _datamodule(folder, folder / "cache")
    error, said = _setup(dm)
    counted = None if error else sum(len(d) for d in dm.datasets.values())
    lost = error is None and not said and counted != len(rows)
    return Row("manifest lists a clip twice", _outcome(error, said), lost)


def outside_root(work: Path) -> Row:
    import numpy as np
    import soundfile as sf

    folder = data_case(work, "outside")
    rows = _tones(folder)
    sf.write(folder.parent / "outside.wav", np.zeros(4000) + 0.1, 8000)
    _manifest(folder, [*rows, ["../outside.wav", "a", "train"]])
    error, said = _setup(_datamodule(folder, folder / "cache"))
    return Row(
        "manifest path outside the dataset root (../outside.wav)",
        _outcome(error, said),
        error is None and not said,
    )


def truncated_wav(work: Path) -> Row:
    folder = data_case(work, "truncated_wav")
    rows = _tones(folder)
    _manifest(folder, rows)
    wav = folder / rows[0][0]
    wav.write_bytes(wav.read_bytes()[:3000])  # header says 4000 frames, ~1480 are there
    error, said = _setup(_datamodule(folder, folder / "cache"))
    return Row("truncated WAV (cut mid-data)", _outcome(error, said), error is None and not said)


def silent_clip(work: Path) -> Row:
    import numpy as np
    import soundfile as sf

    folder = data_case(work, "silent")
    rows = _tones(folder)
    sf.write(folder / rows[0][0], np.zeros(4000), 8000)
    _manifest(folder, rows)
    error, said = _setup(_datamodule(folder, folder / "cache"))
    return Row("an all-zero clip", _outcome(error, said), error is None and not said)


# --- the guard's cost --------------------------------------------------------------------------------------


class StepTimer(Callback):
    def __init__(self, warmup: int = 4) -> None:
        self.warmup, self.times, self._t = warmup, [], 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step > self.warmup:
            self.times.append(time.perf_counter() - self._t)


def guard_overhead(work: Path, epochs: int, repeats: int) -> str:
    """Median training-step time of a tiny baseline with the guard (raise and skip mode) and without it,
    alternating runs in one process, and the time spent inside the guard's own hooks."""
    import lightning as L

    from clusterlight import FiniteGuard
    from clusterlight.data import AudioDataModule, SyntheticSource
    from clusterlight.modules import Classifier

    class Timed(FiniteGuard):
        spent = 0.0

        def on_before_backward(self, *args):
            t = time.perf_counter()
            super().on_before_backward(*args)
            Timed.spent += time.perf_counter() - t

        def on_before_optimizer_step(self, *args):
            t = time.perf_counter()
            super().on_before_optimizer_step(*args)
            Timed.spent += time.perf_counter() - t

    class Unguarded(Classifier):
        def configure_callbacks(self):
            return [c for c in super().configure_callbacks() if not isinstance(c, FiniteGuard)]

    source = SyntheticSource(
        root=str(work / "synth"), counts=TINY_COUNTS, sample_rate=8000, duration=1.0, snr_db=(6.0, 12.0)
    )
    dm = AudioDataModule(
        source=source,
        classes=CLASSES,
        sample_rate=8000,
        duration=1.0,
        batch_size=16,
        cache_dir=str(work / "cache"),
    )
    results: dict[str, list[float]] = {"none": [], "raise": [], "skip": []}
    spent: dict[str, float] = {"raise": 0.0, "skip": 0.0}
    steps: dict[str, int] = {"raise": 0, "skip": 0}
    order = ["none", "raise", "skip"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two busy threads on a shared CPU time mostly the scheduler, not the step
    for r in range(repeats + 1):  # the first round warms up (first fit in the process) and is dropped
        for mode in order if r % 2 else order[::-1]:
            torch.manual_seed(0)
            timer = StepTimer()
            callbacks = [timer]
            model = (Unguarded if mode == "none" else Classifier)(*tiny_parts(), CLASSES)
            if mode != "none":
                Timed.spent = 0.0
                callbacks.append(Timed(on_nonfinite=mode))
            trainer = L.Trainer(
                accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                limit_val_batches=0, default_root_dir=str(work / "overhead"),
            )  # fmt: skip
            trainer.callbacks.extend(callbacks)
            trainer.fit(model, dm)
            if r == 0:
                continue
            results[mode] += timer.times
            if mode != "none":
                spent[mode] += Timed.spent
                steps[mode] += trainer.global_step
    torch.set_num_threads(threads)
    base = statistics.median(results["none"])
    parts = []
    for mode in ("raise", "skip"):
        med = statistics.median(results[mode])
        hook = 1000 * spent[mode] / max(steps[mode], 1)
        share = 100 * hook / (1000 * base)
        parts.append(
            f"{mode} mode {med / base:.3f}x ({1000 * med:.1f} ms vs {1000 * base:.1f} ms per step; "
            f"its hooks {hook:.2f} ms/step = {share:.1f}%)"
        )
    return (
        f"guard overhead (tiny LSTM baseline, CPU, 1 thread, median step of "
        f"{repeats} alternating runs of {epochs} epochs each, with / without the guard): "
        + "; ".join(parts)
        + ". On CPU the flag is read every step (there is no device to wait for); on CUDA raise mode "
        "reads it one step later from pinned memory (no host sync per step), skip mode every step."
    )


# --- the matrix -------------------------------------------------------------------------------------------


def run(work: Path, fast: bool) -> tuple[list[Row], str]:
    work.mkdir(parents=True, exist_ok=True)
    from clusterlight.data import SyntheticSource

    SyntheticSource(
        root=str(work / "synth"), counts=TINY_COUNTS, sample_rate=8000, duration=1.0, snr_db=(6.0, 12.0)
    ).clips()
    checks = [nan_run, nan_skip, unsafe_pretrained, not_a_checkpoint, shape_mismatch, nan_pretrained]
    if not fast:
        checks += [
            unsafe_ckpt_path,
            sigkill_fit,
            sigkill_experiment,
            lambda w: cache_fault(w, "truncated"),
            lambda w: cache_fault(w, "flipped"),
            lambda w: cache_fault(w, "flipped", "full"),
            duplicate_rows,
            outside_root,
            truncated_wav,
            silent_clip,
        ]
    rows = []
    for check in checks:
        t = time.time()
        try:
            row = check(work)
        except Exception as e:  # the harness itself failed: show it, count it as lost
            name = getattr(check, "__name__", "check")
            row = Row(name, f"benchmark error: {type(e).__name__}: {short(e)}", True)
        print(f"  [{time.time() - t:5.1f} s] {row.fault}", file=sys.stderr, flush=True)
        rows.append(row)
    overhead = guard_overhead(work, epochs=2 if fast else 4, repeats=2 if fast else 4)
    return rows, overhead


def markdown(rows: list[Row]) -> str:
    lines = ["| fault | outcome | lost |", "|---|---|---|"]
    lines += [f"| {r.fault} | {r.outcome.replace('|', '/')} | {'yes' if r.lost else 'no'} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--fast", action="store_true", help="the run faults only (NaN, checkpoints) and a short overhead"
    )
    p.add_argument("--workdir", default=None, help="keep the runs here (default: a temporary folder)")
    a = p.parse_args()
    with contextlib.ExitStack() as stack:
        work = Path(a.workdir) if a.workdir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        t = time.time()
        rows, overhead = run(work, a.fast)
        print(markdown(rows))
        print(
            f"\n{overhead}\n\n{len(rows)} faults in {time.time() - t:.0f} s; "
            f"lost: {sum(r.lost for r in rows)}"
        )


if __name__ == "__main__":
    main()
