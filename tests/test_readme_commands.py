"""Every fenced shell command in README.md and docs/getting-started.md, run as a user would.

Each ``bash`` block is run as one script, in order, in one temporary folder per page that holds a
link to the repository's ``configs/``; later blocks see what earlier ones wrote (the dataset, the
runs, ``$CKPT``). ``TINY`` rewrites a command to tiny settings (fewer clips, one seed, one epoch);
the rest runs as written. ``NOT_RUN`` names each command that is not run here, with the reason. A
command in neither place, or a listed command that no page has any more, fails the test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "docs/getting-started.md"]

TINY_DATA = "--seeds 0 --trainer.max_epochs 1 --data.init_args.batch_size 16"
# What a command becomes on tiny settings: (pattern, replacement) applied to its text.
COMPARE = r"configs/experiment/compare\.yaml"
TINY: list[tuple[str, str]] = [
    (r"--scale 0\.5", "--scale 0.05"),
    (rf"^(clusterlight experiment --config {COMPARE}(?!.*--dry_run).*)$", r"\1 " + TINY_DATA),
    (r"--recordings 2 --minutes 1", "--recordings 1 --minutes 0.5"),
]
NOT_RUN = {
    "make demo": "its recipe is checked below to be the quickstart experiment, which"
    " tests/test_quickstart_journey.py runs on tiny data with every default on",
    "make test": "it is this test suite (CI runs it)",
    "python3 -m venv .venv && . .venv/bin/activate": "sets up an environment; the tests run inside one",
    "pip install -e .": "installs from a package index; tests/test_packaging.py builds the wheel",
    'pip install -e ".[wandb,onnx]"': "installs from a package index; the extras' code paths have tests",
}


def shell_blocks(page: str) -> list[list[str]]:
    """The ``bash`` blocks of a page, each as its command lines (comments and blank lines dropped)."""
    text = (ROOT / page).read_text()
    blocks = re.findall(r"^```(?:bash|sh|shell)\n(.*?)^```", text, flags=re.S | re.M)
    commands = []
    for block in blocks:
        lines = [line.split("  #")[0].strip() for line in block.splitlines()]
        commands.append([line for line in lines if line and not line.startswith("#")])
    return commands


def tiny(command: str) -> str:
    for pattern, replacement in TINY:
        command = re.sub(pattern, replacement, command)
    return command


def test_every_listed_command_is_on_a_page():
    on_pages = {c for page in PAGES for block in shell_blocks(page) for c in block}
    assert set(NOT_RUN) <= on_pages, sorted(set(NOT_RUN) - on_pages)
    demo = re.search(r"^demo:.*\n\t(.*)$", (ROOT / "Makefile").read_text(), flags=re.M).group(1)
    assert demo == "$(BIN)/clusterlight experiment --config configs/experiment/quickstart.yaml"


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_the_page_s_commands_run(page, tmp_path):
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env["WANDB_MODE"] = "offline"
    ran = []
    for block in shell_blocks(page):
        script = [tiny(c) for c in block if c not in NOT_RUN]
        if not script:
            continue
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", "\n".join(script)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, f"{page}: {script}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        ran += script
    assert ran, f"{page} has no command that runs here"
    if page == "README.md":
        assert (tmp_path / "runs/compare/results.md").exists()
        assert (tmp_path / "predictions.csv").read_text().count("\n") > 1
        assert (tmp_path / "events.csv").exists() and (tmp_path / "model.onnx.json").exists()


def test_the_readme_s_links_resolve():
    """The README's links and images to files in the repository point at files that exist (the docs
    build checks the pages under docs/ itself, anchors included)."""
    targets = re.findall(r"\]\(([^)\s]+)\)", (ROOT / "README.md").read_text())
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    assert len(local) > 10
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, missing
