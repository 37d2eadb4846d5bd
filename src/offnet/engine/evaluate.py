"""The paper's test protocol: many segments and crops per video, per-level video scores, saved results.

Protocol (the authors' ``tools/test.py``): each test video is sampled at 25 segments
(frames per segment from the modality: 1 RGB, 5 flow/Raw OFF, 6 RGB-diff), each frame is cut into 1, 2, 3
or 10 crops, and every level of the model gives raw logits per segment (backbone level) or per pair of
consecutive segments (OFF levels). For each level the logits are

1. aggregated over crops by ``max`` (the code's ``crop_agg=np.max``; ``mean`` is the other choice),
2. averaged over segments / pairs (the model's consensus),

which gives one ``(num_classes,)`` score per video and level. No softmax is applied.

Crop aggregation comes first, so it needs per-segment logits: models whose ``forward`` accepts
``consensus=False`` (returning ``{level: (B, S, K)}``) are scored exactly as above. For a model without
it the consensus comes first and the crops are aggregated afterwards; for ``mean`` the result is the same,
for ``max`` it differs, and a warning says so.

Mirrored crops (2 crops: the centre and its mirror; 10 crops: the last five) of a model trained with a flip
label map (``data.flip_map``: a mirrored "move left" clip is a "move right" one) score each class under its
mirror image's name: their logits are permuted back by that map before the crops are aggregated, so a model
of direction-sensitive classes can use mirrored test crops (:func:`test_flip`).

Crops are pushed through the model in chunks (``chunk_images`` frames per forward) so 25 segments × 10
crops of BN-Inception at 224 px fit in memory. The default (:func:`default_chunk_images`) is 32 frames on a
CPU, where small forwards stay in cache (BN-Inception, 10 crops × 25 segments on a 2-core AVX-512 CPU: one
crop per forward took 0.79 × the time of 128 frames per forward, for TSN and OFF alike), and 128 on a GPU.

Results are stored by :func:`save_eval` as ``scores.npz`` (format ``offnet-scores-v1``, read back by
:func:`load_eval`), ``metrics.json`` and ``confusion.png``.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from offnet import interrupts
from offnet.data.functional import MIRRORED_CROPS
from offnet.data.records import VideoRecord
from offnet.engine.metrics import ClassificationMetrics, compute_metrics, plot_confusion
from offnet.fileio import atomic_savez, atomic_write_text
from offnet.modalities import get_modality

__all__ = [
    "SCORES_FORMAT",
    "CROP_AGGREGATIONS",
    "EvalResult",
    "evaluate",
    "build_test_dataset",
    "score_clips",
    "for_inference",
    "inference_memory_format",
    "aggregate_crops",
    "test_flip",
    "unmirror_crops",
    "save_eval",
    "check_finite_scores",
    "frames_for_memory",
    "precision_autocast",
    "compile_model",
    "CompiledForward",
    "load_eval",
    "result_metrics",
]

logger = logging.getLogger(__name__)

SCORES_FORMAT = "offnet-scores-v1"
CROP_AGGREGATIONS = ("max", "mean")
VALID_CROPS = tuple(MIRRORED_CROPS)  # 1, 2, 3, 10


@dataclass(frozen=True)
class EvalResult:
    """Per-video scores of one model on one set of videos.

    ``scores[level]`` is ``(N, num_classes)`` float32 raw-logit video scores for every level of the
    model, ``labels`` ``(N,)`` int64, ``names`` the ``N`` video names (matching key for fusion),
    ``class_names`` the ``num_classes`` names. ``meta`` records how the scores were made (modality,
    segments, crops, crop_agg, and — when the CLI fills them — dataset, split, subset, checkpoint).
    """

    scores: dict[str, np.ndarray]
    labels: np.ndarray
    names: tuple[str, ...]
    class_names: tuple[str, ...]
    backbone_level: str
    final_level: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.names)
        if self.labels.shape != (n,):
            raise ValueError(f"labels shape {self.labels.shape} does not match {n} video names")
        for level, scores in self.scores.items():
            if scores.shape != (n, len(self.class_names)):
                raise ValueError(
                    f"scores of level {level!r} have shape {scores.shape}, expected "
                    f"({n}, {len(self.class_names)}) = (videos, classes)"
                )
        for level in (self.backbone_level, self.final_level):
            if level not in self.scores:
                raise ValueError(f"level {level!r} has no scores (levels: {list(self.scores)})")
        if len(set(self.names)) != n:
            dup = next(name for name in self.names if self.names.count(name) > 1)
            raise ValueError(
                f"video name {dup!r} occurs more than once; names must be unique to match videos"
            )

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(self.scores)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def deep_levels(self) -> tuple[str, ...] | None:
        """The sub-network's two deepest heads (``off14``, ``off7``), or None with fewer than two.

        Their plain sum is what the official ensembles score as OFF(RGB) (RGB : OFF-7 : OFF-14 = 1 : 2 : 1
        there; the paper sums scores), without the backbone's own head.
        """
        subnet = [level for level in self.scores if level != self.backbone_level]
        if self.final_level not in subnet or len(subnet) < 2:
            return None
        below = [level for level in subnet if level != self.final_level]
        return below[-1], self.final_level

    @property
    def deep_name(self) -> str | None:
        """The name of :attr:`fused_deep` in metrics and tables (``"off14+off7"``), or None."""
        return "+".join(self.deep_levels) if self.deep_levels is not None else None

    @property
    def fused_deep(self) -> np.ndarray | None:
        """Plain sum of :attr:`deep_levels`, ``(N, K)`` (None when the model has fewer than two sub-network heads)."""
        levels = self.deep_levels
        if levels is None:
            return None
        return self.scores[levels[0]].astype(np.float64) + self.scores[levels[1]]

    @property
    def fused_backbone_final(self) -> np.ndarray | None:
        """Plain sum of backbone and final level, ``(N, K)`` — the paper's "RGB + OFF(RGB)" (None for TSN)."""
        if self.backbone_level == self.final_level:
            return None
        return self.scores[self.backbone_level].astype(np.float64) + self.scores[self.final_level]


