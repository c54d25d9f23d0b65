"""The standing GPU checks in one call, written to one Markdown report (``make gpu-check``).

On a machine with a CUDA device it runs, in this order, each step in its own process under its own
timeout, and stops (saying so in the report) when the time budget runs low:
  1. ``benchmarks/throughput.py --compile`` (on a GPU it trains in bf16 mixed precision and measures
     the waveforms resident on the device as its figure 2), scaling figures at N = 10k and 100k;
  2. one ``clusterlight fit`` per stage of the quickstart experiment (baseline, pretrain, finetune from
     the pretrain checkpoint) with ``configs/trainer/gpu.yaml`` and ``--trainer.precision bf16-mixed``
     on the built-in synthetic data, a few epochs: finished or not, wall time, training clips/s and
     peak GPU memory;
  3. ``benchmarks/data_scale.py --sizes 10000 --repeats 1``.
The report (``--out``) names the command, the machine, the versions and the date, and holds each
step's status and printout. Without a CUDA device every step is reported as skipped and the exit code
is 0; with one, the exit code is 1 when a step failed or timed out. Not part of the test suite.
Usage: python benchmarks/gpu_check.py [--budget_s 480] [--out benchmarks/results/gpu_check.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_CUDA = "no CUDA device: torch.cuda.is_available() is False"
EXPERIMENT = "configs/experiment/quickstart.yaml"
GPU_TRAINER = "configs/trainer/gpu.yaml"
THROUGHPUT = ["benchmarks/throughput.py", "--compile", "--scale_sizes", "10000", "100000"]
DATA_SCALE = ["benchmarks/data_scale.py", "--sizes", "10000", "--repeats", "1"]
STAGES = ("baseline", "pretrain", "finetune")
# A step's timeout is its share of the time left, among the steps still to run; below MIN_STEP_S it
# does not start and neither does any later step.
SHARES = {"throughput": 40, "baseline": 12, "pretrain": 12, "finetune": 12, "data_scale": 24}
MIN_STEP_S = 30.0
TAIL_LINES = 40
CLIPS_PER_S = (
    "training clips seen (the batches' clips, counted by a callback) / seconds from the trainer's "
    "`on_train_start` to `on_train_end` (CUDA-synchronised: every epoch's training, its validation and "
    "re-clustering; not the process start, the data preparation or the final validation of the "
    "selected checkpoint)"
)
PEAK_MEMORY = (
    "`torch.cuda.max_memory_allocated()` (and `max_memory_reserved()`) read in the fit's own process "
    "after the fit returned: training, validation and the final validation of the selected checkpoint"
)


@dataclass
class Step:
    key: str
    title: str
    command: list[str] | None = None
    status: str = "skipped"  # ran, failed, timed out, skipped
    why: str = ""
    returncode: int | None = None
    timeout_s: float | None = None
    wall_s: float | None = None
    stdout: str = ""
    stderr: str = ""
    figures: dict = field(default_factory=dict)


# ---------------------------------------------------------------- the fit's own process (--fit_child)


def fit_child(result_path: str, cli_args: list[str]) -> None:
    """``clusterlight fit`` in this process (what ``python -m clusterlight fit ...`` runs: the
    ``ClusterlightCLI``) with a callback counting training clips and timing the training loop; writes
    the figures and the peak GPU memory as JSON to ``result_path``."""
    import torch
    from lightning.pytorch import Callback

    from clusterlight.lightning_cli import ClusterlightCLI
    from clusterlight.packaged_configs import resolve_config_args

    def sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    class FitMeter(Callback):
        def __init__(self) -> None:
            self.clips, self.train_s, self._t = 0, None, None

        def on_train_start(self, trainer, pl_module) -> None:
            sync()
            self._t = time.perf_counter()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.clips += len(batch["label"])

        def on_train_end(self, trainer, pl_module) -> None:
            sync()
            self.train_s = time.perf_counter() - self._t

    meter = FitMeter()
    cli = ClusterlightCLI(args=resolve_config_args(cli_args), trainer_defaults={"callbacks": [meter]})
    trainer = cli.trainer
    cuda = torch.cuda.is_available()
    result = {
        "clips": meter.clips,
        "train_s": meter.train_s,
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "best_model_path": trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else "",
        "peak_allocated_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "peak_reserved_mib": torch.cuda.max_memory_reserved() / 2**20 if cuda else None,
    }
    Path(result_path).write_text(json.dumps(result))


# ---------------------------------------------------------------- the steps


def _cli_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _flat(node: dict, prefix: str = "") -> list[str]:
    """A nested override (``{trainer: {max_epochs: 5}}``) as command-line arguments."""
    args: list[str] = []
    for key, value in node.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        args += _flat(value, name) if isinstance(value, dict) else [f"--{name}", _cli_value(value)]
    return args


def stage_args(
    workdir: Path, epochs: int, trainer_config: str = GPU_TRAINER, precision: str | None = "bf16-mixed"
):
    """The ``clusterlight fit`` arguments of each stage, by stage name, as the quickstart experiment
    configures them (its ``common`` configs with the trainer config replaced, the stage's configs and
    overrides, seed 0, the run folder ``workdir/<stage>``), then ``epochs`` epochs and ``precision``.
    The finetune stage still needs ``--model.init_args.pretrained_checkpoint``."""
    import yaml

    exp_file = ROOT / EXPERIMENT
    exp = yaml.safe_load(exp_file.read_text())

    def rel(path: str) -> str:
        return os.path.relpath(os.path.normpath(exp_file.parent / path), ROOT)

    common = [trainer_config if rel(c).startswith("configs/trainer/") else rel(c) for c in exp["common"]]
    stages = {
        "baseline": exp["methods"]["baseline"]["stages"][0],
        "pretrain": exp["methods"]["clustered"]["stages"][0],
        "finetune": exp["methods"]["clustered"]["stages"][1],
    }
    out = {}
    for name, stage in stages.items():
        args = ["fit"]
        for config in [*common, *(rel(c) for c in stage["configs"])]:
            args += ["--config", config]
        overrides = _flat(exp.get("overrides", {})) + _flat(stage.get("overrides", {}))
        for key, value in zip(overrides[::2], overrides[1::2]):
            args += [] if key == "--trainer.max_epochs" else [key, value]  # the check sets its own
        args += ["--trainer.max_epochs", str(epochs)]
        if precision:
            args += ["--trainer.precision", precision]
        run_dir = str(workdir / name)
        args += ["--seed_everything", "0", "--trainer.default_root_dir", run_dir]
        args += ["--trainer.logger.init_args.save_dir", run_dir]
        out[name] = args
    return out


def _environment() -> dict:
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))


def run_command(cmd: list[str], timeout: float) -> tuple[int | None, float, str, str]:
    """Run ``cmd`` from the repository root in a new process group, the repository on PYTHONPATH, its
    output to temporary files; on timeout the whole group is stopped. Returns the exit code (None when
    it timed out), the wall time and the printouts."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=_environment(), stdout=out, stderr=err, text=True, start_new_session=True
        )
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, None)):
                try:
                    os.killpg(proc.pid, sig)
                    proc.wait(timeout=wait)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
            proc.wait()
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        return code, wall, out.read(), err.read()


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


