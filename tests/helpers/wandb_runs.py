"""W&B offline runs read back record by record: what a run logged, without a W&B server or its SDK's
reader."""

from __future__ import annotations

import json
import struct
from pathlib import Path


def wandb_records(path: Path):
    """The protobuf records of an offline run's ``run-<id>.wandb`` file: a 7-byte header (``:W&B``, magic,
    version), then LevelDB-log records in 32 KiB blocks (4-byte CRC, 2-byte length, 1-byte type: full,
    first, middle, last)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, chunks = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # full, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            chunks = b""
            yield record


def read_offline_run(folder: Path) -> dict:
    """name, group, job_type, tags, config keys, logged keys (history and summary) and files of a run."""
    run = {"config": set(), "keys": set(), "files": []}
    for record in wandb_records(next(folder.glob("run-*.wandb"))):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.update(name=r.display_name, group=r.run_group, job_type=r.job_type, tags=list(r.tags))
            run["config"] |= {item.key for item in r.config.update}
            run["experiment"] = next(
                (json.loads(i.value_json) for i in r.config.update if i.key == "experiment"), None
            )
        elif kind == "config":
            run["config"] |= {item.key for item in record.config.update}
        elif kind in ("history", "summary"):
            items = record.history.item if kind == "history" else record.summary.update
            run["keys"] |= {item.key or "/".join(item.nested_key) for item in items}
        elif kind == "files":
            run["files"] += [f.path for f in record.files.files]
    return run