def aggregate_crops(logits: torch.Tensor, how: str) -> torch.Tensor:
    """Reduce ``(B, crops, …)`` over the crop dimension by ``max`` or ``mean`` → ``(B, …)``."""
    if how == "max":
        return logits.amax(dim=1)
    if how == "mean":
        return logits.mean(dim=1)
    raise ValueError(f"unknown crop aggregation {how!r}; choose one of {list(CROP_AGGREGATIONS)}")


def test_flip(data: dict[str, Any], class_names: Sequence[Any], *,
              crops: int) -> tuple[bool, tuple[int, ...] | None]:
    """Whether a run's ``crops`` test crops may be mirrored, and the label map of the mirrored ones, from its
    ``data`` config: mirrors are allowed when it trained with flips (``data.flip``, default true); with a flip
    label map (``data.flip_map``) and mirrored crops among ``crops``, their logits are permuted by
    :func:`offnet.data.labelmaps.flip_permutation` (else the map is None).
    """
    from offnet.data.labelmaps import flip_permutation

    flip = bool(data.get("flip", True))
    spec = data.get("flip_map")
    if not (flip and spec is not None and MIRRORED_CROPS.get(crops)):
        return flip, None
    return flip, flip_permutation(spec, [str(c) for c in class_names])


def unmirror_crops(logits: torch.Tensor, flip_labels: Sequence[int] | None) -> torch.Tensor:
    """``(B, crops, …, K)`` logits with each mirrored crop's classes put back under their own names.

    A mirrored crop's logit of class ``flip_labels[k]`` is the evidence for class ``k`` in the unmirrored clip
    (the map is its own inverse). Crops are in :func:`offnet.data.functional.ten_crop` /
    :func:`~offnet.data.functional.mirror_crop` order; nothing changes without a map or without mirrored crops.
    """
    mirrored = MIRRORED_CROPS.get(logits.shape[1], ())
    if flip_labels is None or not mirrored:
        return logits
    if len(flip_labels) != logits.shape[-1]:
        raise ValueError(f"the flip label map has {len(flip_labels)} classes; the model has {logits.shape[-1]}")
    perm = torch.as_tensor(list(flip_labels), device=logits.device)
    out = logits.clone()
    index = torch.as_tensor(mirrored, device=logits.device)
    out[:, index] = logits[:, index].index_select(-1, perm)
    return out


