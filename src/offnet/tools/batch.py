"""Scoring many videos: finding them under folders, streaming one outcome per video, sharding over ranks.

:func:`find_videos` expands command-line paths: a video file or a frame folder is one video; any other
folder is searched recursively for video files (by extension, :data:`~offnet.data.listfile.VIDEO_EXTENSIONS`)
and frame folders (a folder holding ``img_*`` or ``flow_x_*`` files is one video and is not searched
further). :func:`iter_predictions` scores them in input order with loader workers, checking each video in
the worker that reads it, and yields a :class:`VideoOutcome` per video as soon as its batch is scored, so a
caller can write results while the run goes on.

Under ``torchrun`` every rank takes :func:`shard` of the list (every ``world``-th video from its rank) and
the outcomes are merged into input order at the end (:mod:`offnet.tools.results`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from offnet import interrupts
from offnet.data.listfile import VIDEO_EXTENSIONS
from offnet.data.records import VideoRecord
from offnet.tools.prediction import Prediction

Predictor = Any  # offnet.tools.predict.Predictor (not imported: predict builds on this module)

__all__ = ["VideoOutcome", "find_videos", "is_frame_folder", "iter_predictions", "shard", "shard_rank"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoOutcome:
    """What happened to one video: its scores, or why it was skipped.

    ``index`` is the video's position in the list handed to :func:`iter_predictions`; ``video`` the name
    as given or found (the key that ``--resume`` matches); exactly one of ``prediction`` / ``error`` is set.
    """

    index: int
    video: str
    prediction: Prediction | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.prediction is not None


def is_frame_folder(path: Path) -> bool:
    """A folder of extracted frames (``img_00001.jpg`` … or ``flow_x_00001.jpg`` …) is one video."""
    try:
        return path.is_dir() and any(n.startswith(("img_", "flow_x_")) for n in os.listdir(path))
    except OSError:
        return False


def _search(folder: Path) -> list[Path]:
    """Video files and frame folders under ``folder``, depth first in sorted name order; hidden entries
    (unfinished extraction folders ``.name.offnet-tmp``) are ignored."""
    found: list[Path] = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise FileNotFoundError(f"cannot list {folder}: {exc.strerror or exc}") from exc
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if entry.is_dir():
            found.extend([path] if is_frame_folder(path) else _search(path))
        elif Path(entry.name).suffix.lower() in VIDEO_EXTENSIONS:
            found.append(path)
    return found


def find_videos(paths: Sequence[str | Path]) -> list[str]:
    """Expand ``paths`` (files, frame folders, folders of videos) into video names, in order, once each.

    A file named on the command line is taken whatever its suffix; inside folders only video suffixes
    count. Raises ``FileNotFoundError`` for a path that does not exist and ``ValueError`` for a folder with
    no video in it.
    """
    out: list[str] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"video not found: {given}")
        if path.is_file() or is_frame_folder(path):
            found = [path]
        else:
            found = _search(path)
            if not found:
                raise ValueError(
                    f"no videos ({', '.join(VIDEO_EXTENSIONS)}) or frame folders under {given}; pass video "
                    "files, frame folders or folders that hold them"
                )
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                out.append(str(p))
    return out


def shard_rank() -> tuple[int, int]:
    """``(rank, world_size)`` of this process as ``torchrun`` sets them (``(0, 1)`` outside torchrun)."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={world} do not describe a process of a job; unset them "
                         "or launch with torchrun")
    return rank, world


def shard(videos: Sequence[str], rank: int, world: int) -> list[tuple[int, str]]:
    """This rank's ``(input index, video)`` pairs: every ``world``-th video starting at ``rank``.

    Interleaving keeps the shards within one video of each other in size and spreads a folder of long
    videos over all ranks.
    """
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside 0..{world - 1}")
    return [(i, v) for i, v in enumerate(videos) if i % world == rank]


class _CheckedClips(Dataset):
    """Item ``i``: ``(i, clip, None)`` or ``(i, None, reason)`` — each video is checked (as ``data check``
    does) and read in the loader worker, so one bad video costs one item, not the batch."""

    def __init__(self, clips: Any, *, min_side: int | None) -> None:
        self.clips = clips  # a ClipDataset of the test protocol
        self.min_side = min_side

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        from offnet.data.check import inspect_record
        from offnet.data.decode import VideoDecodeError

        record, bad = inspect_record(self.clips.records[index], min_side=self.min_side)
        if bad is not None:
            return index, None, str(bad)
        self.clips.records[index] = record  # frame count now known: not counted twice
        try:
            clip, _ = self.clips[index]
        except (VideoDecodeError, FileNotFoundError, OSError) as exc:
            return index, None, f"unreadable: {record.path}: {exc}"
        return index, clip, None


def _collate(items: list[tuple[int, torch.Tensor | None, str | None]]) -> list:
    return items