class Budget:
    def __init__(self, seconds: float) -> None:
        self.seconds, self.start = seconds, time.monotonic()

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def timeout(self, key: str, pending: list[str]) -> float:
        """``key``'s share of the time left among the ``pending`` steps (``key`` first)."""
        return self.left() * SHARES[key] / sum(SHARES[k] for k in pending)


def execute(step: Step, budget: Budget, pending: list[str]) -> bool:
    """Run ``step.command`` under its timeout; False (and the step skipped) when the budget is low."""
    timeout = budget.timeout(step.key, pending)
    if timeout < MIN_STEP_S:
        step.status = "skipped"
        step.why = (
            f"budget low: {max(budget.left(), 0):.0f} s of {budget.seconds:.0f} s left, this step's share "
            f"{timeout:.0f} s is under {MIN_STEP_S:.0f} s; the check stopped here"
        )
        return False
    step.timeout_s = timeout
    print(f"[gpu_check] {step.title}: running (timeout {timeout:.0f} s)", flush=True)
    code, step.wall_s, step.stdout, step.stderr = run_command(step.command, timeout)
    step.returncode = code
    if code is None:
        step.status, step.why = "timed out", f"stopped after {timeout:.0f} s (its timeout)"
    elif code:
        step.status, step.why = "failed", f"exit code {code}"
    else:
        step.status = "ran"
    print(f"[gpu_check] {step.title}: {step.status} in {step.wall_s:.0f} s", flush=True)
    return True