def _supports_segment_logits(model: nn.Module) -> bool:
    try:
        return "consensus" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False


def frames_for_memory(model: nn.Module, *, size: int, budget_mb: float) -> int:
    """Frames per forward that keep inference activations within ``budget_mb`` (an estimate, fp32).

    One frame is pushed through the model on the ``meta`` device (no memory, no arithmetic) and every
    module output is measured; a frame is charged the sum of the backbone's tapped maps (the OFF
    sub-network needs them all at once) plus three times the largest single output (a layer's input,
    output and a temporary). The model's weights are not part of the budget.
    """
    from offnet.models.complexity import meta_copy

    if budget_mb <= 0:
        raise ValueError(f"--max-memory must be positive (MB), got {budget_mb}")
    meta = meta_copy(model).eval()
    sizes: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel()) if torch.is_tensor(out) else None)
             for m in meta.modules() if not list(m.children())]
    taps: list[int] = []
    backbone = getattr(meta, "backbone", None)
    if backbone is not None:
        hooks.append(backbone.register_forward_hook(
            lambda _m, _i, out: taps.extend(t.numel() for t in out[0].values()) if isinstance(out, tuple) else None))
    channels = getattr(getattr(meta, "modality", None), "data_channels", 3)
    with torch.no_grad():
        meta(torch.empty(1, 2, channels, size, size, device="meta"))  # two segments: OFF runs too
    for h in hooks:
        h.remove()
    per_frame = (sum(taps) / 2 + 3 * max(sizes) / 2) * 4  # bytes; the probe held 2 frames
    return max(2, int(budget_mb * 2**20 // per_frame))


def _segment_windows(model: Callable[..., Any], x: torch.Tensor, window: int) -> dict[str, torch.Tensor]:
    """Per-segment / per-pair logits of ``x (N, T, C, H, W)`` computed ``window`` segments at a time.

    Windows overlap by one segment. Levels with one output per segment drop the repeated first segment
    of every later window; levels with one output per consecutive pair (OFF) keep all, since a window
    starting at the previous window's last segment yields exactly the pairs that follow.
    """
    T = x.shape[1]
    parts: dict[str, list[torch.Tensor]] = {}
    start = 0
    while True:
        end = min(T, start + window)
        out = model(x[:, start:end], consensus=False)
        t = end - start
        for level, logits in out.items():
            per_segment = logits.shape[1] == t
            if start > 0 and per_segment:
                logits = logits[:, 1:]
            parts.setdefault(level, []).append(logits)
        if end == T:
            break
        start = end - 1
    return {level: torch.cat(chunks, dim=1) for level, chunks in parts.items()}


def default_chunk_images(device: str | torch.device) -> int:
    """Frames per forward of the test protocol by default: 32 on a CPU, 128 on a GPU (module docstring)."""
    return 128 if torch.device(device).type == "cuda" else 32


@torch.inference_mode()
def score_clips(
    model: nn.Module,
    clips: torch.Tensor,
    *,
    crop_agg: str = "max",
    chunk_images: int | None = None,
    forward: Callable[..., Any] | None = None,
    flip_labels: Sequence[int] | None = None,
) -> dict[str, torch.Tensor]:
    """Video scores of a batch of multi-crop clips: ``{level: (B, num_classes)}``.

    Args:
        model: a model in eval mode following the offnet model API.
        clips: ``(B, crops, T, C, H, W)`` or ``(B, T, C, H, W)`` (one crop).
        crop_agg: ``"max"`` (code) or ``"mean"`` over crops, applied to per-segment logits.
        chunk_images: at most this many frames (``B·crops·T``) per forward (default
            :func:`default_chunk_images` of the clips' device). When one crop of the batch
            alone has more frames, its segments are split into windows that overlap by one segment (so
            every OFF pair is still computed once, from the same two segments): the scores are those of
            one whole forward, and memory stays bounded for any crop and segment count.
        forward: what runs ``model``'s forward (default ``model`` itself), e.g. :func:`compile_model`'s result.
        flip_labels: the run's flip label map (:func:`test_flip`): the mirrored crops' logits are permuted by
            it before the crops are aggregated (:func:`unmirror_crops`).
    """
    run = model if forward is None else forward
    if crop_agg not in CROP_AGGREGATIONS:
        raise ValueError(f"unknown crop aggregation {crop_agg!r}; choose one of {list(CROP_AGGREGATIONS)}")
    if clips.dim() == 5:
        clips = clips.unsqueeze(1)  # (B, 1, T, C, H, W)
    if clips.dim() != 6:
        raise ValueError(f"clips must be (B, crops, T, C, H, W) or (B, T, C, H, W), got {tuple(clips.shape)}")
    B, crops, T, C, H, W = clips.shape
    chunk_images = chunk_images or default_chunk_images(clips.device)
    per_segment = _supports_segment_logits(model)
    step = max(1, chunk_images // max(1, B * T))
    pieces: dict[str, list[torch.Tensor]] = {}
    window = max(2, chunk_images // max(1, B)) if per_segment and B * T > chunk_images else T
    for start in range(0, crops, step):
        chunk = clips[:, start : start + step]
        c = chunk.shape[1]
        x = chunk.reshape(B * c, T, C, H, W)  # (B*c, T, C, H, W)
        if window < T:
            out = _segment_windows(run, x, window)
        else:
            out = run(x, consensus=False) if per_segment else run(x)
        for level, logits in out.items():
            # per-segment: (B*c, S, K) -> (B, c, S, K); consensus-first: (B*c, K) -> (B, c, K)
            pieces.setdefault(level, []).append(logits.float().reshape(B, c, *logits.shape[1:]))
    result: dict[str, torch.Tensor] = {}
    for level, parts in pieces.items():
        logits = unmirror_crops(torch.cat(parts, dim=1), flip_labels)  # (B, crops, S, K) or (B, crops, K)
        reduced = aggregate_crops(logits, crop_agg)  # (B, S, K) or (B, K)
        result[level] = reduced.mean(dim=1) if per_segment else reduced  # (B, K)
    return result


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available; use --device cpu")
    return device


def build_test_dataset(records: Sequence[VideoRecord], *, modality: str, segments: int, crops: int, size: int,
                 sampler: Any, input_spec: Any, resize_to: int | None = None, flip: bool = True,
                 seed: int = 0, interval: int | None = None) -> Any:
    """The clip dataset of the test protocol: ``segments`` test segments (a sampler name is built with
    ``test_segments=segments``, so the OFF interval is L // segments unless ``interval`` fixes it), ``crops``
    crops of ``size`` px, the backbone's normalisation. Items are ``(T, C, H, W)`` (1 crop) or
    ``(crops, T, C, H, W)``."""
    from offnet.data.clips import ClipDataset
    from offnet.data.sampling import make_sampler
    from offnet.data.transforms import build_transform

    mod = get_modality(modality)
    if isinstance(sampler, str):
        sampler = make_sampler(
            sampler, num_segments=segments, new_length=mod.frames_per_segment, test=True,
            test_segments=segments, interval=interval,
        )
    mean, std = input_spec.mean_std(mod.kind)
    transform = build_transform(
        train=False, size=size, modality=modality, mean=mean, std=std, bgr=input_spec.bgr,
        scale255=input_spec.scale255, flip=flip, crops=crops, resize_to=resize_to,
    )
    return ClipDataset(list(records), modality=modality, sampler=sampler, transform=transform, seed=seed,
                       test_crops=crops, on_bad_video="fail")


def evaluate(
    model: nn.Module,
    records: Sequence[VideoRecord],
    class_names: Sequence[str],
    *,
    modality: str,
    segments: int = 25,
    crops: int = 1,
    size: int,
    sampler: Any,
    input_spec: Any,
    batch_size: int = 1,
    num_workers: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    crop_agg: str = "max",
    chunk_images: int | None = None,
    resize_to: int | None = None,
    flip: bool = True,
    seed: int = 0,
    on_bad_video: str = "fail",
    precision: str = "fp32",
    interval: int | None = None,
    compile: bool = False,
    flip_labels: Sequence[int] | None = None,
    optimize: bool = True,
) -> EvalResult:
    """Score every video of ``records`` with the test protocol (module docstring) and return the scores.

    Args:
        model: offnet model (``levels``, ``backbone_level``, ``final_level``); put in eval mode here.
        records: the test (or validation) videos.
        class_names: names indexed by label; their count must equal the model's classes.
        modality: ``rgb`` | ``flow`` | ``rawoff`` | ``rgbdiff`` (frames per segment follow from it).
        segments: segments per video (paper: 25).
        crops: 1 (centre), 2 (centre and its mirror), 3 or 10 (4 corners + centre, and their mirrors) crops of
            ``size`` px.
        size: crop side in pixels.
        sampler: a sampler name (built with ``make_sampler(..., test=True)``) or a sampler object.
        input_spec: the model's :class:`~offnet.models.backbone.InputSpec` (mean/std/BGR/0–255).
        batch_size: videos per loader batch.
        num_workers: loader worker processes.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` … or ``None``/``"auto"``.
        progress: show a progress bar on stderr.
        crop_agg: ``max`` (code) or ``mean`` over crops.
        chunk_images: frames per forward pass (memory bound; default :func:`default_chunk_images`).
        resize_to: resize frames' shorter side before cropping (``None``: as decoded).
        flip: mirrored crops allowed (2 and 10 crops include them); ``False`` for a run trained without flips.
        seed: seed of the loader (test sampling and transforms are deterministic; kept for workers).
        on_bad_video: ``fail`` (stop at an unreadable video) or ``skip`` (check all videos first and
            leave the unreadable ones out of the scores; they are listed in ``meta["skipped_videos"]``).
        precision: ``fp32``, or ``bf16`` / ``fp16`` (CUDA only) autocast for the forward passes; the scores are
            aggregated in float32 either way.
        interval: the ``off`` sampler's fixed interval in frames (the run's ``data.interval``; ``None``: the
            paper's ``L // segments``).
        compile: run the forward passes through :func:`compile_model` (``torch.compile``; the first forward of
            every input shape compiles, which takes a minute or more for BN-Inception on a CPU).
        flip_labels: the run's flip label map (:func:`test_flip`), applied to the mirrored crops' scores.
        optimize: score an optimised inference copy (folded BatchNorm, channels-last on a CPU: :func:`for_inference`);
            ``False`` scores with the plain eval-mode forward. Scores agree within float rounding.
    """
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
    # Imported here so that loading and fusing score files (`offnet fuse`) needs no video decoders.
    from offnet.data.clips import make_loader
    from offnet.progress import progress_bar

    if crops not in VALID_CROPS:
        raise ValueError(f"crops must be one of {list(VALID_CROPS)}, got {crops}")
    if segments < 1:
        raise ValueError(f"segments must be >= 1, got {segments}")
    if crop_agg not in CROP_AGGREGATIONS:
        raise ValueError(f"unknown crop aggregation {crop_agg!r}; choose one of {list(CROP_AGGREGATIONS)}")
    if not records:
        raise ValueError("no videos to evaluate: the record list is empty")
    get_modality(modality)  # an unknown name fails here, before any decoding
    levels = tuple(model.levels)
    expected_classes = getattr(model, "num_classes", None)
    if expected_classes is not None and len(class_names) != expected_classes:
        raise ValueError(
            f"{len(class_names)} class names for a model with {expected_classes} classes; they must match"
        )
    if on_bad_video not in ("fail", "skip"):
        raise ValueError(f"on_bad_video must be 'fail' or 'skip', got {on_bad_video!r}")
    # Every video is checked up front, as `data check` and `train` do: a missing, empty, unreadable, truncated
    # or too-short video stops the run listing all of them ("fail") or is left out and reported ("skip";
    # the clip dataset's own skipping would score a neighbour under the bad video's name).
    from offnet.data.check import validate_records

    good, bad = validate_records(records, on_bad_video=on_bad_video, workers=max(1, num_workers),
                                 min_side=size if resize_to is None else None)
    skipped = [str(b) for b in bad]
    records = good
    if not records:
        raise ValueError(f"no readable video left to score ({len(skipped)} skipped)")
    dataset = build_test_dataset(
        list(records), modality=modality, segments=segments, crops=crops, size=size, sampler=sampler,
        input_spec=input_spec, resize_to=resize_to, flip=flip, seed=seed, interval=interval,
    )
    loader = make_loader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, seed=seed, drop_last=False,
    )
    dev = _resolve_device(device)
    model = for_inference(model, dev, precision, optimize=optimize)  # a folded, channels-last copy
    forward = compile_model(model) if compile else None
    if not _supports_segment_logits(model) and crop_agg == "max" and crops > 1:
        logger.warning(
            "model.forward has no consensus=False: crops are max-aggregated after the segment consensus, "
            "not before as in the authors' code"
        )
    per_level: dict[str, list[np.ndarray]] = {level: [] for level in levels}
    labels: list[np.ndarray] = []
    bar = progress_bar(total=len(records), desc="test", unit="video", disable=not progress)
    try:
        for clips, batch_labels in loader:
            interrupts.check()
            with precision_autocast(precision, dev):
                scores = score_clips(model, clips.to(dev, non_blocking=True), crop_agg=crop_agg,
                                     chunk_images=chunk_images, forward=forward, flip_labels=flip_labels)
            for level in levels:
                per_level[level].append(scores[level].cpu().numpy().astype(np.float32))
            labels.append(np.asarray(batch_labels, dtype=np.int64).reshape(-1))
            bar.update(len(labels[-1]))
    finally:
        bar.close()
    label_array = np.concatenate(labels)
    names = _names_of(dataset, records, len(label_array))
    num_classes = per_level[levels[0]][0].shape[1]
    if len(class_names) != num_classes:
        raise ValueError(
            f"{len(class_names)} class names for a model with {num_classes} classes; they must match"
        )
    result = EvalResult(
        scores={level: np.concatenate(parts) for level, parts in per_level.items()},
        labels=label_array,
        names=names,
        class_names=tuple(str(c) for c in class_names),
        backbone_level=str(model.backbone_level),
        final_level=str(model.final_level),
        meta={
            "modality": modality,
            "segments": segments,
            "crops": crops,
            "crop_agg": crop_agg,
            "mirror_labels": list(flip_labels) if flip_labels is not None else None,
            "size": size,
            "crop_then_consensus": _supports_segment_logits(model),
            "precision": precision,
            "compiled": bool(forward is not None and forward.compiled),
            "optimized": optimize,
            "skipped_videos": skipped,
            "model": dict(getattr(model, "config", {}) or {}),
        },
    )
    logger.info("scored %d videos at %d segments x %d crops", len(names), segments, crops)
    return result


def bf16_supported(device: str = "cpu") -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU that supports it, or a CPU with AVX512-BF16 or
    AMX (elsewhere bf16 is emulated: expect no speed-up)."""
    if str(device).startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool((check and check()) or (amx and amx()))


def inference_memory_format(device: str | torch.device = "cpu", precision: str = "fp32", *,
                            optimize: bool = True) -> torch.memory_format:
    """The memory layout inference runs in: channels-last for bf16 / fp16 (whose kernels want it) and, optimised,
    on a CPU for every precision; otherwise the default layout (fp32 on a GPU is not measured there)."""
    if precision in ("bf16", "fp16") or (optimize and torch.device(device).type == "cpu"):
        return torch.channels_last
    return torch.contiguous_format


def for_inference(model: nn.Module, device: str | torch.device = "cpu", precision: str = "fp32", *,
                  optimize: bool = True) -> nn.Module:
    """An inference copy of ``model`` in eval mode on ``device``; ``model`` itself is left as it is.

    ``optimize`` (default): offnet models get their BatchNorm folded into the convolutions that feed it
    (:meth:`~offnet.models.networks.ActionRecognizer.fold_batchnorm`), and every model is laid out in
    :func:`inference_memory_format` (a convolution with channels-last weights gives channels-last output, so
    inputs need no conversion). Without it the copy keeps the default layout (channels-last for bf16 / fp16,
    whose kernels want it) and its BatchNorm. Scores agree within float rounding (tests compare both).

    Measured side by side (``offnet bench pipelines`` times both in one run; 2-core AMD EPYC, AVX2, fp32, one
    video of 25 segments at 224 px): channels-last alone ran BN-Inception TSN 1.54x and OFF 1.38x as fast
    (PyTorch's pooling is several times faster in it), ResNet-50 1.10x, ResNet-18 1.15x; folding BatchNorm on
    top, BN-Inception TSN 1.16x and OFF 1.11x. On an AVX512-BF16 CPU bf16 ran 2.3x fp32 in channels-last against
    1.4x in the default layout.
    """
    import copy

    model = copy.deepcopy(model).eval().to(device)
    fold = getattr(model, "fold_batchnorm", None)
    if optimize and callable(fold):
        fold()
    return model.to(memory_format=inference_memory_format(device, precision, optimize=optimize))


class CompiledForward:
    """A model's forward compiled by ``torch.compile`` for inference, with the plain forward as a fallback.

    Compilation happens at the first call of every new input shape. If it fails (no C++ compiler, an
    unsupported platform or operator), a warning names the error and every call from then on runs the plain
    forward; :attr:`compiled` tells which is in use. An error of the model itself (a wrong input shape) is
    raised again by the plain forward, so it is never hidden. Measured on a 2-core AVX-512 CPU, BN-Inception at
    224 px, 25 segments, fp32, one thread: TSN 1.46x, OFF (official mode) 1.47x the plain forward, scores
    equal within 1e-7; the first call compiles for 75-100 s.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.compiled = True
        self._fn: Callable[..., Any] = torch.compile(model)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled:
            try:
                return self._fn(*args, **kwargs)
            except Exception as err:  # compilation failed: fall back to the plain forward once and for all
                logger.warning("torch.compile failed (%s: %s); running the plain forward instead",
                               type(err).__name__, str(err).splitlines()[0] if str(err) else "")
                self.compiled = False
        return self.model(*args, **kwargs)


def compile_model(model: nn.Module) -> CompiledForward:
    """``model``'s forward through ``torch.compile``, falling back to the plain forward (:class:`CompiledForward`)."""
    return CompiledForward(model)


def precision_autocast(precision: str, device: torch.device) -> Any:
    """The autocast context of ``precision`` on ``device`` (a no-op for fp32)."""
    import contextlib

    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("--precision fp16 needs a CUDA device; on a CPU use bf16 (or fp32)")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def _names_of(dataset: Any, records: Sequence[VideoRecord], n: int) -> tuple[str, ...]:
    """Names of the scored videos, in loader order (the dataset's records when it drops bad videos)."""
    kept = getattr(dataset, "records", records)
    names = tuple(r.name for r in kept)
    if len(names) != n:
        raise RuntimeError(f"scored {n} videos but the dataset lists {len(names)}; cannot match names")
    return names


def result_metrics(result: EvalResult) -> dict[str, ClassificationMetrics]:
    """Metrics per level, plus the plain sums ``"off14+off7"`` (:attr:`EvalResult.deep_levels`) and
    ``"backbone+final"`` when the model has a sub-network."""
    out = {level: compute_metrics(s, result.labels, result.class_names) for level, s in result.scores.items()}
    deep = result.fused_deep
    if deep is not None:
        out[str(result.deep_name)] = compute_metrics(deep, result.labels, result.class_names)
    fused = result.fused_backbone_final
    if fused is not None:
        out["backbone+final"] = compute_metrics(fused, result.labels, result.class_names)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def check_finite_scores(result: EvalResult, *, note: str = "") -> None:
    """Raise ``ValueError`` naming the level and videos when any score is NaN or infinite."""
    for level, scores in result.scores.items():
        finite = np.isfinite(scores).all(axis=1)
        if not finite.all():
            bad = [result.names[i] for i in np.flatnonzero(~finite)[:3]]
            raise ValueError(
                f"level {level} has non-finite scores (NaN or inf) for {int((~finite).sum())} video(s), e.g. "
                f"{', '.join(bad)}: the weights or the input are broken" + (f"; {note}" if note else "")
            )


def save_eval(result: EvalResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``scores.npz``, ``metrics.json`` and ``confusion.png`` (final level) into ``out_dir``.

    ``scores.npz`` holds ``format``, ``levels``, ``scores_<level>`` ``(N, K)`` float32, ``labels``,
    ``names``, ``class_names``, ``backbone_level``, ``final_level`` and ``meta`` (a JSON string).
    ``metrics.json`` holds top-1, top-5, mean class accuracy and per-class accuracy for every level,
    for the final level and for the backbone + final plain sum. Returns the written paths.
    """
    out = Path(out_dir)
    check_finite_scores(result, note=f"nothing was written to {out}")
    meta = _jsonable(result.meta)
    arrays: dict[str, np.ndarray] = {
        "format": np.array(SCORES_FORMAT),
        "levels": np.array(result.levels),
        "labels": result.labels.astype(np.int64),
        "names": np.array(result.names),
        "class_names": np.array(result.class_names),
        "backbone_level": np.array(result.backbone_level),
        "final_level": np.array(result.final_level),
        "meta": np.array(json.dumps(meta)),
    }
    for level, scores in result.scores.items():
        arrays[f"scores_{level}"] = scores.astype(np.float32)
    scores_path = out / "scores.npz"
    atomic_savez(scores_path, **arrays)

    metrics = result_metrics(result)
    final = metrics[result.final_level]
    report = {
        "meta": meta,
        "num_videos": len(result.names),
        "backbone_level": result.backbone_level,
        "final_level": result.final_level,
        "levels": {level: m.to_dict() for level, m in metrics.items() if level in result.scores},
        "final": {"level": result.final_level, **final.to_dict()},
        "fused_deep": (
            {"levels": list(result.deep_levels or ()), "weights": [1.0, 1.0], **metrics[result.deep_name].to_dict()}
            if result.deep_name is not None else None
        ),
        "fused_backbone_final": (
            {"levels": [result.backbone_level, result.final_level], "weights": [1.0, 1.0],
             **metrics["backbone+final"].to_dict()}
            if "backbone+final" in metrics else None
        ),
    }
    metrics_path = out / "metrics.json"
    atomic_write_text(metrics_path, json.dumps(report, indent=2) + "\n")
    confusion_path = plot_confusion(
        final.confusion, result.class_names, out / "confusion.png",
        title=f"{meta.get('modality', '')} {result.final_level}: mean class acc "
              f"{100 * final.mean_class_accuracy:.1f}%".strip(),
    )
    logger.info("wrote %s, %s, %s", scores_path, metrics_path, confusion_path)
    return {"scores": scores_path, "metrics": metrics_path, "confusion": confusion_path}


def _str(array: np.ndarray) -> str:
    return str(array.item()) if array.ndim == 0 else str(array)


def load_eval(path: str | Path) -> EvalResult:
    """Read a ``scores.npz`` written by :func:`save_eval` (or a directory holding one).

    ``meta["path"]`` is set to the file read, so later errors can name it.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "scores.npz"
    if not path.is_file():
        raise FileNotFoundError(
            f"score file {str(path)!r} does not exist; write one with `offnet test RUN --out DIR`"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as exc:  # zipfile/format errors come in several types
        raise ValueError(f"{str(path)!r} is not a readable .npz file ({type(exc).__name__}: {exc})") from exc
    fmt = _str(arrays["format"]) if "format" in arrays else None
    if fmt != SCORES_FORMAT:
        raise ValueError(
            f"{str(path)!r} is not an offnet score file (format {fmt!r}, expected {SCORES_FORMAT!r}); "
            "pass the scores.npz written by `offnet test`"
        )
    try:
        levels = [str(level) for level in arrays["levels"]]
        meta = json.loads(_str(arrays["meta"]))
        meta["path"] = str(path)
        return EvalResult(
            scores={level: arrays[f"scores_{level}"] for level in levels},
            labels=arrays["labels"].astype(np.int64),
            names=tuple(str(n) for n in arrays["names"]),
            class_names=tuple(str(c) for c in arrays["class_names"]),
            backbone_level=_str(arrays["backbone_level"]),
            final_level=_str(arrays["final_level"]),
            meta=meta,
        )
    except KeyError as exc:
        raise ValueError(f"{str(path)!r} lacks the array {exc}; the file is incomplete") from exc