def iter_predictions(
    predictor: Predictor,
    videos: Sequence[str],
    *,
    indices: Sequence[int] | None = None,
    batch_size: int = 1,
    workers: int = 0,
    on_bad_video: str = "fail",
    progress: bool = False,
    progress_initial: int = 0,
    progress_total: int | None = None,
) -> Iterator[VideoOutcome]:
    """Score ``videos`` with ``predictor``'s test protocol and yield one :class:`VideoOutcome` each, in order.

    Args:
        predictor: a loaded :class:`~offnet.tools.predict.Predictor`.
        videos: video files or frame folders (:func:`find_videos` names).
        indices: the ``index`` reported for each video (default ``0 … len-1``; a shard passes input indices).
        batch_size: videos per forward pass; their clips are ``(B, [crops,] T, C, H, W)``.
        workers: loader worker processes that check, decode and transform videos.
        on_bad_video: ``fail`` raises ``ValueError`` at the first missing, unreadable, truncated or too-short
            video (outcomes before it have been yielded); ``skip`` yields it with its reason.
        progress: a progress bar over ``progress_total`` (default ``len(videos)``) videos from
            ``progress_initial``.
    """
    from offnet.engine.evaluate import _resolve_device, build_test_dataset, score_clips
    from offnet.progress import progress_bar

    if on_bad_video not in ("fail", "skip"):
        raise ValueError(f"--on-bad-video must be 'fail' or 'skip', got {on_bad_video!r}")
    if batch_size < 1 or workers < 0:
        raise ValueError(f"--batch-size must be >= 1 and --workers >= 0, got {batch_size} and {workers}")
    indices = list(range(len(videos))) if indices is None else list(indices)
    if len(indices) != len(videos):
        raise ValueError(f"{len(indices)} indices for {len(videos)} videos")
    if not videos:
        return
    records = [VideoRecord(path=Path(v).expanduser().resolve(), label=0, source=str(v)) for v in videos]
    clips = build_test_dataset(
        records, modality=predictor.model.modality.name, segments=predictor.segments, crops=predictor.crops,
        size=predictor.size, sampler=predictor.data_config.get("sampler", "off"),
        input_spec=predictor.model.input_spec, resize_to=predictor.data_config.get("resize_to"),
        flip=predictor.flip, interval=predictor.data_config.get("interval"),
    )
    min_side = predictor.size if predictor.data_config.get("resize_to") is None else None
    loader = DataLoader(_CheckedClips(clips, min_side=min_side), batch_size=batch_size, shuffle=False,
                        num_workers=workers, collate_fn=_collate)
    device = _resolve_device(predictor.device)
    model = predictor.inference_model(device)
    total = progress_total if progress_total is not None else len(videos)
    bar = progress_bar(total=total, initial=progress_initial, desc="predict", unit="video", disable=not progress)
    try:
        for items in loader:
            interrupts.check()
            good = [(i, clip) for i, clip, _ in items if clip is not None]
            scored: dict[int, Prediction] = {}
            if good:
                batch = torch.stack([clip for _, clip in good]).to(device)  # (B, [crops,] T, C, H, W)
                scores = score_clips(model, batch, flip_labels=predictor.flip_labels)  # {level: (B, K)}
                scored = _predictions(predictor, [i for i, _ in good], videos, scores)
            for i, _clip, reason in items:
                if reason is not None:
                    if on_bad_video == "fail":
                        raise ValueError(f"cannot use {videos[i]}: {reason}; fix or remove it, or pass "
                                         "--on-bad-video skip to go on without it")
                    log.warning("skipping %s", reason)
                    outcome = VideoOutcome(index=indices[i], video=str(videos[i]), error=reason)
                else:
                    outcome = VideoOutcome(index=indices[i], video=str(videos[i]), prediction=scored[i])
                bar.update(1)
                yield outcome
    finally:
        bar.close()


def _predictions(predictor: Predictor, positions: list[int], videos: Sequence[str],
                 scores: dict[str, torch.Tensor]) -> dict[int, Prediction]:
    """Per-video :class:`Prediction` of a scored batch; non-finite scores are an error naming the video."""
    model = predictor.model
    levels = {k: v.cpu().numpy().astype(np.float32) for k, v in scores.items()}  # {level: (B, K)}
    fused = levels[model.backbone_level].astype(np.float64)
    if model.final_level != model.backbone_level:
        fused = fused + levels[model.final_level]  # the paper's plain sum RGB + OFF(RGB)
    finite = np.isfinite(fused).all(axis=1) & np.all([np.isfinite(v).all(axis=1) for v in levels.values()], axis=0)
    if not finite.all():
        bad = videos[positions[int(np.flatnonzero(~finite)[0])]]
        raise ValueError(f"non-finite scores (NaN or inf) for {bad}: the weights or the input are broken")
    probs = torch.from_numpy(fused).softmax(dim=1).numpy().astype(np.float32)  # (B, K)
    return {
        pos: Prediction(video=str(videos[pos]), levels={k: v[row] for k, v in levels.items()},
                        probabilities=probs[row], class_names=predictor.class_names)
        for row, pos in enumerate(positions)
    }
