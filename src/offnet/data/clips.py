"""Clip datasets over :class:`~offnet.data.records.VideoRecord` lists, and the data-loader factory.

:class:`ClipDataset` turns record ``i`` into ``(clip, label)``:

* ``clip`` is ``(T, C, H, W)`` float32 for one crop, ``(crops, T, C, H, W)`` for multi-crop testing, with
  ``C = offnet.modalities.MODALITIES[modality].data_channels`` — the ``new_length`` frames of a segment
  stacked channels-first in frame order: rgb 3; flow 10 interleaved ``x1, y1, …, x5, y5``; rawoff 15
  (5 RGB frames); rgbdiff 18 (6 RGB frames).
* Video files and frame folders are both read (``record.path`` a folder = frame folder). Flow is read
  only from frame folders (``flow_x_*.jpg`` / ``flow_y_*.jpg``).

Reproducibility: every sample draws from its own ``numpy.random.Generator`` seeded by
``(seed, epoch, index)``, so a run gives the same clips whatever the number of workers or the order in
which they fetch. Call :func:`set_epoch` (or ``dataset.set_epoch`` and ``sampler.set_epoch``) before
each epoch; loaders from :func:`make_loader` re-create their workers every epoch, so the new epoch
reaches them.

Resuming: :class:`ResumableSampler` (a ``DistributedSampler``, also used on one process) can start an
epoch at batch ``k``: it yields exactly the indices that epoch would have yielded after its first
``k`` batches, so an interrupted epoch continues as if it had never stopped.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from offnet.data.decode import (
    VideoDecodeError,
    count_flow_frames,
    count_frames,
    read_flow_frames,
    read_frames,
)
from offnet.data.records import VideoRecord
from offnet.data.sampling import Sampler
from offnet.modalities import get_modality

__all__ = ["ClipDataset", "ResumableSampler", "make_loader", "set_epoch", "sample_rng"]

log = logging.getLogger(__name__)

OnBadVideo = Literal["fail", "skip"]
_MAX_SKIPS = 20


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` in ``epoch`` (independent streams via ``SeedSequence``)."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, index]))


class ClipDataset(Dataset):
    """``(clip, label)`` per record: sample segments, decode their frames, transform the clip.

    Args:
        records: the videos (``VideoRecord.path`` a video file or a frame folder).
        modality: ``"rgb"``, ``"flow"``, ``"rawoff"`` or ``"rgbdiff"`` (:mod:`offnet.modalities`).
        sampler: ``sampler(num_frames, rng) -> (T, new_length)`` frame indices
            (:func:`offnet.data.sampling.make_sampler`); ``new_length`` must match the modality.
        transform: ``transform(clip (N, H, W, C) uint8, rng) -> (N, C, h, w)`` float tensor, or
            ``(crops, N, C, h, w)`` (:func:`offnet.data.transforms.build_transform`).
        seed: base seed of the per-sample generators.
        test_crops: crops the transform produces (1, or 3 / 10 for multi-crop testing).
        on_bad_video: ``"fail"`` raises :class:`VideoDecodeError` naming the file and the record's source
            line; ``"skip"`` logs a warning and returns the next readable record instead (``index + 1``,
            ``index + 2``, … with that record's own generator), remembering bad videos for the rest of the
            process (per worker). Skipping changes the label mix slightly; use it for long runs on
            datasets with a few damaged files, after ``offnet data check`` has listed them.
        flip_labels: training only: mirror half of the clips left-right (before ``transform``; flow also
            inverts x) and give a mirrored clip of label ``k`` the label ``flip_labels[k]``
            (:func:`offnet.data.labelmaps.flip_permutation`): the flip for direction-sensitive classes.
        reverse_labels: training only: play half of the clips of label ``k`` backwards (segments and the
            frames within each in reverse order) as label ``reverse_labels[k]``; ``-1`` never reverses
            that class (:func:`offnet.data.labelmaps.reversal_labels`). Not for flow (its vectors would
            have to change sign and frame).
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        *,
        modality: str,
        sampler: Sampler | Callable[[int, np.random.Generator], np.ndarray],
        transform: Callable[[np.ndarray, np.random.Generator], torch.Tensor],
        seed: int,
        test_crops: int = 1,
        on_bad_video: OnBadVideo = "fail",
        flip_labels: Sequence[int] | None = None,
        reverse_labels: Sequence[int] | None = None,
    ) -> None:
        self.records = list(records)
        self.modality = get_modality(modality)
        self.flip_labels = tuple(int(k) for k in flip_labels) if flip_labels is not None else None
        if self.flip_labels is not None:
            bad = [r.label for r in self.records if not 0 <= r.label < len(self.flip_labels)]
            if bad or sorted(self.flip_labels) != list(range(len(self.flip_labels))):
                raise ValueError(f"flip_labels must be a permutation of the {len(self.flip_labels)} labels and cover "
                                 f"every record's label; got {self.flip_labels}")
        self.reverse_labels = tuple(int(k) for k in reverse_labels) if reverse_labels is not None else None
        if self.reverse_labels is not None:
            if self.modality.kind == "flow":
                raise ValueError("reverse_labels cannot reverse flow clips (their vectors would change sign); "
                                 "use it with rgb, rawoff or rgbdiff")
            n = len(self.reverse_labels)
            if any(not 0 <= r.label < n for r in self.records) or any(not -1 <= k < n for k in self.reverse_labels):
                raise ValueError(f"reverse_labels must give a label or -1 for each of the {n} labels and cover "
                                 f"every record's label; got {self.reverse_labels}")
        self.sampler = sampler
        self.transform = transform
        self.seed = int(seed)
        self.test_crops = int(test_crops)
        self.epoch = 0
        if on_bad_video not in ("fail", "skip"):
            raise ValueError(f"on_bad_video must be 'fail' or 'skip'; got {on_bad_video!r}")
        self.on_bad_video = on_bad_video
        if self.test_crops < 1:
            raise ValueError(f"test_crops must be >= 1; got {test_crops}")
        new_length = getattr(sampler, "new_length", None)
        if new_length is not None and new_length != self.modality.frames_per_segment:
            raise ValueError(
                f"modality {self.modality.name!r} reads {self.modality.frames_per_segment} frames per segment "
                f"but the sampler's new_length is {new_length}; build the sampler with "
                f"new_length={self.modality.frames_per_segment}"
            )
        if self.modality.kind == "flow":
            for rec in self.records:
                if not rec.path.is_dir():
                    where = f" ({rec.source})" if rec.source else ""
                    raise ValueError(
                        f"flow modality reads flow_x_/flow_y_ images from frame folders, but {rec.path}{where} "
                        "is not a folder: extract flow first with `offnet extract-flow`"
                    )
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Select the per-sample random streams of ``epoch``."""
        self.epoch = int(epoch)

    def num_frames(self, record: VideoRecord) -> int:
        """Frames available to the sampler: the record's count if given, else counted (cached)."""
        if record.num_frames is not None:
            return record.num_frames
        if self.modality.kind == "flow":
            return count_flow_frames(record.path)
        return count_frames(record.path)

    def _load(self, index: int) -> tuple[torch.Tensor, int]:
        record = self.records[index]
        rng = sample_rng(self.seed, self.epoch, index)
        idx = np.asarray(self.sampler(self.num_frames(record), rng))  # (T, n)
        label = record.label
        if self.reverse_labels is not None and rng.random() < 0.5 and self.reverse_labels[label] >= 0:
            idx = idx[::-1, ::-1]  # the clip played backwards
            label = self.reverse_labels[label]
        T, n = idx.shape
        flat = idx.reshape(-1).tolist()  # (T*n,)
        if self.modality.kind == "flow":
            frames = read_flow_frames(record.path, flat)  # (T*n, H, W, 2)
        else:
            frames = read_frames(record.path, flat)  # (T*n, H, W, 3)
        if self.flip_labels is not None and rng.random() < 0.5:
            frames = np.ascontiguousarray(frames[:, :, ::-1])  # mirror left-right
            if self.modality.kind == "flow":
                frames[..., 0] = 255 - frames[..., 0]  # x flow changes sign (stored around 128)
            label = self.flip_labels[label]
        x = self.transform(frames, rng)  # (T*n, c, h, w) or (K, T*n, c, h, w)
        if self.test_crops == 1:
            if x.dim() != 4:
                raise ValueError(f"the transform returned shape {tuple(x.shape)}; test_crops=1 needs (N, C, H, W)")
            h, w = x.shape[-2:]
            clip = x.reshape(T, n * x.shape[1], h, w)  # (T, C, H, W)
        else:
            if x.dim() != 5 or x.shape[0] != self.test_crops:
                raise ValueError(
                    f"the transform returned shape {tuple(x.shape)}; test_crops={self.test_crops} needs "
                    f"({self.test_crops}, N, C, H, W): build it with crops={self.test_crops}"
                )
            K, _, c, h, w = x.shape
            clip = x.reshape(K, T, n * c, h, w)  # (crops, T, C, H, W)
        if clip.shape[-3] != self.modality.data_channels:
            raise ValueError(
                f"{record.path}: clip has {clip.shape[-3]} channels per segment, modality "
                f"{self.modality.name!r} expects {self.modality.data_channels}"
            )
        return clip, label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        tried = 0
        i = int(index)
        while True:
            if i not in self._bad:
                try:
                    return self._load(i)
                except (VideoDecodeError, FileNotFoundError) as exc:
                    record = self.records[i]
                    where = f" (from {record.source})" if record.source else ""
                    if self.on_bad_video == "fail":
                        raise VideoDecodeError(
                            f"cannot read sample {i}{where}: {exc} [set on_bad_video='skip' to skip unreadable videos]"
                        ) from exc
                    log.warning("skipping unreadable video %s%s: %s", record.path, where, exc)
                    self._bad.add(i)
            tried += 1
            if tried > min(_MAX_SKIPS, len(self.records)):
                raise VideoDecodeError(
                    f"{tried} videos in a row around sample {index} are unreadable; check the dataset "
                    "with `offnet data check`"
                )
            i = (i + 1) % len(self.records)


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that can start an epoch at batch ``k`` (deterministic resume).

    The order of an epoch depends only on ``(seed, epoch)`` (and ``rank`` / ``num_replicas``).
    :meth:`set_start_batch` drops this process's first ``k * batch_size`` indices of the current epoch;
    :meth:`set_epoch` resets the start to 0, so call it first: ``set_epoch(e); set_start_batch(k)``.
    """

    def __init__(self, dataset: Dataset, *, batch_size: int, **kwargs) -> None:
        super().__init__(dataset, **kwargs)
        self.batch_size = int(batch_size)
        self.start_index = 0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.start_index = 0

    def set_start_batch(self, batch: int) -> None:
        """Continue the current epoch after its first ``batch`` batches."""
        if batch < 0:
            raise ValueError(f"start batch must be >= 0; got {batch}")
        self.start_index = min(int(batch) * self.batch_size, self.num_samples)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start_index :])

    def __len__(self) -> int:
        return self.num_samples - self.start_index


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker from the loader's generator; give numpy / random (third-party code) the same.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)  # libraries outside offnet may use the global RNGs
    random.seed(seed)


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    seed: int,
    distributed: bool = False,
    drop_last: bool = False,
    pin_memory: bool = False,
    start_batch: int = 0,
    epoch: int = 0,
) -> DataLoader:
    """A ``DataLoader`` with a :class:`ResumableSampler` (distributed over ranks when ``distributed``).

    Batches are ``(B, T, C, H, W)`` clips and ``(B,)`` labels. ``epoch`` / ``start_batch`` set where
    iteration begins (resume). Workers are seeded from ``seed`` and are not persistent, so
    :func:`set_epoch` between epochs reaches them. ``distributed=True`` needs an initialised
    ``torch.distributed`` process group (rank and world size come from it).
    """
    if batch_size < 1 or num_workers < 0:
        raise ValueError(f"batch_size must be >= 1 and num_workers >= 0; got {batch_size}, {num_workers}")
    kwargs = {} if distributed else {"num_replicas": 1, "rank": 0}
    sampler = ResumableSampler(
        dataset, batch_size=batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, **kwargs
    )
    generator = torch.Generator()
    generator.manual_seed(seed)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        generator=generator,
        persistent_workers=False,
    )
    set_epoch(loader, epoch, start_batch=start_batch)
    return loader


def set_epoch(loader: DataLoader, epoch: int, *, start_batch: int = 0) -> None:
    """Point a :func:`make_loader` loader (sampler and dataset) at ``epoch``, from batch ``start_batch``."""
    sampler = loader.sampler
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)
    if isinstance(sampler, ResumableSampler):
        sampler.set_start_batch(start_batch)
    elif start_batch:
        raise ValueError("start_batch needs a loader built by make_loader (ResumableSampler)")
    dataset_set_epoch = getattr(loader.dataset, "set_epoch", None)
    if dataset_set_epoch is not None:
        dataset_set_epoch(epoch)
