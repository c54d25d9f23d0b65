"""Caches for data sets larger than memory: build time, memory, disk, resuming and epoch speed per size.

For each size N in ``--sizes`` it writes N synthetic clips into ``--work_dir/N`` (80% WAV, 10% FLAC,
10% Ogg; sample rates 8-48 kHz; 0.5-10 s; reused when already there), then measures, side by side:

- the waveform-cache build with 1 decoding worker and with every usable core, and their ratio (each the
  best of ``--repeats`` rounds, the two alternated);
- peak RSS of the build: the building process plus its decoding workers, summed, sampled from /proc
  every 50 ms (each build runs in a fresh subprocess), and of one training epoch; growth from the
  previous size;
- bytes on disk per hour of audio for ``cache_dtype`` float32, float16 and int16;
- a build SIGKILLed once half its shards are published, then resumed: the resumed part's time vs a full
  build;
- epoch throughput (a log-mel + linear model, 2 s windows, batch 64) reading the cache as training does
  (shuffled ``ClipDataset`` random crops), vs the same model on in-memory tensors (pure compute), vs
  decoding every file on the fly in DataLoader workers (best of ``--repeats`` rounds each).

Each target is printed as met / missed with its figure. Printout as Markdown to stdout and to ``--out``
(default ``benchmarks/results/data_scale.md``). Not part of the test suite. Usage:
python benchmarks/data_scale.py [--sizes 1000 10000 100000] [--work_dir /tmp/clusterlight-data-scale]
[--repeats 2]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

SR = 16000
TARGETS_NOTE = "targets: build RSS < 3 GB and <= 1.2x previous size; speedup >= 1.7x; int16 <= 0.5x float32"


def cores() -> int:
    return len(os.sched_getaffinity(0))


def write_dataset(folder: Path, n: int) -> list[str]:
    """``n`` synthetic clips (format by position, rate and length drawn per clip); kept when present."""
    import soundfile as sf

    from clusterlight.data.synth import CLASSES, synth_clip

    done = folder / "done.json"
    if done.is_file():
        return json.loads(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        sr = int(rng.choice([8000, 11025, 16000, 22050, 32000, 44100, 48000]))
        x = synth_clip(rng, CLASSES[i % len(CLASSES)], sr, float(rng.uniform(0.5, 10.0)), (0.0, 12.0))
        ext, fmt = (("wav", "WAV"), ("flac", "FLAC"), ("ogg", "OGG"))[0 if i % 10 < 8 else 1 + i % 2]
        path = folder / f"{i:07d}.{ext}"
        sf.write(path, x, sr, format=fmt, subtype="PCM_16" if fmt != "OGG" else "VORBIS")
        paths.append(str(path))
    done.write_text(json.dumps(paths))
    return paths


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return total


def run_measured(args: list[str], env: dict | None = None) -> tuple[float, int, int, str]:
    """Run this script with ``args`` in a subprocess: (seconds, peak tree RSS bytes, return code, stdout)."""
    cmd = [sys.executable, __file__, *args]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, text=True)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    sampler.join()
    return time.perf_counter() - t, peak[0], proc.returncode, out


def child_build(paths_file: str, cache: str, workers: int, dtype: str, per_shard: int) -> None:
    from clusterlight.data.audio import load_waveforms
    from clusterlight.data.records import Clip

    clips = [Clip(p, "x") for p in json.loads(Path(paths_file).read_text())]
    store = load_waveforms(
        clips, SR, cache, "skip", decode_workers=workers, cache_dtype=dtype, clips_per_shard=per_shard
    )
    size = sum(f.stat().st_size for f in store.folder.rglob("*") if f.is_file())
    seconds = float(store.lengths().sum()) / SR
    print(json.dumps({"bytes": size, "sample_bytes": store.nbytes, "seconds_audio": seconds}))


def child_epoch(paths_file: str, cache: str, mode: str) -> None:
    """One epoch of a log-mel + linear model; prints clips/s. ``cache``: the training path, shuffled
    :class:`~clusterlight.data.dataset.ClipDataset` items (random crops) from the memory-mapped cache in
    this process (``num_workers: 0``, the DataModule's default)."""
    import torch

    from clusterlight.data.audio import load_waveforms
    from clusterlight.data.cropping import fit_length
    from clusterlight.data.dataset import ClipDataset
    from clusterlight.data.decode import decode
    from clusterlight.data.records import Clip
    from clusterlight.features import LogMel

    paths = json.loads(Path(paths_file).read_text())
    n = 2 * SR
    front = LogMel(sample_rate=SR)
    model = torch.nn.Linear(front.n_mels, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    torch.manual_seed(0)
    if mode == "cache":
        store = load_waveforms([Clip(p, "x") for p in paths], SR, cache, "skip", decode_workers=1)
        rows = np.arange(len(store))
        clips = ClipDataset(store, rows, np.zeros(len(rows), np.int64), n, "loop", train=True)
        data = torch.utils.data.DataLoader(clips, batch_size=64, shuffle=True, num_workers=0)
    elif mode == "memory":
        data = [torch.randn(min(64, len(paths) - s), n) for s in range(0, len(paths), 64)]
    else:
        items = [lambda p=p: fit_length(decode(p, SR), n, "loop", 0) for p in paths]
        data = torch.utils.data.DataLoader(_Calls(items), batch_size=64, num_workers=cores())
    t, seen = time.perf_counter(), 0
    for batch in data:
        x = torch.as_tensor(batch["wave"] if isinstance(batch, dict) else batch)
        loss = model(front(x).mean(-1)).logsumexp(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(x)
    print(json.dumps({"clips_per_s": seen / (time.perf_counter() - t)}))


class _Calls:
    """A map-style dataset of zero-argument callables (picklable only with fork: DataLoader default)."""

    def __init__(self, items: list) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]()


def measure_size(work: Path, n: int, per_shard: int, repeats: int) -> dict:
    paths = write_dataset(work / str(n) / "audio", n)
    paths_file = work / str(n) / "paths.json"
    paths_file.write_text(json.dumps(paths))
    caches = work / str(n) / "caches"
    shutil.rmtree(caches, ignore_errors=True)
    r: dict = {"n": n}

    def build(name: str, workers: int, dtype: str = "float32", env: dict | None = None):
        args = ["--_build", str(paths_file), str(caches / name), str(workers), dtype, str(per_shard)]
        return run_measured(args, env)

    r["t1"] = r["tall"] = float("inf")
    r["rss1"] = r["rssall"] = 0
    for k in range(repeats):  # alternated, so that both see the same drift of the machine; best time kept
        last = k == repeats - 1  # the caches of the last round stay for the measurements below
        for name, workers, key in (("one", 1, "1"), ("all", cores(), "all")):
            shutil.rmtree(caches / name, ignore_errors=True)
            seconds, rss, _, out = build(name, workers)
            r[f"t{key}"], r[f"rss{key}"] = min(r[f"t{key}"], seconds), max(r[f"rss{key}"], rss)
            if last and name == "all":
                full = json.loads(out.strip().splitlines()[-1])
    r["hours"] = full["seconds_audio"] / 3600
    r["bytes"], r["sample_bytes"] = {"float32": full["bytes"]}, {"float32": full["sample_bytes"]}
    for dtype in ("float16", "int16"):
        built = json.loads(build(dtype, cores(), dtype)[3].strip().splitlines()[-1])
        r["bytes"][dtype], r["sample_bytes"][dtype] = built["bytes"], built["sample_bytes"]
    half = max(1, -(-n // per_shard) // 2)
    r["t_killed"], _, code, _ = build(
        "resumed", cores(), env={"CLUSTERLIGHT_CACHE_KILL_AFTER_SHARDS": str(half)}
    )
    r["killed"] = code == -signal.SIGKILL
    r["t_resumed"], _, _, _ = build("resumed", cores())
    r["rss_epoch"] = 0
    for _ in range(repeats):
        for mode in ("cache", "memory", "decode"):
            seconds, rss, _, out = run_measured(["--_epoch", str(paths_file), str(caches / "one"), mode])
            speed = json.loads(out.strip().splitlines()[-1])["clips_per_s"]
            r[f"epoch_{mode}"] = max(r.get(f"epoch_{mode}", 0.0), speed)
            if mode == "cache":
                r["rss_epoch"] = max(r["rss_epoch"], rss)
    return r


def _verdict(ok: bool, figure: str) -> str:
    return f"{'met' if ok else 'missed'} ({figure})"


def report(rows: list[dict], command: str) -> str:
    gb = 2**30
    lines = [
        "# Data scale: sharded caches",
        "",
        f"Command: `{command}`  ",
        f"Machine: {cores()}-core {platform.processor() or platform.machine()} CPU; "
        f"clusterlight {_version()}, {datetime.date.today().isoformat()}.",
        "",
        "| clips | hours | build 1 worker (s) | build all (s) | speedup | build RSS (GiB) | growth | "
        "epoch RSS (GiB) | MB/h f32 | MB/h f16 | MB/h i16 | killed+resumed (s) | resumed / full | "
        "epoch cache / compute | epoch cache / decode |",
        "|" + "---|" * 15,
    ]
    prev = None
    for r in rows:
        mb_h = {k: f"{v / 1e6 / max(r['hours'], 1e-9):.0f}" for k, v in r["bytes"].items()}
        growth = r["rssall"] / prev["rssall"] if prev else float("nan")
        lines.append(
            f"| {r['n']} | {r['hours']:.2f} | {r['t1']:.1f} | {r['tall']:.1f} | {r['t1'] / r['tall']:.2f} | "
            f"{r['rssall'] / gb:.2f} | {growth:.2f} | {r['rss_epoch'] / gb:.2f} | {mb_h['float32']} | "
            f"{mb_h['float16']} | {mb_h['int16']} | {r['t_killed']:.1f} + {r['t_resumed']:.1f} | "
            f"{r['t_resumed'] / r['tall']:.2f} | {r['epoch_cache'] / r['epoch_memory']:.2f} | "
            f"{r['epoch_cache'] / r['epoch_decode']:.2f} |"
        )
        prev = r
    last, before = rows[-1], (rows[-2] if len(rows) > 1 else None)
    growth = last["rssall"] / before["rssall"] if before else 1.0
    lines += [
        "",
        "RSS: the building process plus its decoding workers, summed, peak of 50 ms samples of /proc.",
        "",
        f"- peak build RSS at {last['n']} clips < 3 GB: "
        + _verdict(last["rssall"] < 3e9, f"{last['rssall'] / 1e9:.2f} GB"),
        "- within 1.2x of the previous size: " + _verdict(growth <= 1.2, f"{growth:.2f}x"),
        f"- {cores()}-worker speedup >= 1.7x: "
        + _verdict(last["t1"] / last["tall"] >= 1.7, f"{last['t1'] / last['tall']:.2f}x"),
        "- int16 <= 0.5x float32 bytes (stored samples; on disk with metadata: "
        f"{last['bytes']['int16'] / last['bytes']['float32']:.3f}x): "
        + _verdict(
            last["sample_bytes"]["int16"] <= 0.5 * last["sample_bytes"]["float32"],
            f"{last['sample_bytes']['int16'] / last['sample_bytes']['float32']:.3f}x",
        ),
        "- epoch from cache >= 0.9x pure compute: "
        + _verdict(
            last["epoch_cache"] >= 0.9 * last["epoch_memory"],
            f"{last['epoch_cache'] / last['epoch_memory']:.2f}x",
        ),
        "- epoch from cache >= 3x on-the-fly decoding: "
        + _verdict(
            last["epoch_cache"] >= 3 * last["epoch_decode"],
            f"{last['epoch_cache'] / last['epoch_decode']:.2f}x",
        ),
        "- resumed build <= 0.6x full build: "
        + _verdict(
            last["killed"] and last["t_resumed"] <= 0.6 * last["tall"],
            f"{last['t_resumed'] / last['tall']:.2f}x"
            + ("" if last["killed"] else ", the kill did not happen"),
        ),
    ]
    return "\n".join(lines) + "\n"


def _version() -> str:
    from clusterlight.version import __version__

    return __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--work_dir", default="/tmp/clusterlight-data-scale")
    p.add_argument("--clips_per_shard", type=int, default=256)
    p.add_argument(
        "--repeats", type=int, default=2, help="rounds of the timed builds and epochs; the best is reported"
    )
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "data_scale.md"))
    p.add_argument("--_build", nargs=5, help=argparse.SUPPRESS)
    p.add_argument("--_epoch", nargs=3, help=argparse.SUPPRESS)
    return p


def main() -> None:
    parser = _parser()
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if args._build:
        paths_file, cache, workers, dtype, per_shard = args._build
        return child_build(paths_file, cache, int(workers), dtype, int(per_shard))
    if args._epoch:
        return child_epoch(*args._epoch)
    rows = [measure_size(Path(args.work_dir), n, args.clips_per_shard, args.repeats) for n in args.sizes]
    text = report(rows, "python benchmarks/data_scale.py " + " ".join(sys.argv[1:]))
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