PRETRAIN_CKPT = "<the pretrain stage's selected checkpoint>"


def plan(workdir: Path, epochs: int, trainer_config: str = GPU_TRAINER, precision: str | None = "bf16-mixed"):
    """The steps in order, each with its command (a fit's: this script's ``--fit_child`` mode, and
    the equivalent ``python -m clusterlight`` command line for the report)."""
    fits = stage_args(workdir, epochs, trainer_config, precision)
    fits["finetune"] += ["--model.init_args.pretrained_checkpoint", PRETRAIN_CKPT]
    steps = [
        Step(
            "throughput",
            "1. throughput.py (bf16, compile, resident waveforms)",
            [sys.executable, *THROUGHPUT],
        )
    ]
    for name, args in fits.items():
        child = [sys.executable, str(Path(__file__).resolve()), "--fit_child", str(workdir / f"{name}.json")]
        step = Step(name, f"2. clusterlight fit: {name}", [*child, *args])
        step.figures["cli"] = ["python", "-m", "clusterlight", *args]
        steps.append(step)
    steps.append(Step("data_scale", "3. data_scale.py at 10k files", [sys.executable, *DATA_SCALE]))
    return steps


def run_steps(steps: list[Step], budget: Budget, workdir: Path) -> None:
    """Run ``steps`` in order under ``budget``; the finetune stage from the pretrain stage's checkpoint."""
    data_scale = (ROOT / DATA_SCALE[0]).exists()
    keys = [s.key for s in steps if s.key != "data_scale" or data_scale]
    workdir.mkdir(parents=True, exist_ok=True)
    best = ""
    for i, step in enumerate(steps):
        if step.key == "data_scale" and not data_scale:
            step.why = f"{DATA_SCALE[0]} does not exist in this checkout"
            continue
        if step.key == "finetune":
            if not best:
                step.why = "the pretrain stage left no selected checkpoint to fine-tune from"
                continue
            step.command = [best if a == PRETRAIN_CKPT else a for a in step.command]
            step.figures["cli"] = [best if a == PRETRAIN_CKPT else a for a in step.figures["cli"]]
        if not execute(step, budget, keys[keys.index(step.key) :]):
            for later in steps[i + 1 :]:
                later.why = later.why or "not started: the check stopped when the budget ran low"
            return
        result_file = Path(step.command[3]) if step.key in STAGES else None
        if result_file and step.status == "ran" and result_file.exists():
            step.figures.update(json.loads(result_file.read_text()))
            if step.key == "pretrain":
                best = step.figures.get("best_model_path") or ""


# ---------------------------------------------------------------- the report


def machine(cuda: bool, torch_module) -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        names = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = names[0] if names else cpu
    except OSError:
        pass
    gpu = (
        f"{torch_module.cuda.get_device_name()} ({torch_module.cuda.device_count()} visible)"
        if cuda
        else "none (torch.cuda.is_available() is False)"
    )
    try:
        lightning = metadata.version("lightning")
    except metadata.PackageNotFoundError:
        lightning = "not installed"
    return [
        f"GPU: {gpu}",
        f"CUDA (torch build): {torch_module.version.cuda}; torch {torch_module.__version__}; "
        f"lightning {lightning}; Python {platform.python_version()}",
        f"CPU: {cpu}, {os.cpu_count()} logical cores",
    ]


def clusterlight_version() -> str:
    text = (ROOT / "clusterlight" / "version.py").read_text()
    found = re.search(r"__version__\s*=\s*[\"']([^\"']+)", text)
    version = found.group(1) if found else "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{version} (commit {commit})" if commit else version


def _fence(text: str) -> list[str]:
    return ["```text", text.rstrip() or "(no output)", "```"]


