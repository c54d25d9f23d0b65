"""Calibration windows for static int8 quantization: clip-length windows of real audio, cut and padded
as evaluation cuts them, from the run's training split or from given audio files."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from clusterlight.inference.windows import padded_window, windows

DEFAULT_WINDOWS = 256


def spread_sample(labels: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Indices of up to ``count`` items taken in turn from each label (shuffled within a label), so the
    rare classes are represented even when the background outnumbers them."""
    rng = np.random.default_rng(seed)
    per_label = [rng.permutation(np.flatnonzero(labels == k)).tolist() for k in np.unique(labels)]
    picked: list[int] = []
    while len(picked) < count and any(per_label):
        for queue in per_label:
            if queue and len(picked) < count:
                picked.append(queue.pop())
    return np.asarray(sorted(picked), dtype=np.int64)


def run_datamodule(checkpoint: str | Path):
    """The DataModule of the run that wrote ``checkpoint``, rebuilt from the run's ``config.yaml``
    (``<run>/version_N/config.yaml`` beside the ``checkpoints`` folder) and set up for ``fit``, which
    opens (or builds) its waveform cache; its batches carry waveforms, whatever the run's carried."""
    import yaml
    from jsonargparse import ArgumentParser
    from lightning.pytorch import LightningDataModule

    from clusterlight.checkpoints import load_checkpoint

    config_file = Path(checkpoint).resolve().parent.parent / "config.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{config_file} is missing: the run's splits are read from its config.yaml (written by "
            "clusterlight fit); give calibration audio instead (--calibration FILES)"
        )
    node = (yaml.safe_load(config_file.read_text()) or {}).get("data")
    if not isinstance(node, dict):
        raise ValueError(f"{config_file} has no 'data' section to rebuild the run's splits from")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningDataModule, "data", required=True)
    datamodule = parser.instantiate_classes(parser.parse_object({"data": node})).data
    datamodule.feature_cache = False  # windows of waveforms, whatever the batches carried
    datamodule.prepare_data()
    datamodule.setup("fit")
    card = load_checkpoint(checkpoint)["clusterlight"]["audio"]
    if card.get("sample_rate") not in (None, datamodule.sample_rate):
        raise ValueError(
            f"{config_file} reads audio at {datamodule.sample_rate} Hz, the checkpoint at "
            f"{card['sample_rate']} Hz"
        )
    return datamodule


def split_windows(
    checkpoint: str | Path, split: str = "train", count: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``([clips, samples] windows, [clips] labels)`` of a split (``train``, ``val`` or ``test``) of the
    run that wrote ``checkpoint`` (its DataModule: :func:`run_datamodule`); each clip is cut to one
    window, centred, as evaluation does. ``count``: at most this many clips, taken in turn from each
    class (:func:`spread_sample`); all of them by default."""
    datamodule = run_datamodule(checkpoint)
    part = datamodule.datasets[split]
    labels = np.asarray(part.labels)
    chosen = np.arange(len(labels)) if count is None else spread_sample(labels, count, seed)
    n, padding = datamodule.n_samples, datamodule.padding
    found = [_window(part.store.wave(int(part.rows[i])), n, padding) for i in chosen]
    return np.stack(found), labels[chosen]


def training_windows(checkpoint: str | Path, count: int = DEFAULT_WINDOWS, seed: int = 0) -> np.ndarray:
    """Up to ``count`` windows of the run's training split, taken in turn from each class
    (:func:`split_windows`): what static quantization calibrates on by default."""
    return split_windows(checkpoint, "train", count, seed)[0]


def file_windows(
    paths: Iterable[str | Path],
    sample_rate: int,
    n: int,
    padding: str,
    count: int = DEFAULT_WINDOWS,
    seed: int = 0,
) -> np.ndarray:
    """Up to ``count`` windows of ``n`` samples from audio files (decoded and resampled as training
    decodes them): every window of every file (a window every half clip), then a seeded sample."""
    from clusterlight.data.decode import decode

    found = [windows(decode(str(p), sample_rate), n, max(1, n // 2), padding) for p in paths]
    if not found:
        raise ValueError("no calibration audio given")
    every = np.concatenate(found)
    if len(every) > count:
        every = every[np.sort(np.random.default_rng(seed).choice(len(every), count, replace=False))]
    return every.astype(np.float32)


def _window(wave: np.ndarray, n: int, padding: str) -> np.ndarray:
    """The centred window of ``n`` samples of a clip (padded when shorter)."""
    if len(wave) <= n:
        return padded_window(np.asarray(wave, dtype=np.float32), n, padding)
    start = (len(wave) - n) // 2
    return np.asarray(wave[start : start + n], dtype=np.float32)
