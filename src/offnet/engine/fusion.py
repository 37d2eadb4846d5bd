"""Weighted score fusion across levels and modalities, and a weight search on validation scores.

A *stream* is one level of one score file (``scores.npz`` of :func:`offnet.engine.evaluate.save_eval`),
e.g. the ``off7`` level of an RGB OFF run. Fusion is a weighted sum of the streams' ``(N, K)`` video
scores, optionally after a softmax per stream (``softmax=True``):

    fused = sum_s  w_s * (softmax(scores_s) if softmax else scores_s)        # (N, K)

The paper sums the scores (Sec. 4.3; weights all 1, :data:`PLAIN_SUM`). The authors' code used hand-tuned
weights over raw logits, tuned *on the test split*; they are kept as documented
:data:`PRESETS` to reproduce the released numbers, not as a method. :func:`search_weights` tunes weights
on *validation* scores (a held-out part of the training split) only and refuses files whose recorded
subset is ``test``.

Videos are matched by name across files; every file must hold the same videos (in any order) with the
same labels and class names.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from offnet.engine.evaluate import EvalResult, load_eval
from offnet.engine.metrics import check_scores

__all__ = [
    "Stream",
    "FusionPreset",
    "PRESETS",
    "FusedScores",
    "LEVEL_ALIASES",
    "resolve_levels",
    "align_results",
    "fuse",
    "search_weights",
    "SearchResult",
    "load_score_files",
    "preset_streams",
    "DEFAULT_GRID",
]

logger = logging.getLogger(__name__)

#: Level names that stand for a model's own levels, so one ``--levels`` works for RGB and flow files.
LEVEL_ALIASES = ("backbone", "final", "deep", "all")
#: Weights tried per stream by :func:`search_weights` (the first stream's weight is fixed at 1).
DEFAULT_GRID: tuple[float, ...] = tuple(round(0.2 * i, 1) for i in range(11))  # 0.0, 0.2, …, 2.0
_MAX_GRID_COMBOS = 20_000  # above this the search goes coordinate-wise instead of exhaustive


@dataclass(frozen=True)
class Stream:
    """One fused input: ``level`` of the score file at ``file_index``."""

    file_index: int
    level: str
    label: str  # for printing, e.g. "rgb:off7"


@dataclass(frozen=True)
class FusionPreset:
    """Published fusion weights: ``parts`` are ``(modality, level role, weight)`` in order.

    A level role is a level name (``"off14"``) or an alias (``"backbone"``, ``"final"``).
    """

    name: str
    description: str
    parts: tuple[tuple[str, str, float], ...]

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities the preset needs, in first-use order (one score file each)."""
        return tuple(dict.fromkeys(m for m, _, _ in self.parts))


# The authors' ensemble weights (tools/ensemble_test.py at commit 787e7fe), tuned by
# hand on UCF-101 split 1 test scores; they multiply crop-maxed, segment-averaged raw logits.
PRESETS: dict[str, FusionPreset] = {
    p.name: p
    for p in (
        FusionPreset(
            name="code-rgb",
            description="RGB : RGB-OFF : RGB-OFF14 = 1 : 2 : 1 (code, 90.5% split 1)",
            parts=(("rgb", "backbone", 1.0), ("rgb", "final", 2.0), ("rgb", "off14", 1.0)),
        ),
        FusionPreset(
            name="code-rgb-rgbdiff",
            description="RGB : RGB-OFF : (RGBdiff : RGBdiff-OFF) = 1 : 1.8 : (1 : 1.8)*0.8 (code, 93.2%)",
            parts=(
                ("rgb", "backbone", 1.0),
                ("rgb", "final", 1.8),
                ("rgbdiff", "backbone", 0.8),
                ("rgbdiff", "final", 1.44),
            ),
        ),
        FusionPreset(
            name="code-rgb-flow",
            description="RGB : RGB-OFF : RGB-OFF14 : (Flow : Flow-OFF) = 1 : 1.6 : 0.4 : (1 : 2)*0.9 "
            "(code, 95.3%)",
            parts=(
                ("rgb", "backbone", 1.0),
                ("rgb", "final", 1.6),
                ("rgb", "off14", 0.4),
                ("flow", "backbone", 0.9),
                ("flow", "final", 1.8),
            ),
        ),
        FusionPreset(
            name="code-rgb-flow-rgbdiff",
            description="RGB : RGB-OFF : Flow : Flow-OFF : RGBdiff-OFF = 1 : 1.6 : 0.9 : 1.8 : 0.6 "
            "(code's active path, 95.5%)",
            parts=(
                ("rgb", "backbone", 1.0),
                ("rgb", "final", 1.6),
                ("flow", "backbone", 0.9),
                ("flow", "final", 1.8),
                ("rgbdiff", "final", 0.6),
            ),
        ),
    )
}


