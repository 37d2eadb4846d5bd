"""Training data from a run config: the split, the held-out validation part, clip datasets.

The validation part is held out of the **training** split (never the test split) by
:func:`split_train_val`, which both the trainer (best checkpoint) and ``offnet test --subset val`` /
fusion-weight search use, so they see exactly the same videos.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch.utils.data import Dataset

from ..config import Config
from ..data.records import VideoRecord
from ..modalities import get_modality

if TYPE_CHECKING:
    from ..models import InputSpec

__all__ = [
    "TrainData", "split_train_val", "load_train_records", "check_train_records", "build_stage_data",
    "build_train_data", "LeadingSegments",
]

log = logging.getLogger(__name__)

_GROUP = re.compile(r"_g(\d+)_c\d+$")  # UCF-101 / synthetic names: v_<Class>_g<group>_c<clip>


@dataclass
class TrainData:
    """What the loop trains and validates on.

    ``train`` / ``val`` yield ``(clip (T, C, H, W), label)``; ``names`` maps a training index to a video
    name for error messages (``None``: indices are reported instead). Objects with ``set_epoch(e)`` get
    it called at the start of every epoch (augmentation reseeding).
    """

    train: Dataset
    val: Dataset | None
    class_names: list[str]
    names: list[str] | None = None


def _group_key(record: VideoRecord) -> str:
    match = _GROUP.search(record.name)
    return f"g{match.group(1)}" if match else record.name


def split_train_val(
    records: Sequence[VideoRecord], *, fraction: float, seed: int
) -> tuple[list[VideoRecord], list[VideoRecord]]:
    """Hold out about ``fraction`` of every class of the training split: ``(train, val)``.

    Clips of one UCF-101 group (``…_gXX_cYY``, same actor and background) stay on one side, so the
    validation score is not inflated by near-duplicates. Per class, groups (or single videos when
    names carry no group) are shuffled with ``numpy.random.default_rng([seed, label])`` and taken until
    ``round(fraction × n)`` videos (at least one when ``fraction > 0`` and the class has two groups)
    are held out. The result depends only on the records, ``fraction`` and ``seed``, and keeps the
    input order within each side.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return list(records), []
    by_class: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, record in enumerate(records):
        by_class[record.label][_group_key(record)].append(i)
    held: set[int] = set()
    for label, groups in sorted(by_class.items()):
        keys = sorted(groups)
        if len(keys) < 2:
            continue  # a class with one group cannot give a video away and still train
        n = sum(len(groups[k]) for k in keys)
        target = max(1, round(fraction * n))
        order = np.random.default_rng([seed, label]).permutation(len(keys))
        taken = 0
        for j in order[:-1]:  # always leave at least one group for training
            if taken >= target:
                break
            held.update(groups[keys[j]])
            taken += len(groups[keys[j]])
    train = [r for i, r in enumerate(records) if i not in held]
    val = [r for i, r in enumerate(records) if i in held]
    return train, val


