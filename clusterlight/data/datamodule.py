"""One LightningDataModule for every stage: splits, imbalance, cached audio, and the clip -> cluster map."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from functools import cached_property

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, Subset

from clusterlight import distributed
from clusterlight.clusters import ClusterAssignments
from clusterlight.data.array_store import VERIFY_MODES
from clusterlight.data.audio import WaveformStore, load_waveforms, usable_cores
from clusterlight.data.cropping import PADDING_MODES
from clusterlight.data.dataset import ClipDataset
from clusterlight.data.imbalance import ratio_counts, subsample_to_ratio
from clusterlight.data.logmel_cache import FEATURE_PADDING, LogMelStore, load_logmel
from clusterlight.data.logmel_cache import cache_key as logmel_key  # beside audio's cache_key
from clusterlight.data.mixing import BatchMix
from clusterlight.data.records import Clip, DataError
from clusterlight.data.resident import RESIDENT_PADDING, ResidentWaveforms
from clusterlight.data.sample_codec import check_cache_dtype, feature_dtype
from clusterlight.data.sampling import (
    EpochSeeded,
    EvaluationShard,
    OversamplingSampler,
    ShuffleSampler,
    loader_seed,
)
from clusterlight.data.sources import ClipSource, check_duplicates
from clusterlight.data.splits import group_split, nested_fraction
from clusterlight.data.synth import SyntheticSource
from clusterlight.features import LogMel

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


class AudioDataModule(LightningDataModule):
    """Clips from a :class:`ClipSource`, mapped to ``classes``, split, imbalanced, decoded once.

    Args:
        source: where the clips come from (default: the built-in synthetic dataset).
        classes: the ordered class list; default: the sorted labels after ``class_map``.
        class_map: renames/pools labels, e.g. ``{siren: background}``; the key ``"*"`` maps
            every label not named otherwise.
        train_folds, val_folds, test_folds: fold (or split) column values of each split.
            ``val_folds: null`` carves ``val_fraction`` of the training folds, group-aware.
            A source without folds is split at random (group-aware) by the fractions.
        val_part: with ``val_folds: null``, take part ``val_part`` of a fixed (seed-independent)
            group-aware partition of the training folds into ``round(1 / val_fraction)`` parts as
            validation instead of a seeded carve: runs with ``val_part = 0 .. n-1`` are an n-fold
            cross-validation that puts every training-fold clip in validation exactly once.
        train_fraction: keep this share, in (0, 1], of each class's training clips (after validation
            is carved out; validation and test untouched), for a data-size curve: whole source
            recordings (groups) but for at most one per class. Of a given training split the subset
            depends on the clips alone, never on ``seed`` (only a seeded validation carve changes the
            split itself), and it is nested (the 25% subset lies inside the 50% one); see
            :func:`~clusterlight.data.splits.nested_fraction`.
            It is taken before ``class_ratio``, which then subsamples it (with ``seed``) as it would the
            whole training split, so every fraction keeps the ratio.
        class_ratio: subsample the training split to this ratio (largest feasible counts).
        seed: seeds the ratio subsample, the random splits, shuffling and k-means.
        sample_rate, duration, padding: every clip is resampled and cropped/padded to
            ``duration`` seconds; ``padding`` is ``loop``, ``noise`` or ``zero``.
        sampler: ``shuffle`` or ``oversample`` (class-balanced draws with replacement).
        on_bad_file: ``error`` or ``skip`` (skipped files are counted and named in the log).
        verify_cache: how an existing waveform cache is checked before use: ``size`` (default; byte
            sizes, array headers, offsets: cheap, but blind to same-size garbage in the waveform
            bytes and to audio rewritten with unchanged size and modification time) or ``full``
            (also the checksums of the cache arrays and of every audio file, and finite values:
            reads everything once, shard by shard in ``decode_workers`` processes). A damaged shard is
            rebuilt alone, any other problem rebuilds the cache, with a warning.
        decode_workers: processes that decode audio into the waveform cache and verify it (default:
            the usable cores). The cache is the same bytes whatever their number.
        cache_dtype: how the waveform cache stores samples: ``float32`` (default, exact), ``float16``
            or ``int16`` (half the bytes; exact for 16-bit PCM at its native rate, round-trip rules in
            :mod:`~clusterlight.data.sample_codec`). The log-mel feature cache is float16 unless this
            is ``float32``. Batches are float32 either way.
        min_clip_seconds: clips shorter than this (after decoding), and all-zero clips, are counted
            and named in one warning at set-up (kept, not errors).
        cluster_size: target clips per cluster (default: the smallest training class's count).
        cluster_every_n_epochs: rebuild the clusters every N training epochs.
        kmeans_iters: Lloyd iterations per rebuild.
        balanced_clusters: split each class into clusters of equal size (k-means whose assignment
            step caps every cluster at ``ceil(n_c / k_c)`` clips) instead of plain k-means, whose
            clusters of a large class range from single clips to several times the target size.
            These four configure ``self.clusters`` (:class:`~clusterlight.clusters.ClusterAssignments`),
            which holds each training clip's cluster id and goes into checkpoints.
        waveforms_on_device: copy the decoded waveforms to the training device once and crop/pad
            batches there (``loop`` or ``zero`` padding); the loaders then carry only indices.
        mixing: an in-batch augmentation of training batches (:class:`BackgroundMix`,
            :class:`WithinClusterMix`), applied on the device; never to validation, test or the
            embedding pass that re-clusters.
        feature_cache: compute each clip's log-mel once, with the model's front-end settings, into a
            memory-mapped cache beside the waveform cache, and feed batches of log-mel windows (the
            front end then only pools and applies SpecAugment): no STFT per batch. Windows match the
            waveform path's exactly for clips as long as ``duration``, and up to their edge frames
            otherwise (:mod:`~clusterlight.data.logmel_cache`). ``mixing`` and ``padding: noise`` need
            waveforms: with either, training keeps the waveform path (a warning says so). The front end
            is handed in with :meth:`use_frontend` (``clusterlight fit`` / ``experiment`` hand the model's
            when they build both; a clusterlight module hands its own in ``prepare_data`` and ``setup``).
    """

    def __init__(
        self,
        source: ClipSource | None = None,
        classes: list[str] | None = None,
        class_map: dict[str, str] | None = None,
        train_folds: Sequence[str | int] | None = ("train",),
        val_folds: Sequence[str | int] | None = ("val",),
        test_folds: Sequence[str | int] | None = ("test",),
        val_fraction: float = 0.15,
        val_part: int | None = None,
        test_fraction: float = 0.15,
        class_ratio: dict[str, float] | None = None,
        train_fraction: float = 1.0,
        seed: int = 0,
        sample_rate: int = 16000,
        duration: float = 2.0,
        padding: str = "loop",
        batch_size: int = 64,
        num_workers: int = 0,
        sampler: str = "shuffle",
        cache_dir: str = ".cache",
        on_bad_file: str = "error",
        verify_cache: str = "size",
        decode_workers: int | None = None,
        cache_dtype: str = "float32",
        min_clip_seconds: float = 0.05,
        cluster_size: int | None = None,
        cluster_every_n_epochs: int = 1,
        kmeans_iters: int = 20,
        balanced_clusters: bool = False,
        waveforms_on_device: bool = False,
        mixing: BatchMix | None = None,
        feature_cache: bool = False,
    ) -> None:
        super().__init__()
        _check_input_settings(padding, waveforms_on_device, feature_cache, sampler, verify_cache)
        _check_amounts(train_fraction, min_clip_seconds, decode_workers)
        check_cache_dtype(cache_dtype)
        self.source = source or SyntheticSource(root=f"{cache_dir}/synth")
        self.classes, self.class_map = list(classes) if classes else None, dict(class_map or {})
        self.folds = {
            name: None if f is None else [str(x) for x in f]
            for name, f in zip(SPLITS, (train_folds, val_folds, test_folds))
        }
        self.val_fraction, self.val_part, self.test_fraction = val_fraction, val_part, test_fraction
        self._check_val_part()
        self.class_ratio, self.train_fraction, self.seed = class_ratio, train_fraction, seed
        self.sample_rate, self.duration, self.padding = sample_rate, duration, padding
        self.batch_size, self.num_workers, self.sampler = batch_size, num_workers, sampler
        self.cache_dir, self.on_bad_file = cache_dir, on_bad_file
        self.verify_cache, self.min_clip_seconds = verify_cache, min_clip_seconds
        self.decode_workers, self.cache_dtype = decode_workers, cache_dtype
        self.clusters = ClusterAssignments(
            cluster_size, cluster_every_n_epochs, kmeans_iters, balanced_clusters, seed
        )
        self.waveforms_on_device, self.mixing = waveforms_on_device, mixing
        self.feature_cache = feature_cache
        self.frontend: LogMel | None = None  # whose log-mel the feature cache stores: use_frontend
        self.logmel: LogMelStore | None = None
        self._clips: list[Clip] | None = None
        self.store: WaveformStore | None = None
        self.resident: ResidentWaveforms | None = None
        self.datasets: dict[str, ClipDataset] = {}
        self.counts: dict[str, dict[str, int]] = {}

    def _check_val_part(self) -> None:
        if self.val_part is not None and not 0 <= self.val_part < self.val_parts:
            raise DataError(
                f"data.val_part must be in [0, {self.val_parts}) for val_fraction {self.val_fraction}, "
                f"got {self.val_part}"
            )

    # ---- metadata -------------------------------------------------------------------
    def labelled_clips(self) -> list[Clip]:
        """All clips of the source with labels mapped; checks no file is listed twice and every label
        is a known class."""
        if self._clips is None:
            raw = self.source.clips()
            check_duplicates(raw)
            mapped = [
                Clip(c.path, self.class_map.get(c.label, self.class_map.get("*", c.label)), c.fold, c.group)
                for c in raw
            ]
            known = set(self.classes or [])
            if self.classes:
                unknown = [c for c in mapped if c.label not in known]
                if unknown:
                    bad = Counter(c.label for c in unknown)
                    raise DataError(
                        f"label {unknown[0].label!r} of {unknown[0].path} is not in data.classes "
                        f"{self.classes} "
                        f"({sum(bad.values())} clip(s) with labels {sorted(bad)}); add it to "
                        "classes or map it with class_map"
                    )
            self._clips = mapped
        return self._clips

    @cached_property
    def class_names(self) -> list[str]:
        """``classes``, or the sorted mapped labels (computed once: training batches read it)."""
        return self.classes or sorted({c.label for c in self.labelled_clips()})

    @property
    def val_parts(self) -> int:
        """How many cross-validation parts ``val_fraction`` makes (see ``val_part``)."""
        return max(2, round(1 / self.val_fraction)) if self.val_fraction > 0 else 1

    @property
    def n_samples(self) -> int:
        """Samples in every clip window (``duration`` at ``sample_rate``)."""
        return int(round(self.sample_rate * self.duration))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    # ---- Lightning hooks ------------------------------------------------------------
    def prepare_data(self) -> None:
        """Once per node (Lightning calls it on local rank 0 before ``setup`` on every process): generate
        the synthetic dataset, check the metadata, build the waveform cache, and the log-mel cache when
        batches read it and the front end is known; under DDP the other ranks then open the caches
        instead of each building them. ``setup`` in this process uses what was opened here."""
        self.source.clips()
        if self.store is None:
            self.check_metadata()
            self.store = self._load_waveforms()
        if self._feature_path() and self.frontend is not None:
            self._attach_logmel(self._feature_frontend())

    def check_metadata(self) -> None:
        """Every check the manifest alone allows, before any audio is decoded: duplicates and labels
        (``labelled_clips``), the split, a class without training clips, an impossible ``class_ratio``.
        ``setup`` repeats the last three on the clips kept after decoding (``on_bad_file: skip``)."""
        clips = self.labelled_clips()
        parts = self._split(clips)
        self._check_train_counts(Counter(clips[i].label for i in parts["train"]))

    def _check_train_counts(self, counts: Counter) -> None:
        available = {c: counts.get(c, 0) for c in self.class_names}
        empty = [c for c, n in available.items() if n == 0]
        if empty:
            raise DataError(
                f"class(es) {empty} have no training clips (train folds {self.folds['train']}); "
                "every class needs some"
            )
        if self.class_ratio:
            ratio_counts(available, self.class_ratio)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            if self.logmel is not None and self._feature_path():  # set up again, maybe for another model
                self._attach_logmel(self._feature_frontend())
            return
        if self.store is None:  # not opened by prepare_data in this process
            self.check_metadata()
            self.store = self._load_waveforms()
        clips = self.store.clips
        parts = self._split(clips)
        self._check_train_counts(Counter(clips[i].label for i in parts["train"]))
        if self.class_ratio:
            train = parts["train"]
            keep = subsample_to_ratio(
                [clips[i].label for i in train], self.class_ratio, self.seed, self.class_names
            )
            parts["train"] = [train[i] for i in keep]
        index = {name: i for i, name in enumerate(self.class_names)}
        if self._feature_path() and (self.frontend is not None or self.trainer is None):
            self._attach_logmel(self._feature_frontend())  # else the module hands it in: use_frontend
        for name, rows in parts.items():
            labels = np.array([index[clips[i].label] for i in rows], dtype=np.int64)
            self.datasets[name] = ClipDataset(
                self.store,
                np.asarray(rows, dtype=np.int64),
                labels,
                self.n_samples,
                self.padding,
                name == "train",
                not self.waveforms_on_device,
                self.logmel,
            )
            self.counts[name] = {c: int((labels == k).sum()) for c, k in index.items()}
        self.clusters.set_training_clips(self.train_labels, self.class_names)
        for name in SPLITS:
            rank_zero_info(
                f"[clusterlight] {name:5s} clips per class: {self.counts[name]} (total "
                f"{sum(self.counts[name].values())})"
            )

    def _feature_path(self) -> bool:
        """Whether batches carry cached log-mel (``feature_cache``, unless something needs waveforms)."""
        if not self.feature_cache:
            return False
        needs_waves = []
        if self.mixing is not None:
            needs_waves.append(f"data.mixing ({type(self.mixing).__name__}) mixes waveforms")
        if self.padding not in FEATURE_PADDING:
            needs_waves.append(f"data.padding {self.padding!r} draws fresh noise per crop")
        if needs_waves:
            rank_zero_warn(
                f"data.feature_cache is on but {' and '.join(needs_waves)}: batches carry waveforms, "
                "the log-mel is computed per batch"
            )
        return not needs_waves

    def _attach_logmel(self, frontend) -> None:
        """Open (or build) the log-mel cache of ``frontend`` and hand it to the datasets, unless the one
        they have is of the same front-end settings already."""
        store = self._opened_store()
        if self.logmel is not None and self.logmel.key == logmel_key(
            store, frontend, self.n_samples, self.padding, feature_dtype(self.cache_dtype)
        ):
            return
        self.logmel = load_logmel(
            store,
            frontend,
            self.n_samples,
            self.padding,
            self.cache_dir,
            self.verify_cache,
            self.cache_dtype,
            self.decode_workers or usable_cores(),
        )
        for dataset in self.datasets.values():
            dataset.logmel = self.logmel

    def _opened_store(self) -> WaveformStore:
        """The waveform store ``prepare_data`` or ``setup`` opened."""
        if self.store is None:
            raise DataError("the waveforms are not opened yet: call prepare_data() or setup() first")
        return self.store

    def _load_waveforms(self) -> WaveformStore:
        return load_waveforms(
            self.labelled_clips(),
            self.sample_rate,
            self.cache_dir,
            self.on_bad_file,
            self.verify_cache,
            self.min_clip_seconds,
            self.decode_workers,
            self.cache_dtype,
        )

    def use_frontend(self, frontend: LogMel) -> None:
        """The front end whose log-mel the feature cache stores (the model's): kept for ``prepare_data`` /
        ``setup`` and, once the waveforms are opened with ``feature_cache`` on, its cache opened (or
        built) at once."""
        self.frontend = frontend
        if (self.datasets or self.store is not None) and self._feature_path():
            self._attach_logmel(self._feature_frontend())

    def _feature_frontend(self) -> LogMel:
        frontend = self.frontend
        if frontend is None:
            raise DataError(
                "data.feature_cache needs the model's front end: set the DataModule up through a Trainer "
                "fitting a clusterlight module, or call dm.use_frontend(model.frontend) first"
            )
        if frontend.sample_rate != self.sample_rate:
            raise DataError(
                f"data.sample_rate ({self.sample_rate}) and model.frontend.sample_rate "
                f"({frontend.sample_rate}) differ: the cached log-mel would use the wrong mel filters"
            )
        return frontend

    def _split(self, clips: list[Clip]) -> dict[str, list[int]]:
        """Row indices of each split; the training split reduced to ``train_fraction``."""
        parts = self._split_all(clips)
        if self.train_fraction < 1:
            train = parts["train"]
            keep = nested_fraction([clips[i] for i in train], self.train_fraction)
            parts["train"] = [train[i] for i in keep]
        return parts

    def _split_all(self, clips: list[Clip]) -> dict[str, list[int]]:
        if self.val_part is not None and (
            self.folds["val"] is not None or all(c.fold is None for c in clips)
        ):
            raise DataError(
                "data.val_part needs val_folds: null and a source with folds (it partitions the "
                "training folds)"
            )
        if all(c.fold is None for c in clips):
            fr = [1 - self.val_fraction - self.test_fraction, self.val_fraction, self.test_fraction]
            return dict(zip(SPLITS, group_split(clips, fr, self.seed)))
        parts = {}
        for name in SPLITS:
            folds = self.folds[name]
            parts[name] = [] if folds is None else [i for i, c in enumerate(clips) if c.fold in folds]
        if not parts["train"]:
            found = sorted({str(c.fold) for c in clips})
            raise DataError(
                f"data.train_folds {self.folds['train']} match no clip; the source's folds are {found}"
            )
        if self.folds["val"] is None:
            pool = [clips[i] for i in parts["train"]]
            if self.val_part is None:
                train, val = group_split(pool, [1 - self.val_fraction, self.val_fraction], self.seed)
            else:
                cv_parts = group_split(pool, [1 / self.val_parts] * self.val_parts, seed=0)
                val = cv_parts[self.val_part]
                train = sorted(i for k, f in enumerate(cv_parts) if k != self.val_part for i in f)
            parts["train"], parts["val"] = (
                [parts["train"][i] for i in train],
                [parts["train"][i] for i in val],
            )
        return parts

    def _loader(self, dataset, **kwargs) -> DataLoader:
        """A loader with its own generator (evaluation and embedding passes: a fixed one), so that
        making its iterator never draws from the global RNG that dropout, crops and mixing use."""
        kwargs.setdefault("generator", torch.Generator().manual_seed(self.seed))
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        if self.feature_cache and self.logmel is None and self.frontend is None and self._feature_path():
            self._feature_frontend()  # no module handed its front end in: says how to give it
        ds = self.datasets["train"]
        rank, world = self._rank_world()
        sampler: EpochSeeded
        if self.sampler == "oversample":
            sampler = OversamplingSampler(torch.from_numpy(ds.labels), rank, world, self.seed)
        else:
            sampler = ShuffleSampler(ds, rank, world, self.seed)
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        sampler.loader_generator = torch.Generator().manual_seed(loader_seed(self.seed, epoch))
        return self._loader(ds, sampler=sampler, generator=sampler.loader_generator)

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.datasets["val"])

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.datasets["test"])

    def predict_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.datasets["test"])

    def _evaluation_loader(self, dataset: ClipDataset) -> DataLoader:
        """In order; under DDP each rank takes its shard, no clip repeated (``EvaluationShard``)."""
        rank, world = self._rank_world()
        sampler = EvaluationShard(dataset, rank, world) if world > 1 else None
        return self._loader(dataset, sampler=sampler)

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (
            (trainer.global_rank, trainer.world_size) if trainer is not None else distributed.rank_and_world()
        )

    def load_inputs(self, batch: dict, device: torch.device) -> torch.Tensor:
        """The batch's front-end input on ``device``: cached log-mel or waveforms moved there, or waveforms
        cropped from the resident copy."""
        for key in ("logmel", "wave"):
            if key in batch:
                return batch[key].to(device, non_blocking=True)
        if self.resident is None or self.resident.device != torch.device(device):
            self.resident = ResidentWaveforms(self._opened_store(), device)
            rank_zero_info(
                f"[clusterlight] decoded waveforms resident on {device}: "
                f"{self.resident.nbytes / 2**20:.0f} MiB"
            )
        return self.resident.crop(
            batch["row"], batch["start"], self.datasets["train"].n_samples, self.padding
        )

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Crop resident waveforms; attach each training clip's cluster id, looked up on the device (no host
        sync); mix training batches."""
        if "wave" not in batch and "logmel" not in batch:
            batch["wave"] = self.load_inputs(batch, batch["label"].device)
        training = self.trainer is not None and self.trainer.training
        if self.clusters.built and training:
            batch["cluster"] = self.clusters.lookup(batch["index"])
        if self.mixing is not None and training:
            batch["wave"] = self.mixing(batch, self.class_names)
        return batch

    # ---- clustering (the state lives in ``self.clusters``) ---------------------------------
    @property
    def train_labels(self) -> torch.Tensor:
        """Class index of each training clip, in training-split order (from metadata, never decoded)."""
        return torch.from_numpy(self.datasets["train"].labels)

    def embedding_dataloader(self) -> DataLoader:
        """This rank's shard (``rank::world``) of the training clips, deterministic crops, for
        re-clustering."""
        train = self.datasets["train"]
        ds = ClipDataset(
            train.store,
            train.rows,
            train.labels,
            train.n_samples,
            train.padding,
            False,
            train.with_wave,
            train.logmel,
        )
        rank, world = self._rank_world()
        return self._loader(Subset(ds, range(rank, len(ds), world)))

    def state_dict(self) -> dict:
        return self.clusters.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.clusters.load_state_dict(state)


def _check_input_settings(
    padding: str, waveforms_on_device: bool, feature_cache: bool, sampler: str, verify_cache: str
) -> None:
    """Refuse input-path settings that cannot work together (``AudioDataModule`` arguments)."""
    if padding not in PADDING_MODES:
        raise DataError(f"data.padding must be one of {PADDING_MODES}, got {padding!r}")
    if waveforms_on_device and padding not in RESIDENT_PADDING:
        raise DataError(
            f"data.waveforms_on_device supports padding {RESIDENT_PADDING}, got data.padding {padding!r}"
        )
    if feature_cache and waveforms_on_device:
        raise DataError(
            "data.feature_cache and data.waveforms_on_device are two different input paths; set one"
        )
    if sampler not in ("shuffle", "oversample"):
        raise DataError(f"data.sampler must be 'shuffle' or 'oversample', got {sampler!r}")
    if verify_cache not in VERIFY_MODES:
        raise DataError(f"data.verify_cache must be one of {VERIFY_MODES}, got {verify_cache!r}")


def _check_amounts(train_fraction: float, min_clip_seconds: float, decode_workers: int | None) -> None:
    if decode_workers is not None and decode_workers < 1:
        raise DataError(
            f"data.decode_workers must be at least 1 (or null: the usable cores), got {decode_workers}"
        )
    if isinstance(train_fraction, bool) or not (
        isinstance(train_fraction, (int, float)) and 0 < train_fraction <= 1
    ):
        raise DataError(f"data.train_fraction must be a number in (0, 1], got {train_fraction!r}")
    if not min_clip_seconds >= 0:
        raise DataError(f"data.min_clip_seconds must be >= 0, got {min_clip_seconds!r}")
