"""Decoding an audio file to mono float32 at a sample rate, and reading the frame count a WAV header declares.

Every failure is a :class:`~clusterlight.data.records.DataError` naming the file: missing, empty, undecodable,
truncated (fewer frames than its header declares), without samples, or with NaN / infinite samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from clusterlight.data.records import DataError


def wav_declared_frames(path: Path) -> int | None:
    """Frames a RIFF/WAVE header declares (data chunk size / block align); ``None`` when not a WAV
    or the size is unknown (0 or 0xFFFFFFFF, as streaming writers leave it). libsndfile silently
    shortens a cut data chunk to what the file holds, so this is read from the header itself."""
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = 0
        for _ in range(64):
            h = f.read(8)
            if len(h) < 8:
                return None
            cid, size = h[:4], int.from_bytes(h[4:8], "little")
            if cid == b"fmt ":
                fmt = f.read(size)
                block_align = int.from_bytes(fmt[12:14], "little") if len(fmt) >= 14 else 0
                f.seek(size & 1, 1)
            elif cid == b"data":
                if block_align <= 0 or size in (0, 0xFFFFFFFF):
                    return None
                return size // block_align
            else:
                f.seek(size + (size & 1), 1)
    return None


def decode(path: str, sample_rate: int) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sample_rate``; raise :class:`DataError` naming the file.

    A file that holds fewer frames than its header declares (a cut download or copy) is an error
    naming both counts: libsndfile would return the frames present without a word.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"audio file {path} does not exist")
    if p.stat().st_size == 0:
        raise DataError(f"audio file {path} is empty (0 bytes)")
    try:
        with sf.SoundFile(path) as f:
            sr, fmt, declared = f.samplerate, f.format, f.frames
            wave = f.read(dtype="float32", always_2d=True)
        header = wav_declared_frames(p)
    except Exception as e:  # soundfile raises several types for corrupt input
        raise DataError(f"audio file {path} could not be decoded: {e}") from e
    if wave.shape[0] == 0:
        raise DataError(f"audio file {path} has no samples")
    if fmt == "MPEG":  # an MP3's frame count is an estimate
        declared = 0
    declared = max(declared, header or 0)
    if wave.shape[0] < declared:
        raise DataError(
            f"audio file {path} is truncated: its header declares {declared} frames but only "
            f"{wave.shape[0]} could be read"
        )
    mono = wave.mean(axis=1)
    if not np.isfinite(mono).all():
        raise DataError(f"audio file {path} contains NaN or infinite samples")
    if sr != sample_rate:
        mono = AF.resample(torch.from_numpy(mono), sr, sample_rate).numpy()
        if not np.isfinite(mono).all():
            raise DataError(f"audio file {path} gives NaN or infinite samples after resampling")
    return mono
