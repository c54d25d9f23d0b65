"""A lint rule: no collective inside a rank-zero-only path.

Code that runs on rank 0 alone (a ``@rank_zero_only`` function, an ``if`` on ``is_global_zero`` /
``global_rank == 0``) must not call anything that waits for the other ranks: they never arrive,
and the run hangs (DDP pretraining deadlocked this way when the embedding plot read
``trainer.log_dir``, which broadcasts).
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "clusterlight"
COLLECTIVES = {
    "log_dir",  # Trainer.log_dir broadcasts
    "all_gather",
    "all_gather_object",
    "all_gather_objects",
    "all_gather_cat",
    "all_reduce",
    "all_reduce_sum_",
    "broadcast",
    "broadcast_",
    "barrier",
    "reduce",
    "compute",  # torchmetrics syncs on compute()
    "validate",
    "test",
    "fit",
}
RANK_ZERO_TESTS = ("is_global_zero", "global_rank == 0", "rank == 0", "local_rank == 0")


def _rank_zero_blocks(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names = {ast.unparse(d) for d in node.decorator_list}
            if any("rank_zero_only" in n for n in names):
                yield node, node.body
        elif isinstance(node, ast.If) and any(t in ast.unparse(node.test) for t in RANK_ZERO_TESTS):
            yield node, node.body


def _collectives(body) -> list[str]:
    found = []
    for stmt in body:
        for node in ast.walk(stmt):
            name = (
                node.attr
                if isinstance(node, ast.Attribute)
                else node.id
                if isinstance(node, ast.Name)
                else None
            )
            if name in COLLECTIVES:
                found.append(name)
            if isinstance(node, ast.Call) and any(k.arg == "sync_dist" for k in node.keywords):
                found.append("log(..., sync_dist=...)")
    return found


def violations(source: str, filename: str = "<src>") -> list[str]:
    out = []
    for node, body in _rank_zero_blocks(ast.parse(source)):
        out += [
            f"{filename}:{node.lineno}: {name} inside a rank-zero-only path" for name in _collectives(body)
        ]
    return out


def test_the_rule_catches_the_embedding_plot_deadlock():
    old = (
        "@rank_zero_only\n"
        "def on_validation_epoch_end(self, trainer, pl_module):\n"
        "    folder = Path(trainer.log_dir or trainer.default_root_dir) / 'embeddings'\n"
    )
    assert violations(old) == ["<src>:2: log_dir inside a rank-zero-only path"]
    guarded = "if trainer.is_global_zero:\n    metric.compute()\n"
    assert violations(guarded) == ["<src>:1: compute inside a rank-zero-only path"]
    assert violations("if trainer.is_global_zero:\n    print(table)\n") == []


def test_no_collective_inside_a_rank_zero_only_path():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += violations(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    assert not found, "\n".join(found)