def _fmt(value, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def render(steps: list[Step], header: list[str], cuda: bool, budget: Budget, epochs: int) -> str:
    lines = ["# GPU check", ""]
    if not cuda:
        lines += [f"**Every device step was skipped: {NO_CUDA}.**", ""]
    lines += header + [""]
    lines += ["| step | status | wall time (s) | timeout (s) | note |", "|---|---|---|---|---|"]
    for s in steps:
        lines.append(
            f"| {s.title} | {s.status} | {_fmt(s.wall_s, '.0f')} | {_fmt(s.timeout_s, '.0f')} | {s.why} |"
        )
    lines += ["", f"Budget {budget.seconds:.0f} s, used {budget.seconds - budget.left():.0f} s.", ""]

    for s in steps:
        lines += [f"## {s.title}", ""]
        if s.command:
            shown = s.figures.get("cli") or ["python", *s.command[1:]]
            lines += [f"Command: `{shlex.join(shown)}`", ""]
        lines += [f"Status: **{s.status}**" + (f" ({s.why})" if s.why else ""), ""]
        if s.key in STAGES and s.figures.get("train_s"):
            f = s.figures
            lines += [
                f"- wall time of the process {s.wall_s:.1f} s; training loop {f['train_s']:.1f} s, "
                f"{f['epochs']} epochs, {f['steps']} steps, {f['clips']} training clips",
                f"- training clips/s: {f['clips'] / f['train_s']:.0f}",
                f"- peak GPU memory: allocated {_fmt(f['peak_allocated_mib'], '.0f')} MiB, reserved "
                f"{_fmt(f['peak_reserved_mib'], '.0f')} MiB",
                f"- selected checkpoint: `{f['best_model_path']}`",
                "",
            ]
        if s.status == "ran":
            lines += _fence(_tail(s.stdout) if s.key in STAGES else s.stdout)
        elif s.status in ("failed", "timed out"):
            lines += ["Printout (stdout):", ""] + _fence(_tail(s.stdout, 200))
            lines += ["", "Last lines of stderr:", ""] + _fence(_tail(s.stderr))
        lines.append("")
    lines += [
        "## How the fit figures are measured",
        "",
        f"Each stage runs the quickstart experiment's configs (`{EXPERIMENT}`) with `{GPU_TRAINER}`, "
        f"`--trainer.precision bf16-mixed`, {epochs} epochs, seed 0, on the built-in synthetic data "
        "(`.cache/synth`), in a process of its own: the `ClusterlightCLI` that `python -m clusterlight` "
        "runs, started by this script with a measuring callback; the finetune stage starts from the "
        "pretrain stage's selected checkpoint.",
        "",
        f"- clips/s: {CLIPS_PER_S}.",
        f"- peak GPU memory: {PEAK_MEMORY}.",
        "- wall time: the whole process (imports, data preparation, training, final validation).",
        "",
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget_s", type=float, default=480.0, help="time for all the steps (default 8 min)")
    p.add_argument("--out", default="benchmarks/results/gpu_check.md", help="the Markdown report")
    p.add_argument("--epochs", type=int, default=3, help="epochs of each clusterlight fit")
    p.add_argument("--workdir", default="runs/gpu_check", help="the fits' run folders")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--fit_child"]:
        fit_child(argv[1], argv[2:])
        return 0
    a = _parser().parse_args(argv)
    budget = Budget(a.budget_s)
    import torch

    cuda = torch.cuda.is_available()
    workdir = Path(a.workdir).resolve()
    steps = plan(workdir, a.epochs)
    if cuda:
        run_steps(steps, budget, workdir)
    else:
        for step in steps:
            step.why = NO_CUDA
        if not (ROOT / DATA_SCALE[0]).exists():
            steps[-1].why += f"; {DATA_SCALE[0]} does not exist in this checkout either"
    shown = ["python", "benchmarks/gpu_check.py", *argv]
    header = [
        f"- command: `{shlex.join(shown)}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        *(f"- {line}" for line in machine(cuda, torch)),
        f"- clusterlight {clusterlight_version()}",
    ]
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(steps, header, cuda, budget, a.epochs))
    print(f"[gpu_check] report: {out}", flush=True)
    return 1 if any(s.status in ("failed", "timed out") for s in steps) else 0


if __name__ == "__main__":
    sys.exit(main())
