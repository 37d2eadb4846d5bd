"""``offnet test`` (score a trained model with the paper's protocol) and ``offnet fuse`` (fuse scores).

Examples::

    offnet test runs/off_rgb --crops 10                      # 25 segments x 10 crops, split of the run
    offnet test runs/off_rgb --crops 2                       # centre crop and its mirror
    offnet test runs/off_rgb --subset val --out runs/off_rgb/val   # held-out training videos
    offnet fuse runs/off_rgb/test-split1/scores.npz runs/off_flow/test-split1/scores.npz
    offnet fuse rgb.npz flow.npz --levels rgb,off7 --levels flow,off7 --weights 1,1.6,0.9,1.8
    offnet fuse rgb.npz flow.npz --preset code-rgb-flow
    offnet fuse rgb.npz flow.npz --search --val rgb_val.npz flow_val.npz
    offnet fuse s1/rgb.npz s2/rgb.npz s3/rgb.npz --split-average
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["register", "run_test", "run_fuse"]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------- parsing
def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _weights(text: str) -> list[float]:
    try:
        return [float(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"weights must be comma-separated numbers, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    from offnet.engine.fusion import PRESETS

    p = subparsers.add_parser(
        "test",
        help="score a trained model on the test split (25 segments x 1/3/10 crops)",
        description="Rebuild the model of a checkpoint (or the final stage of a run directory), score the "
        "test split named in its config with the paper's protocol (25 segments, "
        "max over crops, mean over segments), print top-1/top-5/mean class accuracy per level and write "
        "scores.npz, metrics.json and confusion.png.",
    )
    p.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT",
                   help="run directory, stage directory or .pt file")
    p.add_argument("--split", type=int, default=None, help="official split (1-3); default: the run's")
    p.add_argument("--subset", choices=("test", "val"), default="test",
                   help="test split, or the held-out validation part of the training split (for fusion "
                   "weight search); default test")
    p.add_argument("--segments", type=_positive_int, default=None, help="segments per video (default: the "
                   "run's data.test_segments, paper 25)")
    p.add_argument("--crops", type=int, choices=(1, 2, 3, 10), default=1,
                   help="crops per frame: 1 centre, 2 centre and its mirror, 3 along the longer side, 10 corners, "
                   "centre and their mirrors (paper: 10); mirrored crops of a run trained with data.flip_map score "
                   "each class under its mirror image's name")
    p.add_argument("--crop-agg", choices=("max", "mean"), default="max",
                   help="aggregate crops by max (authors' code) or mean; default max")
    p.add_argument("--data-root", default=None, help="dataset root (default: the run's data.root)")
    p.add_argument("--frames-root", default=None,
                   help="extracted frames (default: the run's data.frames_root)")
    p.add_argument("--out", default=None, help="output folder (default: RUN/<subset>-split<N>)")
    p.add_argument("--batch-size", type=_positive_int, default=1, help="videos per batch (default 1)")
    p.add_argument("--workers", type=int, default=2, help="data loader workers (default 2)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--chunk-images", type=_positive_int, default=None,
                   help="frames per forward pass (default 32 on a CPU, where small forwards are faster, 128 on a "
                   "GPU); lower it if memory runs out, or use --max-memory")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="autocast precision of the forward passes: bf16 on CPUs with bf16 support and GPUs, "
                   "fp16 on GPUs (default fp32)")
    p.add_argument("--compile", action="store_true",
                   help="run the network through torch.compile (about 1.5x faster on a CPU once compiled; the "
                   "first video of each input shape compiles for a minute or more; falls back to the plain "
                   "forward with a warning where compiling fails)")
    p.add_argument("--no-optimize", action="store_true",
                   help="score with the plain eval-mode forward (default: BatchNorm folded into the convolutions, "
                   "channels-last on a CPU; same scores within float rounding, faster where offnet bench pipelines "
                   "shows it)")
    p.add_argument("--max-memory", type=float, default=None, metavar="MB",
                   help="bound the activation memory of the test protocol: frames per forward (crops, then "
                   "windows of segments) sized to this budget; replaces --chunk-images; scores are unchanged")
    p.add_argument("--on-bad-video", choices=("fail", "skip"), default="fail",
                   help="stop at an unreadable video (default) or leave it out of the scores")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_test)

    f = subparsers.add_parser(
        "fuse",
        help="fuse score files of several levels/modalities (plain sum, weights, presets, weight search)",
        description="Weighted sum of video scores from scores.npz files of `offnet test`, matched by video "
        "name. Default: the plain sum of each file's backbone and final level (paper). Streams are the "
        "selected levels of each file, in file order.",
        epilog="presets (authors' hand-tuned weights, tuned on test data):\n"
        + "\n".join(f"  {name}: {preset.description}" for name, preset in PRESETS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f.add_argument("scores", nargs="+", metavar="SCORES.npz", help="score files (or folders holding one)")
    f.add_argument("--levels", action="append", default=None, metavar="L1,L2,…",
                   help="levels to fuse: once for every file, or once per file in file order; names or "
                   "the aliases backbone, final, deep (the two deepest sub-network heads), all "
                   "(default backbone,final)")
    f.add_argument("--weights", type=_weights, default=None, metavar="W1,W2,…",
                   help="one weight per stream, in stream order (default: all 1 = plain sum)")
    f.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="streams and weights of the authors' code (files matched by modality)")
    f.add_argument("--softmax", action="store_true", help="fuse class probabilities instead of raw logits")
    f.add_argument("--search", action="store_true",
                   help="grid-search weights on --val score files, then apply them to SCORES")
    f.add_argument("--val", nargs="+", default=None, metavar="VAL.npz",
                   help="validation score files (offnet test --subset val), same modalities in same order")
    f.add_argument("--grid", type=_weights, default=None, metavar="G1,G2,…",
                   help="weights tried per stream by --search (default 0,0.2,…,2)")
    f.add_argument("--split-average", action="store_true",
                   help="SCORES hold splits 1-3: fuse each split, report each and the mean")
    f.add_argument("--out", default=None, help="write fusion.json (and fused_scores.npz) into this folder")
    f.set_defaults(func=run_fuse)


# ---------------------------------------------------------------------------------------------- test
def run_test(args: argparse.Namespace) -> int:
    from offnet.engine.evaluate import result_metrics
    from offnet.engine.scoring import score_checkpoint

    scored = score_checkpoint(
        args.checkpoint, subset=args.subset, split=args.split, data_root=args.data_root,
        frames_root=args.frames_root, segments=args.segments, crops=args.crops, crop_agg=args.crop_agg,
        out=args.out, batch_size=args.batch_size, workers=args.workers, device=args.device,
        chunk_images=args.chunk_images, on_bad_video=args.on_bad_video, progress=not args.no_progress,
        max_memory_mb=args.max_memory, precision=args.precision, compile=args.compile,
        optimize=not args.no_optimize,
    )
    if scored.result is None:  # a torchrun rank other than 0: rank 0 gathered its scores and writes them
        return 0
    result, meta = scored.result, scored.result.meta
    print(f"scored {len(result.names)} {meta['subset']} videos of split {meta['split']} ({meta['root']}) with "
          f"{scored.checkpoint}: {meta['segments']} segments x {args.crops} crops (the paper's protocol: "
          "25 segments x 10 crops, --crops 10)")
    _print_table(result_metrics(result), final_level=result.final_level, deep_name=result.deep_name)
    paths = scored.paths
    print(f"wrote {paths['scores']}, {paths['metrics']}, {paths['confusion']}")
    return 0


def _print_table(metrics: dict[str, Any], *, final_level: str, deep_name: str | None = None) -> None:
    k = min(m.top5_k for m in metrics.values())  # top-5, or top-K with fewer than 5 classes
    width = max(len(level) for level in metrics) + 2
    print(f"{'level':<{width}} {'top-1':>7} {f'top-{k}':>7} {'mean-class':>11} {'videos':>7}")
    for level, m in metrics.items():
        name = f"{level}*" if level == final_level else level
        print(f"{name:<{width}} {100 * m.top1:6.2f}% {100 * m.top5:6.2f}% "
              f"{100 * m.mean_class_accuracy:10.2f}% {m.num_videos:>7}")
    print("* final level" + (f"; {deep_name} = plain sum of the sub-network's two deepest heads (OFF(RGB) as the "
                              "official ensembles score it)" if deep_name else "")
          + "; backbone+final = plain sum of the backbone head and the final level (the paper's fusion)")


# ---------------------------------------------------------------------------------------------- fuse
def _split_levels(levels: Sequence[str] | None) -> list[list[str]] | None:
    if levels is None:
        return None
    return [[part.strip() for part in entry.split(",") if part.strip()] for entry in levels]


def _group_by_split(results: Sequence[Any], what: str) -> dict[int, list[Any]]:
    groups: dict[int, list[Any]] = {}
    for result in results:
        split = result.meta.get("split")
        if split is None:
            raise ValueError(f"{result.meta.get('path')} records no split; --split-average needs score files "
                             "written by `offnet test` (which records --split)")
        groups.setdefault(int(split), []).append(result)
    sizes = {len(g) for g in groups.values()}
    if len(groups) < 2 or len(sizes) != 1:
        counts = {s: len(g) for s, g in sorted(groups.items())}
        raise ValueError(f"--split-average needs the same number of {what} files for each of at least two "
                         f"splits; got files per split {counts}")
    return dict(sorted(groups.items()))


def _streams_and_weights(
    args: argparse.Namespace, results: Sequence[Any]
) -> tuple[list[Any], list[float] | None]:
    from offnet.engine.fusion import PRESETS, preset_streams, resolve_levels

    if args.preset:
        if args.levels:
            raise ValueError("--preset selects its own levels; drop --levels")
        streams, weights = preset_streams(PRESETS[args.preset], results)
        return streams, weights
    return resolve_levels(results, _split_levels(args.levels)), None


def _check_val_matches(test: Sequence[Any], val: Sequence[Any]) -> None:
    if len(test) != len(val):
        raise ValueError(f"{len(val)} --val files for {len(test)} score files: give one validation file per "
                         "score file, same modalities in the same order")
    for t, v in zip(test, val):
        if t.meta.get("modality") != v.meta.get("modality") or t.levels != v.levels:
            raise ValueError(
                f"validation file {v.meta.get('path')} ({v.meta.get('modality')}, {list(v.levels)}) does not "
                f"match {t.meta.get('path')} ({t.meta.get('modality')}, {list(t.levels)})"
            )
    overlap = set(test[0].names) & set(val[0].names)
    if overlap:
        raise ValueError(f"{len(overlap)} videos are in both the validation and the test scores (e.g. "
                         f"{sorted(overlap)[0]}); validation videos must be held out of the test set")


def _fuse_group(args: argparse.Namespace, results: list[Any], val: list[Any] | None) -> dict[str, Any]:
    from offnet.engine.fusion import DEFAULT_GRID, fuse, search_weights
    from offnet.engine.metrics import compute_metrics

    streams, weights = _streams_and_weights(args, results)
    searched = None
    if args.search:
        assert val is not None
        _check_val_matches(results, val)
        val_streams, _ = _streams_and_weights(args, val)
        searched = search_weights(val, val_streams, grid=args.grid or DEFAULT_GRID, softmax=args.softmax)
        weights = list(searched.weights)
    elif args.weights is not None:
        weights = args.weights
    fused = fuse(results, streams, weights, softmax=args.softmax)
    single = {
        s.label: compute_metrics(results[s.file_index].scores[s.level], results[s.file_index].labels,
                                 results[s.file_index].class_names)
        for s in streams
    }
    return {
        "streams": [s.label for s in streams],
        "weights": list(fused.weights),
        "softmax": fused.softmax,
        "single": single,
        "fused": compute_metrics(fused.scores, fused.labels, fused.class_names),
        "search": searched,
        "fused_scores": fused,
    }


def _print_group(title: str, group: dict[str, Any]) -> None:
    print(title)
    width = max(len(s) for s in [*group["streams"], "fused"]) + 2
    print(f"  {'stream':<{width}} {'weight':>7} {'top-1':>8} {'mean-class':>11}")
    for label, weight in zip(group["streams"], group["weights"]):
        m = group["single"][label]
        print(f"  {label:<{width}} {weight:7.3g} {100 * m.top1:7.2f}% {100 * m.mean_class_accuracy:10.2f}%")
    m = group["fused"]
    print(f"  {'fused':<{width}} {'':>7} {100 * m.top1:7.2f}% {100 * m.mean_class_accuracy:10.2f}%  "
          f"({m.num_videos} videos{', softmax' if group['softmax'] else ''})")
    s = group["search"]
    if s is not None:
        print(f"  weights searched on validation scores ({s.method}, {s.evaluated} weight vectors): "
              f"val mean-class {100 * s.mean_class_accuracy:.2f}%, top-1 {100 * s.top1:.2f}%")


def run_fuse(args: argparse.Namespace) -> int:
    import numpy as np

    from offnet.engine.fusion import load_score_files
    from offnet.fileio import atomic_savez, atomic_write_text, check_writable

    if args.out:
        check_writable(Path(args.out), is_dir=True)

    if args.search and not args.val:
        raise ValueError("--search needs --val VAL.npz… (scores of `offnet test --subset val`); weights are "
                         "never tuned on the test scores")
    if args.val and not args.search:
        raise ValueError("--val is only used with --search")
    if args.search and (args.weights is not None):
        raise ValueError("--search finds the weights; drop --weights")
    if args.preset and args.weights is not None:
        raise ValueError(f"--preset {args.preset} sets its own weights; drop --weights")
    results = load_score_files(args.scores)
    val = load_score_files(args.val) if args.val else None
    if val is not None:
        for v in val:
            if v.meta.get("subset") == "test":
                raise ValueError(f"refusing to search fusion weights on {v.meta.get('path')}: it holds test "
                                 "scores (subset 'test'). Use `offnet test RUN --subset val` for --val files")
    if args.split_average:
        groups = _group_by_split(results, "score")
        val_groups = _group_by_split(val, "--val") if val is not None else None
        if val_groups is not None and set(val_groups) != set(groups):
            raise ValueError(f"--val files cover splits {sorted(val_groups)}, score files {sorted(groups)}")
    else:
        groups = {0: results}
        val_groups = {0: val} if val is not None else None

    summary: dict[str, Any] = {"splits": {}}
    outcomes = {}
    for split, group_results in groups.items():
        outcome = _fuse_group(args, group_results, val_groups[split] if val_groups else None)
        outcomes[split] = outcome
        title = f"split {split}:" if args.split_average else "fusion:"
        _print_group(title, outcome)
        summary["splits"][str(split)] = _jsonable_group(outcome)
    if args.search:
        print("weights were tuned on validation scores only and then applied unchanged to the test scores")
    if args.split_average:
        top1 = float(np.mean([o["fused"].top1 for o in outcomes.values()]))
        mca = float(np.mean([o["fused"].mean_class_accuracy for o in outcomes.values()]))
        print(f"mean over splits {sorted(outcomes)}: top-1 {100 * top1:.2f}%, mean-class {100 * mca:.2f}%")
        summary["mean"] = {"top1": top1, "mean_class_accuracy": mca, "splits": sorted(outcomes)}
    if args.out:
        out = Path(args.out)
        atomic_write_text(out / "fusion.json", json.dumps(summary, indent=2) + "\n")
        if not args.split_average:
            fused = outcomes[0]["fused_scores"]
            atomic_savez(out / "fused_scores.npz", scores=fused.scores.astype(np.float32),
                         labels=fused.labels, names=np.array(fused.names), class_names=np.array(fused.class_names))
        print(f"wrote {out / 'fusion.json'}")
    return 0


def _jsonable_group(group: dict[str, Any]) -> dict[str, Any]:
    s = group["search"]
    return {
        "streams": group["streams"],
        "weights": group["weights"],
        "softmax": group["softmax"],
        "single": {k: {"top1": m.top1, "mean_class_accuracy": m.mean_class_accuracy}
                   for k, m in group["single"].items()},
        "fused": group["fused"].to_dict(),
        "search": None if s is None else {
            "weights": list(s.weights), "val_mean_class_accuracy": s.mean_class_accuracy, "val_top1": s.top1,
            "method": s.method, "evaluated": s.evaluated,
        },
    }
