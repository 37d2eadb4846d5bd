"""Score a trained run on its dataset with the test protocol: the library behind ``offnet test``.

:func:`score_checkpoint` finds the checkpoint of a run, rebuilds its model, reads the split the run was
trained on (or the training videos it held out for validation), scores them with
:func:`offnet.engine.evaluate.evaluate` and writes ``scores.npz``, ``metrics.json`` and
``confusion.png``. The CLI only parses arguments and prints.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import check_writable

__all__ = ["ScoredRun", "score_checkpoint", "run_dir_of"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoredRun:
    """What :func:`score_checkpoint` scored and wrote."""

    result: Any  # EvalResult; None on the ranks other than 0 of a torchrun job
    checkpoint: Path
    out: Path
    paths: dict[str, Path]


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory a checkpoint file lives in (``RUN/stageN/best.pt`` → ``RUN``)."""
    parent = checkpoint.parent
    return parent.parent if re.fullmatch(r"stage\d+", parent.name) else parent


def _load_records(data: dict[str, Any], *, subset: str, split: int, root: str, frames_root: str | None,
                  seed: int) -> tuple[list[Any], list[str]]:
    """Records and class names of the test split, or of the held-out validation part of the train split."""
    from ..data.datasets import load_split
    from .datasets import split_train_val

    dataset = data.get("dataset", "ucf101")
    layout = "ucf101" if dataset == "synth" else dataset  # the synthetic benchmarks use the UCF-101 layout
    list_key = "test_list" if subset == "test" else "train_list"
    split_data = load_split(
        layout, root, split=split, subset="test" if subset == "test" else "train",
        list_file=data.get(list_key), class_file=data.get("class_file"), frames_root=frames_root,
    )
    records = list(split_data.records)
    if subset == "val":
        fraction = float(data.get("val_fraction") or 0.0)
        if fraction <= 0:
            raise ValueError(
                "the run has data.val_fraction=0: no training videos were held out, so there is no "
                "validation subset to score; use --subset test, or train with data.val_fraction > 0"
            )
        _, records = split_train_val(records, fraction=fraction, seed=seed)  # the trainer's own hold-out
    return records, list(split_data.class_names)


def score_checkpoint(checkpoint: str | Path, *, subset: str = "test", split: int | None = None,
                     data_root: str | None = None, frames_root: str | None = None, segments: int | None = None,
                     crops: int = 1, crop_agg: str = "max", out: str | Path | None = None, batch_size: int = 1,
                     workers: int = 2, device: str = "auto", chunk_images: int | None = None,
                     on_bad_video: str = "fail", progress: bool = True, max_memory_mb: float | None = None,
                     precision: str = "fp32", compile: bool = False, optimize: bool = True) -> ScoredRun:
    """Score ``checkpoint`` (a run directory or a ``.pt`` file) and write its results into ``out``.

    Defaults come from the run's config: its data root, split, test segments, input size and resize.
    ``out`` defaults to ``RUN/<subset>-split<N>``. ``compile``: forward passes through ``torch.compile``
    (:func:`offnet.engine.evaluate.compile_model`). ``optimize=False``: the plain eval-mode forward instead of
    the optimised inference copy (:func:`offnet.engine.evaluate.for_inference`).
    """
    from .checkpoint import build_model_from_checkpoint, find_checkpoint
    from .evaluate import evaluate, save_eval, test_flip

    if subset not in ("test", "val"):
        raise ValueError(f"subset must be 'test' or 'val', got {subset!r}")
    path = find_checkpoint(checkpoint)
    model, payload = build_model_from_checkpoint(path)
    config = payload.get("config") or {}
    data = dict(config.get("data") or {})
    root = data_root or data.get("root")
    if not root:
        raise ValueError(f"{path}: the run config names no data.root; pass --data-root DIR")
    split = split if split is not None else int(data.get("split") or 1)
    frames_root = frames_root or data.get("frames_root")
    records, class_names = _load_records(data, subset=subset, split=split, root=root, frames_root=frames_root,
                                         seed=int(config.get("seed", 0)))
    trained_classes = list(payload.get("class_names") or [])
    if trained_classes and trained_classes != class_names:
        raise ValueError(
            f"the {subset} split at {root} has {len(class_names)} classes {class_names[:3]}…, but the "
            f"model was trained on {len(trained_classes)} classes {trained_classes[:3]}…; score the "
            "dataset the model was trained on (check --data-root)"
        )
    if not records:
        raise ValueError(f"the {subset} subset of split {split} at {root} holds no videos")
    out = Path(out) if out else run_dir_of(path) / f"{subset}-split{split}"
    check_writable(out, is_dir=True)  # before the evaluation, not after it
    modality = model.modality.name
    segments = segments or int(data.get("test_segments") or 25)
    size = int(data.get("size") or model.input_spec.size)
    if max_memory_mb is not None:
        from .evaluate import frames_for_memory

        chunk_images = frames_for_memory(model, size=size, budget_mb=max_memory_mb)
        log.info("--max-memory %.0f MB: at most %d frames per forward", max_memory_mb, chunk_images)
    log.info("scoring %d %s videos of split %d (%s) with %s: %d segments x %d crops, %s, %dpx",
             len(records), subset, split, root, path, segments, crops, modality, size)
    flip, flip_labels = test_flip(data, class_names, crops=crops)

    def score(part: list[Any], device: Any, progress: bool) -> Any:
        return evaluate(
            model, part, class_names, modality=modality, segments=segments, crops=crops, size=size,
            sampler=data.get("sampler", "off"), input_spec=model.input_spec, batch_size=batch_size,
            num_workers=workers, device=device, progress=progress, crop_agg=crop_agg, chunk_images=chunk_images,
            # mirrored test crops (2 and 10 crops) score each class under its mirror's name (data.flip_map)
            resize_to=data.get("resize_to"), flip=flip, flip_labels=flip_labels, on_bad_video=on_bad_video,
            precision=precision, interval=data.get("interval"), compile=compile, optimize=optimize,
        )

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        result = _score_sharded(score, records, device=device, on_bad_video=on_bad_video, progress=progress,
                                min_side=size if data.get("resize_to") is None else None)
        if result is None:  # not rank 0: rank 0 saves the gathered scores
            return ScoredRun(result=None, checkpoint=path, out=out, paths={})
    else:
        result = score(records, device, progress)
    result.meta.update({
        "dataset": data.get("dataset"), "root": str(root), "split": split, "subset": subset,
        "checkpoint": str(path), "stage": payload.get("stage"), "step": payload.get("step"),
        "sampler": data.get("sampler", "off"),
    })
    return ScoredRun(result=result, checkpoint=path, out=out, paths=save_eval(result, out))


