"""The configs shipped inside the package, so a ``pip install`` user has them too.

``--config clusterlight:trainer/cpu.yaml`` (for ``fit``/``test``/... and ``experiment``) names a
packaged file; ``clusterlight configs list`` lists them with their first comment line.
"""

from __future__ import annotations

from pathlib import Path

PREFIX = "clusterlight:"
ROOT = Path(__file__).resolve().parent / "configs"


def resolve(value: str) -> str:
    """A ``clusterlight:<relative path>`` config name as a file path; anything else unchanged."""
    if not value.startswith(PREFIX):
        return value
    path = ROOT / value[len(PREFIX) :]
    if not path.is_file():
        raise SystemExit(f"--config {value}: no such packaged config; see `clusterlight configs list`")
    return str(path)


def resolve_config_args(args: list[str]) -> list[str]:
    """``args`` with every ``--config clusterlight:...`` / ``--config=clusterlight:...`` resolved."""
    out = list(args)
    for i, arg in enumerate(out):
        if arg.startswith("--config="):
            out[i] = "--config=" + resolve(arg[len("--config=") :])
        elif i and out[i - 1] == "--config":
            out[i] = resolve(arg)
    return out


def listing() -> str:
    """One line per packaged config: its ``clusterlight:`` name and what its first comment says."""
    lines = []
    for path in sorted(ROOT.rglob("*.yaml")):
        first = next((ln[1:].strip() for ln in path.read_text().splitlines() if ln.startswith("#")), "")
        lines.append(f"{PREFIX}{path.relative_to(ROOT).as_posix():40s} {first}")
    return "\n".join(lines)
