"""``offnet predict`` (classify videos with a checkpoint) and ``offnet visualize`` (see the OFF)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify videos with a trained checkpoint",
                       description="Score video files or frame folders with a run directory or checkpoint, "
                       "using the run's test protocol; prints the top classes of the fused score.")
    p.add_argument("checkpoint", help="run directory or .pt checkpoint")
    p.add_argument("videos", nargs="+", help="video files or frame folders")
    p.add_argument("--segments", type=int, default=None, help="segments per video (default: the run's test value)")
    p.add_argument("--crops", type=int, default=1, choices=(1, 3, 10))
    p.add_argument("--top", type=int, default=5, help="classes to print per video (default: 5)")
    p.add_argument("--json", dest="json_out", default=None, help="also write the predictions to this JSON file")
    p.add_argument("--device", default=None)
    p.add_argument("--on-bad-video", choices=["fail", "skip"], default="fail",
                   help="a missing, unreadable, truncated or too-short video: fail = stop naming it, exit 1 "
                   "(default); skip = leave it out and list it at the end")
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


def run_predict(args: argparse.Namespace) -> int:
    from ..fileio import atomic_write_text, check_writable
    from ..tools.predict import Predictor

    if args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}")
    if args.segments is not None and args.segments < 1:
        raise ValueError(f"--segments must be at least 1, got {args.segments}")
    if args.json_out:
        check_writable(Path(args.json_out))
    predictor = Predictor(args.checkpoint, segments=args.segments, crops=args.crops, device=args.device)
    predictions = predictor.predict(args.videos, on_bad_video=args.on_bad_video)
    records = []
    for pred in predictions:
        print(pred.video)
        for name, prob in pred.top(args.top):
            print(f"  {prob:6.1%}  {name}")
        records.append({"video": pred.video, "top": pred.top(args.top),
                        "levels": {k: v.tolist() for k, v in pred.levels.items()}})
    for bad in predictor.skipped:
        print(f"skipped {bad}")
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps({"checkpoint": str(predictor.checkpoint),
                                                     "class_names": list(predictor.class_names),
                                                     "predictions": records, "skipped": predictor.skipped},
                                                    indent=2, allow_nan=False))
    return 0


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