@dataclass(frozen=True)
class FusedScores:
    """Fused video scores ``(N, K)`` in the order of ``names`` (the first file's order)."""

    scores: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]
    class_names: tuple[str, ...]
    streams: tuple[Stream, ...]
    weights: tuple[float, ...]
    softmax: bool


def load_score_files(paths: Sequence[str | Path]) -> list[EvalResult]:
    """Load several ``scores.npz`` files (see :func:`offnet.engine.evaluate.load_eval`)."""
    if not paths:
        raise ValueError("no score files given; pass one or more scores.npz written by `offnet test`")
    return [load_eval(p) for p in paths]


def _source(result: EvalResult, index: int) -> str:
    return str(result.meta.get("path") or f"score file #{index + 1}")


def _expand_level(result: EvalResult, index: int, level: str) -> list[str]:
    if level == "backbone":
        return [result.backbone_level]
    if level == "final":
        return [result.final_level]
    if level == "all":
        return list(result.levels)
    if level == "deep":  # the sub-network's two deepest heads (the official OFF(RGB) ensemble), else the final one
        return list(result.deep_levels or (result.final_level,))
    if level not in result.scores:
        raise ValueError(
            f"level {level!r} is not in {_source(result, index)} (levels there: {list(result.levels)}; "
            f"aliases: {list(LEVEL_ALIASES)})"
        )
    return [level]


def resolve_levels(
    results: Sequence[EvalResult], levels: Sequence[Sequence[str]] | None = None
) -> list[Stream]:
    """Turn level selections into streams, file by file.

    ``levels`` is ``None`` (each file's backbone and final level: the paper's "RGB + OFF(RGB)"), one
    list applied to every file, or one list per file. Entries are level names or the aliases ``backbone``,
    ``final``, ``deep`` (:attr:`EvalResult.deep_levels`) and ``all``; a level named twice for one file is used once.
    """
    if levels is None:
        levels = [["backbone", "final"]]
    if len(levels) == 1:
        levels = [levels[0]] * len(results)
    if len(levels) != len(results):
        raise ValueError(
            f"{len(levels)} level lists for {len(results)} score files: give one list for all files "
            "or one per file, in file order"
        )
    streams: list[Stream] = []
    for index, (result, wanted) in enumerate(zip(results, levels)):
        if not wanted:
            raise ValueError(f"empty level list for {_source(result, index)}")
        chosen: list[str] = []
        for level in wanted:
            chosen.extend(_expand_level(result, index, level.strip()))
        modality = str(result.meta.get("modality", f"file{index + 1}"))
        for level in dict.fromkeys(chosen):
            label = f"{modality}:{level}" if len(results) > 1 else level
            streams.append(Stream(file_index=index, level=level, label=label))
    labels = [s.label for s in streams]
    if len(set(labels)) != len(labels):
        # Two files of one modality: tell them apart by file number.
        streams = [
            Stream(file_index=s.file_index, level=s.level, label=f"#{s.file_index + 1}:{s.level}")
            for s in streams
        ]
    return streams