def load_train_records(config: Config) -> tuple[list[VideoRecord], list[str]]:
    """The training split's records and class names (generating the synthetic set if asked)."""
    from ..data.datasets import load_split

    d = config.data
    dataset = d.dataset
    if d.root is None:
        raise ValueError("data.root is not set; give the dataset folder, e.g. data.root=/data/UCF-101")
    if dataset == "synth" and d.synth_preset == "motion":
        from ..data.synth_motion import write_motion_dataset

        height = d.synth_height or (d.synth_size * 3 // 4) // 2 * 2
        write_motion_dataset(
            Path(d.root), classes=d.synth_classes, videos_per_class=d.synth_videos_per_class,
            seed=config.seed, width=d.synth_size, height=height, num_frames=d.synth_frames, progress=False,
        )
        dataset = "ucf101"
    elif dataset == "synth":
        from ..data.synth import write_synthetic_dataset

        write_synthetic_dataset(
            Path(d.root), classes=d.synth_classes, videos_per_class=d.synth_videos_per_class,
            seed=config.seed, size=d.synth_size, num_frames=d.synth_frames, progress=False,
        )
        dataset = "ucf101"  # the synthetic benchmark is written in the UCF-101 layout
    split = load_split(
        dataset, d.root, split=d.split, subset="train", list_file=d.train_list, class_file=d.class_file,
        frames_root=d.frames_root,
    )
    return list(split.records), list(split.class_names)


class LeadingSegments:
    """The first ``count`` segments of a test sampler's clip: ``(T, n)`` -> ``(count, n)`` frame indices.

    Consecutive segments keep the sampler's interval, so an OFF model validated on them sees the
    same Δt as at test time.
    """

    def __init__(self, sampler: Any, count: int) -> None:
        if count < 1:
            raise ValueError(f"val_segments must be >= 1, got {count}")
        self.sampler = sampler
        self.count = count
        self.new_length = sampler.new_length

    def __call__(self, num_frames: int, rng: Any = None) -> np.ndarray:
        return self.sampler(num_frames, rng)[: self.count]


def check_train_records(
    config: Config, records: list[VideoRecord]
) -> tuple[list[VideoRecord], list[VideoRecord]]:
    """Hold out the validation part and check every video once: ``(train, val)`` records.

    Unreadable or too-short videos are dropped or stop the run, per ``data.on_bad_video``.
    """
    from ..data.check import validate_records

    d = config.data
    # Without data.resize_to the test protocol's centre crop needs frames at least data.size on their shorter
    # side; refuse smaller ones here, at the start of training, not at test time.
    min_side = d.size if d.resize_to is None else None
    train_records, val_records = split_train_val(records, fraction=d.val_fraction, seed=config.seed)
    train_records, _ = validate_records(train_records, min_frames=d.min_frames, on_bad_video=d.on_bad_video,
                                        workers=max(1, d.num_workers), min_side=min_side)
    if val_records:
        val_records, _ = validate_records(val_records, min_frames=d.min_frames, on_bad_video=d.on_bad_video,
                                          workers=max(1, d.num_workers), min_side=min_side)
    log.info("training on %d videos, validating on %d", len(train_records), len(val_records))
    return train_records, val_records


def build_stage_data(
    config: Config, *, train_records: list[VideoRecord], val_records: list[VideoRecord], class_names: list[str],
    input_spec: InputSpec, stage: int | None = None,
) -> TrainData:
    """Clip datasets of one stage (its sampler and segment count, :meth:`Config.stage_settings`).

    ``stage=None`` uses the run's ``data.sampler`` / ``data.num_segments``. Training clips take random
    segments, a multi-scale crop and a flip; validation clips are the test protocol's (fixed).
    """
    from ..data.clips import ClipDataset
    from ..data.labelmaps import flip_permutation, reversal_labels
    from ..data.sampling import make_sampler
    from ..data.transforms import build_transform

    d = config.data
    sampler_name, num_segments = d.sampler, d.num_segments
    if stage is not None:
        settings = config.stage_settings(stage)
        sampler_name, num_segments = settings.sampler, settings.num_segments
    modality = get_modality(config.model.modality)
    spec = input_spec
    mean, std = spec.mean_std(modality.kind)
    # a flip with a label map mirrors in the dataset (which knows the label), not in the transform
    flip_labels = flip_permutation(d.flip_map, class_names) if d.flip and d.flip_map is not None else None
    reverse_labels = reversal_labels(d.reverse_map, class_names) if d.reverse_map is not None else None

    def dataset(recs: list[VideoRecord], *, train: bool, segments: int) -> ClipDataset:
        # Training clips take `num_segments` segments at the TEST interval L // test_segments (paper
        # Sec. 4.2: one Δt for training and testing). Validation clips are the test protocol's clips (same
        # sampler, interval and positions; one centre crop), cut to their first `val_segments` segments
        # when that is set: a cheaper validation that keeps the test interval.
        sampler: Any = make_sampler(sampler_name, num_segments=segments,
                                    new_length=modality.frames_per_segment, test=not train,
                                    test_segments=d.test_segments, interval=d.interval,
                                    interval_max=d.interval_max)  # dropped by test samplers
        if not train and segments < d.test_segments:
            sampler = LeadingSegments(sampler, segments)
        transform = build_transform(
            train=train, size=d.size, modality=modality.name, mean=mean, std=std, bgr=spec.bgr,
            scale255=spec.scale255, flip=d.flip and flip_labels is None, crops=1, scales=d.scales,
            resize_to=d.resize_to,
        )
        return ClipDataset(recs, modality=modality.name, sampler=sampler, transform=transform,
                           seed=config.seed, on_bad_video="fail", flip_labels=flip_labels if train else None,
                           reverse_labels=reverse_labels if train else None)

    return TrainData(
        train=dataset(train_records, train=True, segments=num_segments),
        val=dataset(val_records, train=False, segments=d.val_segments or d.test_segments) if val_records
        else None,
        class_names=class_names,
        names=[r.name for r in train_records],
    )


def build_train_data(
    config: Config, *, records: list[VideoRecord], class_names: list[str], input_spec: InputSpec,
    stage: int | None = None,
) -> TrainData:
    """Clip datasets for training and validation: :func:`check_train_records` then :func:`build_stage_data`.

    ``records`` / ``class_names`` come from :func:`load_train_records`; ``input_spec`` is the model's
    preprocessing (mean/std, BGR, 0–255), which lives with the backbone weights, not in the config.
    """
    train_records, val_records = check_train_records(config, records)
    return build_stage_data(config, train_records=train_records, val_records=val_records,
                            class_names=class_names, input_spec=input_spec, stage=stage)
