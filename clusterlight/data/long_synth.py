"""Long synthetic recordings with annotated rare events, for sound event detection.

Each recording is minutes of background from :func:`clusterlight.data.synth.background`: segments of
random sub-types (``segment_s`` seconds each) joined by equal-power cross-fades of ``crossfade_s``.
Rare events from :func:`clusterlight.data.synth.event` are mixed in at known onsets:

- ``round(events_per_minute * minutes)`` events per recording, classes drawn uniformly;
- each event is trimmed to its audible part, from its first to its last sample at or above
  ``ACTIVE_LEVEL`` (5 %) of its peak (the level ``synth_clip`` computes the event's power over), so the
  annotation ``offset - onset`` is the length of what was mixed in;
- events never overlap and are at least ``min_gap_s`` apart (offset to next onset), and lie inside the
  recording; onsets are uniform among all such placements (stick-breaking over the free time);
- the SNR of each event (drawn uniformly from ``snr_db``, rounded to 0.01 dB and written as such) is
  its RMS over its active samples against the background's RMS (1), as in ``synth_clip``.

The recording is then scaled to a peak of 0.5 (as ``synth_clip`` does) and written as 16-bit WAV.
Deterministic by ``seed``: recording ``i`` draws from its own generator ``(seed, i)``, so it is the same
whatever ``n_recordings`` is.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import soundfile as sf

from clusterlight.data.atomic import atomic_folder
from clusterlight.data.synth import BACKGROUND_TYPES, DEFAULT_SNR_DB, background, event

EVENT_CLASSES = ("dog_bark", "baby_cry", "gunshot")
ACTIVE_LEVEL = 0.05
ANNOTATION_COLUMNS = ("file", "onset", "offset", "event_label", "snr_db")
MANIFEST_COLUMNS = ("file", "duration", "sample_rate", "n_events", "backgrounds")


def _background_track(
    rng: np.random.Generator,
    n: int,
    sr: int,
    kinds: Sequence[str],
    segment_s: tuple[float, float],
    crossfade_s: float,
) -> tuple[np.ndarray, list[str]]:
    """``n`` samples of background: segments of random kinds, cross-faded (equal power), unit RMS each."""
    xf = max(1, int(round(crossfade_s * sr)))
    bounds = [0]
    while True:
        nxt = bounds[-1] + int(round(rng.uniform(*segment_s) * sr))
        if nxt + xf > n:  # the last segment runs to the end and is at least one cross-fade long
            break
        bounds.append(nxt)
    bounds.append(n)
    fade = np.sin(0.5 * np.pi * (np.arange(xf) + 0.5) / xf)  # fade-in; its mirror cos^2 + sin^2 = 1
    out = np.zeros(n)
    used = []
    for j in range(len(bounds) - 1):
        start, stop = bounds[j], min(bounds[j + 1] + xf, n)
        kind = str(kinds[int(rng.integers(len(kinds)))])
        used.append(kind)
        seg = background(rng, kind, stop - start, sr)
        if j > 0:
            seg[:xf] *= fade
        if j < len(bounds) - 2:
            seg[-xf:] *= fade[::-1]
        out[start:stop] += seg
    return out, used


def _audible(ev: np.ndarray) -> np.ndarray:
    active = np.flatnonzero(np.abs(ev) >= ACTIVE_LEVEL * np.max(np.abs(ev)))
    return ev[active[0] : active[-1] + 1]


def _place(rng: np.random.Generator, lengths: list[int], n: int, gap: int) -> list[int]:
    """Start samples for events of ``lengths`` (in this order) in ``n`` samples, ``gap`` apart at least."""
    free = n - sum(lengths) - gap * max(len(lengths) - 1, 0)
    if free < 0:
        raise ValueError(
            f"{len(lengths)} events ({sum(lengths) / n:.0%} of the recording) with gaps of {gap} samples "
            "do not fit: lower events_per_minute or min_gap_s, or lengthen the recordings"
        )
    slack = np.sort(rng.integers(0, free + 1, len(lengths)))
    starts, used = [], 0
    for length, s in zip(lengths, slack.tolist()):
        starts.append(int(s) + used)
        used += length + gap
    return starts


def synth_recording(
    rng: np.random.Generator,
    n: int,
    sr: int,
    n_events: int,
    classes: Sequence[str] = EVENT_CLASSES,
    snr_db: tuple[float, float] = DEFAULT_SNR_DB,
    min_gap_s: float = 2.0,
    background_kinds: Sequence[str] = BACKGROUND_TYPES,
    segment_s: tuple[float, float] = (10.0, 30.0),
    crossfade_s: float = 0.5,
) -> tuple[np.ndarray, list[dict], list[str]]:
    """One recording of ``n`` samples: (float32 waveform, events as dicts with ``onset``, ``offset``
    (seconds), ``event_label``, ``snr_db``, sorted by onset, background kinds in order)."""
    x, kinds = _background_track(rng, n, sr, background_kinds, segment_s, crossfade_s)
    labels = [str(classes[i]) for i in rng.integers(len(classes), size=n_events)]
    waves = [_audible(event(rng, label, sr)) for label in labels]
    snrs = [round(float(s), 2) for s in rng.uniform(*snr_db, size=n_events)]
    starts = _place(rng, [len(w) for w in waves], n, int(round(min_gap_s * sr)))
    events = []
    for label, w, snr, start in zip(labels, waves, snrs, starts):
        active = np.abs(w) > ACTIVE_LEVEL
        gain = 10 ** (snr / 20) / np.sqrt(np.mean(w[active] ** 2))
        x[start : start + len(w)] += gain * w
        events.append(
            {"onset": start / sr, "offset": (start + len(w)) / sr, "event_label": label, "snr_db": snr}
        )
    return (0.5 * x / (np.max(np.abs(x)) + 1e-12)).astype(np.float32), events, kinds


def generate_long(
    out_dir: str | Path,
    n_recordings: int,
    minutes: float,
    seed: int = 0,
    sample_rate: int = 16000,
    events_per_minute: float = 4.0,
    snr_db: tuple[float, float] = DEFAULT_SNR_DB,
    classes: Sequence[str] = EVENT_CLASSES,
    min_gap_s: float = 2.0,
    background_kinds: Sequence[str] = BACKGROUND_TYPES,
    segment_s: tuple[float, float] = (10.0, 30.0),
    crossfade_s: float = 0.5,
    overwrite: bool = False,
) -> Path:
    """Write ``n_recordings`` WAV files (``rec_00000.wav`` ...) of ``minutes`` each into ``out_dir``, with
    ``annotations.csv`` (``file,onset,offset,event_label,snr_db``, seconds, one row per event) and
    ``manifest.csv`` (``file,duration,sample_rate,n_events,backgrounds``). Returns the manifest's path.

    Written into a temporary folder and moved into place. An existing ``out_dir`` is an error unless
    ``overwrite``, in which case it is replaced.
    """
    _check_settings(
        n_recordings, minutes, events_per_minute, snr_db, classes, min_gap_s, segment_s, crossfade_s
    )
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists; pass overwrite=True to replace it")
    n = int(round(minutes * 60 * sample_rate))
    n_events = int(round(events_per_minute * minutes))
    # is_complete=False: an existing out_dir is replaced, only once the new one is complete
    with atomic_folder(out_dir, "manifest.csv", is_complete=lambda _: False) as tmp:
        manifest, annotations = [], []
        for i in range(n_recordings):
            name = f"rec_{i:05d}.wav"
            x, events, kinds = synth_recording(
                np.random.default_rng([seed, i]),
                n,
                sample_rate,
                n_events,
                classes,
                cast(tuple[float, float], tuple(snr_db)),  # a list when read from a config
                min_gap_s,
                background_kinds,
                segment_s,
                crossfade_s,
            )
            sf.write(tmp / name, x, sample_rate, subtype="PCM_16")
            manifest.append([name, n / sample_rate, sample_rate, len(events), ";".join(kinds)])
            annotations += [[name, e["onset"], e["offset"], e["event_label"], e["snr_db"]] for e in events]
        _write_csv(tmp / "annotations.csv", ANNOTATION_COLUMNS, annotations)
        _write_csv(tmp / "manifest.csv", MANIFEST_COLUMNS, manifest)
    return out_dir / "manifest.csv"


def _check_settings(
    n_recordings: int,
    minutes: float,
    events_per_minute: float,
    snr_db: tuple[float, float],
    classes: Sequence[str],
    min_gap_s: float,
    segment_s: tuple[float, float],
    crossfade_s: float,
) -> None:
    """Raise ``ValueError`` naming the first setting of :func:`generate_long` out of range."""
    unknown = sorted(set(classes) - set(EVENT_CLASSES))
    if unknown or not classes:
        raise ValueError(f"event classes must be a non-empty subset of {EVENT_CLASSES}, got {list(classes)}")
    if n_recordings < 0 or minutes <= 0 or events_per_minute < 0 or min_gap_s < 0:
        raise ValueError("n_recordings, events_per_minute and min_gap_s must be >= 0 and minutes > 0")
    if snr_db[0] > snr_db[1]:
        raise ValueError(f"snr_db must be (low, high), got {snr_db}")
    if not 0 <= crossfade_s < segment_s[0] <= segment_s[1]:
        raise ValueError(
            f"need 0 <= crossfade_s < segment_s[0] <= segment_s[1], got {crossfade_s}, {segment_s}"
        )


def _write_csv(path: Path, header: Sequence[str], rows: list[list]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