def _describe_missing(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(sorted(names)[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{shown}{more}"


def align_results(results: Sequence[EvalResult]) -> list[np.ndarray]:
    """Index arrays that reorder every file's rows to the first file's video order.

    Raises ``ValueError`` naming the videos missing from a file (or extra in it), a label that
    disagrees, or different class names.
    """
    reference = results[0]
    orders: list[np.ndarray] = []
    for index, result in enumerate(results):
        if tuple(result.class_names) != tuple(reference.class_names):
            raise ValueError(
                f"{_source(result, index)} has different class names than {_source(reference, 0)} "
                f"({len(result.class_names)} vs {len(reference.class_names)} classes); fuse scores of "
                "the same dataset only"
            )
        position = {name: i for i, name in enumerate(result.names)}
        missing = [n for n in reference.names if n not in position]
        extra = set(result.names) - set(reference.names)
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"{len(missing)} videos of {_source(reference, 0)} are missing from it: "
                             f"{_describe_missing(missing)}")
            if extra:
                parts.append(f"{len(extra)} videos are only in it: {_describe_missing(list(extra))}")
            raise ValueError(
                f"{_source(result, index)} does not hold the same videos: {'; '.join(parts)}. "
                "Score every modality on the same split and subset"
            )
        order = np.array([position[n] for n in reference.names], dtype=np.int64)
        disagree = np.flatnonzero(result.labels[order] != reference.labels)
        if disagree.size:
            i = int(disagree[0])
            raise ValueError(
                f"video {reference.names[i]!r} has label {int(reference.labels[i])} in "
                f"{_source(reference, 0)} but {int(result.labels[order][i])} in {_source(result, index)}"
            )
        orders.append(order)
    return orders


def _softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def _stack_streams(
    results: Sequence[EvalResult], streams: Sequence[Stream], *, softmax: bool
) -> np.ndarray:
    """``(S, N, K)`` float64 stream scores in the first file's video order."""
    orders = align_results(results)
    stacked = []
    for stream in streams:
        result = results[stream.file_index]
        scores = np.asarray(result.scores[stream.level], dtype=np.float64)[orders[stream.file_index]]
        check_scores(scores, results[0].labels)
        stacked.append(_softmax(scores) if softmax else scores)
    return np.stack(stacked)  # (S, N, K)


def _check_weights(weights: Sequence[float], streams: Sequence[Stream]) -> tuple[float, ...]:
    if len(weights) != len(streams):
        raise ValueError(
            f"{len(weights)} weights for {len(streams)} streams ({', '.join(s.label for s in streams)}); "
            "give one weight per stream in that order"
        )
    out = tuple(float(w) for w in weights)
    if any(not np.isfinite(w) or w < 0 for w in out) or not any(w > 0 for w in out):
        raise ValueError(f"weights must be finite, >= 0 and not all 0, got {list(out)}")
    return out


def fuse(
    results: Sequence[EvalResult],
    streams: Sequence[Stream],
    weights: Sequence[float] | None = None,
    *,
    softmax: bool = False,
) -> FusedScores:
    """Weighted sum of the streams' video scores; ``weights=None`` is the paper's plain sum.

    Args:
        results: loaded score files (:func:`load_score_files`).
        streams: what to fuse (:func:`resolve_levels`).
        weights: one non-negative weight per stream, in stream order.
        softmax: fuse per-stream class probabilities instead of raw logits.
    """
    if not streams:
        raise ValueError("nothing to fuse: no streams selected")
    weights = _check_weights([1.0] * len(streams) if weights is None else weights, streams)
    stacked = _stack_streams(results, streams, softmax=softmax)  # (S, N, K)
    fused = np.tensordot(np.asarray(weights), stacked, axes=(0, 0))  # (N, K)
    reference = results[0]
    return FusedScores(
        scores=fused,
        labels=reference.labels.copy(),
        names=tuple(reference.names),
        class_names=tuple(reference.class_names),
        streams=tuple(streams),
        weights=weights,
        softmax=softmax,
    )


@dataclass(frozen=True)
class SearchResult:
    """Outcome of :func:`search_weights`: the best weights and their validation metrics."""

    weights: tuple[float, ...]
    mean_class_accuracy: float
    top1: float
    method: str  # "grid" or "coordinate"
    evaluated: int  # weight vectors tried


def _score_weight_batch(
    weights: np.ndarray, stacked: np.ndarray, labels: np.ndarray, class_onehot: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean class accuracy and top-1 of ``M`` weight vectors ``(M, S)`` on ``stacked (S, N, K)``."""
    _, n, k = stacked.shape
    chunk = max(1, int(2e7 // max(1, n * k)))
    mca, top1 = [], []
    support = class_onehot.sum(axis=0)  # (K,)
    present = support > 0
    for start in range(0, weights.shape[0], chunk):
        w = weights[start : start + chunk]
        fused = np.einsum("ms,snk->mnk", w, stacked)  # (M, N, K)
        correct = (fused.argmax(axis=2) == labels[None, :]).astype(np.float64)  # (M, N)
        per_class = correct @ class_onehot  # (M, K) hits per class
        mca.append((per_class[:, present] / support[present]).mean(axis=1))
        top1.append(correct.mean(axis=1))
    return np.concatenate(mca), np.concatenate(top1)


def _best(weights: np.ndarray, mca: np.ndarray, top1: np.ndarray) -> int:
    # Rank by mean class accuracy, then top-1, then closeness to the plain sum (all ones), which keeps
    # ties from drifting to extreme weights that happen to fit the validation videos.
    distance = np.abs(weights - 1.0).sum(axis=1)
    return int(np.lexsort((distance, -top1, -mca))[0])


def search_weights(
    results: Sequence[EvalResult],
    streams: Sequence[Stream],
    *,
    grid: Sequence[float] = DEFAULT_GRID,
    softmax: bool = False,
    rounds: int = 3,
) -> SearchResult:
    """Find fusion weights that maximise mean class accuracy on *validation* score files.

    The first stream's weight is fixed at 1 (an overall scale changes no prediction); every other
    weight takes values from ``grid``. With few streams all combinations are tried; when there would be
    more than 20,000 the search goes one weight at a time (``rounds`` sweeps of coordinate ascent,
    starting from the plain sum).

    Raises ``ValueError`` when a file's recorded subset is ``test`` (or unknown): weights tuned on
    the test split make its accuracy meaningless.
    """
    for index, result in enumerate(results):
        subset = result.meta.get("subset")
        if subset != "val":
            raise ValueError(
                f"refusing to search fusion weights on {_source(result, index)}: its subset is "
                f"{subset!r}, not 'val'. Tune weights on validation scores only — a held-out part of the "
                "training split, written by `offnet test RUN --subset val` — and apply them to test scores"
            )
    if not grid or any(g < 0 for g in grid):
        raise ValueError(f"the weight grid must be non-empty and >= 0, got {list(grid)}")
    stacked = _stack_streams(results, streams, softmax=softmax)  # (S, N, K)
    labels = results[0].labels
    num_streams, _, num_classes = stacked.shape
    onehot = np.eye(num_classes, dtype=np.float64)[labels]  # (N, K)
    values = np.asarray(sorted(set(float(g) for g in grid) | {1.0}))

    if num_streams == 1:
        candidates = np.ones((1, 1))
        mca, top1 = _score_weight_batch(candidates, stacked, labels, onehot)
        return SearchResult((1.0,), float(mca[0]), float(top1[0]), "grid", 1)

    combos = len(values) ** (num_streams - 1)
    if combos <= _MAX_GRID_COMBOS:
        rest = np.array(list(itertools.product(values, repeat=num_streams - 1)))
        candidates = np.concatenate([np.ones((len(rest), 1)), rest], axis=1)  # (M, S)
        mca, top1 = _score_weight_batch(candidates, stacked, labels, onehot)
        i = _best(candidates, mca, top1)
        logger.info("fusion weight search: %d combinations on %d videos", len(candidates), len(labels))
        return SearchResult(
            tuple(float(w) for w in candidates[i]), float(mca[i]), float(top1[i]), "grid", len(candidates)
        )

    current = np.ones(num_streams)
    evaluated = 0
    best_mca, best_top1 = _score_weight_batch(current[None], stacked, labels, onehot)
    for _ in range(rounds):
        changed = False
        for s in range(1, num_streams):
            candidates = np.repeat(current[None], len(values), axis=0)
            candidates[:, s] = values
            mca, top1 = _score_weight_batch(candidates, stacked, labels, onehot)
            evaluated += len(candidates)
            i = _best(candidates, mca, top1)
            if candidates[i, s] != current[s]:
                changed = True
                current = candidates[i].copy()
                best_mca, best_top1 = mca[i : i + 1], top1[i : i + 1]
        if not changed:
            break
    logger.info("fusion weight search: coordinate ascent, %d weight vectors tried", evaluated)
    return SearchResult(
        tuple(float(w) for w in current), float(best_mca[0]), float(best_top1[0]), "coordinate", evaluated
    )


def preset_streams(preset: FusionPreset, results: Sequence[EvalResult]) -> tuple[list[Stream], list[float]]:
    """Streams and weights of a preset, matching score files to its modalities by recorded modality."""
    by_modality: dict[str, int] = {}
    for index, result in enumerate(results):
        modality = result.meta.get("modality")
        if modality in by_modality:
            raise ValueError(
                f"two score files have modality {modality!r} ({_source(results[by_modality[modality]], 0)}, "
                f"{_source(result, index)}); preset {preset.name!r} needs one file per modality"
            )
        by_modality[str(modality)] = index
    missing = [m for m in preset.modalities if m not in by_modality]
    if missing:
        raise ValueError(
            f"preset {preset.name!r} needs score files of modalities {list(preset.modalities)}; "
            f"missing {missing} (given: {sorted(by_modality)})"
        )
    streams, weights = [], []
    for modality, role, weight in preset.parts:
        index = by_modality[modality]
        (level,) = _expand_level(results[index], index, role)
        streams.append(Stream(file_index=index, level=level, label=f"{modality}:{level}"))
        weights.append(weight)
    return streams, weights