def _score_sharded(score: Any, records: list[Any], *, device: str, on_bad_video: str, progress: bool,
                   min_side: int | None) -> Any:
    """Under torchrun: rank r scores every world-th video from r; rank 0 gets the gathered
    :class:`~offnet.engine.evaluate.EvalResult` in the order of ``records``, the other ranks ``None``.

    Every rank reports success or its error to the others, so one bad shard stops the whole job with the
    same message everywhere instead of leaving the other ranks waiting.
    """
    import torch.distributed as dist

    from ..data.check import inspect_record
    from .distributed import all_gather_objects, init_distributed
    from .evaluate import EvalResult

    ctx = init_distributed(device, timeout=timedelta(days=30))  # ranks meet once, at the end
    mine = records[ctx.rank :: ctx.world_size]
    report: dict[str, Any] = {"rank": ctx.rank, "error": None, "result": None, "skipped": []}
    try:
        bad = [b for _, b in (inspect_record(r, min_side=min_side) for r in mine) if b is not None]
        if mine and len(bad) == len(mine) and on_bad_video == "skip":
            report["skipped"] = [str(b) for b in bad]  # nothing to score here; other shards may have videos
        elif mine:
            report["result"] = score(mine, ctx.device, progress and ctx.is_main)
    except Exception as exc:  # noqa: BLE001 - sent to every rank, raised below
        report["error"] = str(exc)
    try:
        reports = all_gather_objects(report, ctx)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    failed = [r for r in reports if r["error"]]
    if failed:
        raise ValueError(f"rank {failed[0]['rank']}: {failed[0]['error']}")
    if not ctx.is_main:
        return None
    parts = [r["result"] for r in reports if r["result"] is not None]
    skipped: list[str] = []
    for r in reports:
        skipped += r["skipped"] if r["result"] is None else list(r["result"].meta.get("skipped_videos") or [])
    if not parts:
        raise ValueError(f"no readable video left to score ({len(skipped)} skipped)")
    where = {name: (p, i) for p, part in enumerate(parts) for i, name in enumerate(part.names)}
    order = [where[r.name] for r in records if r.name in where]  # input order

    def pick(get: Any) -> np.ndarray:
        return np.stack([get(parts[p])[i] for p, i in order])

    first = parts[0]
    return EvalResult(
        scores={level: pick(lambda part, level=level: part.scores[level]) for level in first.levels},
        labels=pick(lambda part: part.labels).astype(np.int64),
        names=tuple(parts[p].names[i] for p, i in order),
        class_names=first.class_names, backbone_level=first.backbone_level, final_level=first.final_level,
        meta={**first.meta, "skipped_videos": skipped, "world_size": ctx.world_size},
    )
