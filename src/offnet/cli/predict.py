"""``offnet predict`` (classify videos with a checkpoint) and ``offnet visualize`` (see the OFF)."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

__all__ = ["register"]


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify videos with a trained checkpoint",
                       description="Score video files, frame folders and folders of videos (searched recursively) "
                       "with a run directory, checkpoint or exported safetensors model, using the run's test "
                       "protocol; prints the top classes of the fused score, or streams one line per video to "
                       "--out. Under torchrun every rank scores its share and rank 0 merges the parts.")
    p.add_argument("checkpoint", help="run directory, .pt checkpoint, or .safetensors export (or its folder)")
    p.add_argument("videos", nargs="+", metavar="PATH",
                   help="video files, frame folders, or folders searched recursively for them")
    p.add_argument("--segments", type=int, default=None, help="segments per video (default: the run's test value)")
    p.add_argument("--crops", type=int, default=1, choices=(1, 2, 3, 10),
                   help="crops per frame (see offnet test --crops; default 1)")
    p.add_argument("--top", type=int, default=5, help="classes to print per video (default: 5)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="write one result per video as it is scored: FILE.jsonl (JSON Lines, with raw scores) or "
                   "FILE.csv (top classes); under torchrun each rank writes FILE.rankN, merged into FILE at the end")
    p.add_argument("--resume", action="store_true", help="continue --out: skip the videos already in it")
    p.add_argument("--json", dest="json_out", default=None, help="also write the predictions to this JSON file")
    p.add_argument("--batch-size", type=int, default=1, help="videos per forward pass (default: 1)")
    p.add_argument("--workers", type=_count, default=0,
                   help="loader processes that check and decode videos (default: 0, in this process)")
    p.add_argument("--device", default=None)
    p.add_argument("--no-optimize", action="store_true",
                   help="score with the plain eval-mode forward (default: BatchNorm folded, channels-last on a CPU)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--on-bad-video", choices=["fail", "skip"], default="fail",
                   help="a missing, unreadable, truncated or too-short video: fail = stop naming it, exit 1, "
                   "results so far kept in --out (default); skip = leave it out, listed with its reason in "
                   "--out and at the end")
    t = p.add_argument_group("over time", "classify each video window by window (a timeline)")
    t.add_argument("--window", type=float, default=None, metavar="SECONDS",
                   help="score windows of this many seconds; --out gets one row per window (start, end, top "
                   "classes: .csv, .jsonl or .json) and --plot a PNG strip of the top classes over time")
    t.add_argument("--stride", type=float, default=None, metavar="SECONDS",
                   help="seconds from one window's start to the next (default: --window, no overlap)")
    t.add_argument("--fps", type=float, default=None,
                   help="frame rate (default: the video's own; required for frame folders)")
    t.add_argument("--plot", default=None, metavar="PNG", help="the timeline strip (default: --out with .png)")
    p.set_defaults(func=run_predict)

    v = sub.add_parser("visualize", help="draw the Raw OFF and OFF features of one clip (PNG)",
                       description="Draw, for consecutive segment pairs of a video, the frames, the pixel "
                       "temporal difference and gradient (Raw OFF), the OFF features of the model's first "
                       "tapped layer, and the class scores per level of the whole test clip.")
    v.add_argument("checkpoint", help="run directory or .pt checkpoint")
    v.add_argument("video", help="video file or frame folder")
    v.add_argument("--out", required=True, help="PNG to write")
    v.add_argument("--pairs", type=int, default=4, help="segment pairs to draw (default: 4)")
    v.set_defaults(func=run_visualize)


def _check_counts(args: argparse.Namespace) -> None:
    """--top, --segments and --batch-size, shared by whole-video and windowed prediction."""
    if args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}")
    if args.segments is not None and args.segments < 1:
        raise ValueError(f"--segments must be at least 1, got {args.segments}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")


def _check_predict_args(args: argparse.Namespace) -> None:
    from ..tools.results import result_format

    _check_counts(args)
    if args.resume and not args.out:
        raise ValueError("--resume continues an --out file; name it with --out FILE.jsonl or FILE.csv")
    if args.out:
        result_format(args.out)


def run_predict(args: argparse.Namespace) -> int:
    from ..fileio import atomic_write_text, check_writable
    from ..tools.batch import find_videos, shard, shard_rank
    from ..tools.predict import Predictor
    from ..tools.results import ResultWriter, part_path, read_results

    if args.window is not None or args.stride is not None or args.plot is not None:
        return _run_timeline(args)
    _check_predict_args(args)
    rank, world = shard_rank()
    if world > 1 and args.json_out:
        raise ValueError("--json gathers every prediction in one process; under torchrun use --out FILE.jsonl")
    if world > 1 and not args.out:
        raise ValueError("under torchrun name the results file with --out FILE.jsonl (or .csv): each rank writes "
                         "its part and rank 0 merges them")
    for path in (args.json_out, args.out):
        if path:
            check_writable(Path(path))
    videos = find_videos(args.videos)
    target = None if not args.out else Path(args.out) if world == 1 else part_path(args.out, rank)
    done: set[str] = set()
    if target is not None:
        existing = [p for p in {Path(args.out), target} if p.is_file() and p.stat().st_size > 0]
        if existing and not args.resume:
            raise ValueError(f"{existing[0]} already holds results: pass --resume to continue it, or remove it or "
                             "choose another --out")
        if args.resume:
            for path in {Path(args.out), target}:
                done |= {r["video"] for r in read_results(path, top=args.top, repair=path == target)}
    device = args.device
    ctx = None
    if world > 1:
        from datetime import timedelta

        from ..engine.distributed import init_distributed

        # ranks meet only once, at the end: a shard may take days, so the rendezvous must not time out first
        ctx = init_distributed(args.device or "auto", backend="gloo", timeout=timedelta(days=30))
        device = str(ctx.device)
    predictor = Predictor(args.checkpoint, segments=args.segments, crops=args.crops, device=device,
                          optimize=not args.no_optimize)
    mine = shard(videos, rank, world)
    todo = [(i, v) for i, v in mine if v not in done]
    if done:
        print(f"resuming: {len(mine) - len(todo)} of {len(mine)} videos already in {target}")
    records, skipped = [], []
    status: dict = {"rank": rank, "ok": True, "message": ""}
    writer = ResultWriter(target, top=args.top) if target is not None else contextlib.nullcontext()
    try:
        with writer:
            outcomes = predictor.iter_predict(
                [v for _, v in todo], indices=[i for i, _ in todo], batch_size=args.batch_size,
                workers=args.workers, on_bad_video=args.on_bad_video, progress=not args.no_progress,
                progress_initial=len(mine) - len(todo), progress_total=len(mine))
            for outcome in outcomes:
                if target is not None:
                    writer.write(outcome)
                if outcome.prediction is None:
                    skipped.append(f"{outcome.video}: {outcome.error}")
                    continue
                pred = outcome.prediction
                if target is None:
                    print(pred.video)
                    for name, prob in pred.top(args.top):
                        print(f"  {prob:6.1%}  {name}")
                if args.json_out:
                    records.append({"video": pred.video, "top": pred.top(args.top),
                                    "levels": {k: v.tolist() for k, v in pred.levels.items()}})
    except Exception as exc:
        status = {"rank": rank, "ok": False, "message": str(exc)}
        if ctx is None:
            if target is not None and isinstance(exc, ValueError) and target.is_file():
                raise ValueError(f"{exc} (the videos finished so far are in {target}: add --resume to go on)") from exc
            raise
    for bad in skipped:
        print(f"skipped {bad}")
    if target is not None:
        print(f"rank {rank}: " if world > 1 else "", end="")
        print(f"{len(todo) - len(skipped)} scored, {len(skipped)} skipped this run -> {target}")
    if ctx is not None:
        _finish_shards(args, videos, ctx, status)
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps({"checkpoint": str(predictor.checkpoint),
                                                     "class_names": list(predictor.class_names),
                                                     "predictions": records, "skipped": skipped},
                                                    indent=2, allow_nan=False))
    return 0


def _run_timeline(args: argparse.Namespace) -> int:
    """``--window``: one timeline per video into ``--out``, and the PNG strip."""
    from ..fileio import check_writable
    from ..tools.batch import find_videos, shard_rank
    from ..tools.predict import Predictor
    from ..tools.timeline import TIMELINE_SUFFIXES, plot_timeline, save_timeline, video_timeline

    if args.window is None:
        raise ValueError("--stride and --plot describe a timeline: add --window SECONDS")
    stride = args.window if args.stride is None else args.stride
    if args.window <= 0 or stride <= 0:
        raise ValueError(f"--window and --stride must be positive seconds, got {args.window} and {stride}")
    if args.fps is not None and args.fps <= 0:
        raise ValueError(f"--fps must be positive, got {args.fps}")
    _check_counts(args)
    if not args.out or Path(args.out).suffix.lower() not in TIMELINE_SUFFIXES:
        raise ValueError(f"--window writes a timeline: name it with --out FILE{'|'.join(TIMELINE_SUFFIXES)}")
    for option, name in (("resume", "--resume"), ("json_out", "--json")):
        if getattr(args, option):
            raise ValueError(f"{name} does not apply to --window timelines; the timeline goes to --out")
    if shard_rank()[1] > 1:
        raise ValueError("--window runs in one process; launch it without torchrun")
    plot = Path(args.plot) if args.plot else Path(args.out).with_suffix(".png")
    check_writable(Path(args.out))
    check_writable(plot)
    videos = find_videos(args.videos)
    predictor = Predictor(args.checkpoint, segments=args.segments, crops=args.crops, device=args.device,
                          optimize=not args.no_optimize)
    timelines = []
    for video in videos:
        timeline = video_timeline(predictor, video, window=args.window, stride=stride, fps=args.fps,
                                  batch_size=args.batch_size, workers=args.workers)
        timelines.append(timeline)
        print(f"{video}: {len(timeline.windows)} windows of {args.window:g} s every {stride:g} s "
              f"({timeline.num_frames} frames at {timeline.fps:g} fps)")
        for w in timeline.windows:
            ((name, prob),) = w.top(timeline.class_names, 1)
            print(f"  {w.start:8.2f} - {w.end:8.2f} s  {prob:6.1%}  {name}")
    save_timeline(timelines, args.out, top=args.top)
    plot_timeline(timelines, plot)
    print(f"wrote {args.out} and {plot}")
    return 0


def _finish_shards(args: argparse.Namespace, videos: list[str], ctx, status: dict) -> None:
    """Wait for every rank; rank 0 merges the parts into ``--out`` in input order when all succeeded."""
    import torch.distributed as dist

    from ..engine.distributed import all_gather_objects
    from ..tools.results import merge_results, part_path

    try:
        statuses = all_gather_objects(status, ctx)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    failed = [s for s in statuses if not s["ok"]]
    if failed:
        first = failed[0]
        raise RuntimeError(f"rank {first['rank']} failed: {first['message']} (parts kept in "
                           f"{part_path(args.out, 0)}…; fix it and rerun with --resume)")
    if ctx.is_main:
        count = merge_results(args.out, [part_path(args.out, r) for r in range(ctx.world_size)], order=videos,
                              top=args.top)
        print(f"merged {ctx.world_size} parts: {count} videos -> {args.out}")


def run_visualize(args: argparse.Namespace) -> int:
    from ..tools.predict import Predictor
    from ..tools.visualize import off_maps, plot_off

    if args.pairs < 1:
        raise ValueError(f"--pairs must be at least 1, got {args.pairs}")
    from ..fileio import check_writable

    check_writable(Path(args.out))
    predictor = Predictor(args.checkpoint)
    clip = predictor.clip(args.video)  # the whole test clip: its scores are the test protocol's (1 crop)
    maps = off_maps(predictor.model, clip)
    out = plot_off(maps, args.out, class_names=predictor.class_names, title=Path(args.video).name,
                   max_pairs=args.pairs)
    print(f"wrote {out}")
    return 0
