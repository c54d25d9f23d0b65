"""The notebooks run as stored: executed on tiny settings (``CLUSTERLIGHT_NOTEBOOK_TINY=1``) in a temp
folder, without errors and without writing into the repository; the stored copies carry their outputs."""

from __future__ import annotations

import subprocess

import nbclient
import nbformat
import pytest
from helpers import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _tree_state() -> tuple[str, set[str]]:
    """``git status`` (untracked files included), the top-level entries of the repository and notebooks/."""
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    entries = {p.name for p in ROOT.iterdir()}
    entries |= {f"notebooks/{p.name}" for p in (ROOT / "notebooks").iterdir()}
    return status, entries


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "inference.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_notebook_has_its_outputs(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code), f"{path.name}: a cell was never run"
    in_order = [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert in_order, f"{path.name} was run out of order"
    assert any(c.outputs for c in code), f"{path.name} is stored without outputs"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name} is stored with an error: {errors[0].ename}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
@pytest.mark.slow
def test_notebook_executes_on_tiny_settings(path, tmp_path, monkeypatch):
    monkeypatch.setenv("CLUSTERLIGHT_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    before = _tree_state()
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError naming the cell on any error
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")
    assert _tree_state() == before, f"executing {path.name} wrote into the repository"
    assert any(tmp_path.iterdir()), "the notebook ran in its temp folder"
