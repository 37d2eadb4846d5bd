"""``offnet stream``: rolling prediction on a camera, a stream URL or a file, optionally drawn onto a video."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stream", help="rolling prediction on a camera, stream URL or video file",
                       description="Read frames from a camera index (0, 1 …, through OpenCV), a URL (rtsp://, "
                       "http://, through PyAV) or a file, cut a segment every few frames and score the sliding "
                       "window of the last segments incrementally (one backbone pass and one OFF pair per new "
                       "segment); print the rolling prediction and optionally write the video with the label "
                       "drawn on it. Stop a camera with Ctrl-C (the overlay so far is kept).")
    p.add_argument("checkpoint", help="run directory, .pt checkpoint, or .safetensors export (or its folder)")
    p.add_argument("source", help="camera index, stream URL or video file")
    p.add_argument("--window", type=float, default=None, metavar="SECONDS",
                   help="seconds the sliding window spans; a segment is cut every window x fps / segments "
                   "frames (default: the run's fixed OFF interval if it has one, else a 2-second window)")
    p.add_argument("--segments", type=int, default=None,
                   help="segments in the window (default: the run's test segments)")
    p.add_argument("--fps", type=float, default=None, help="frame rate (default: the source's, else 25)")
    p.add_argument("--overlay", default=None, metavar="OUT.mp4", help="write the video with label and probability")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--top", type=int, default=1, help="classes printed per update (default: 1)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.add_argument("--device", default=None)
    p.set_defaults(func=run_stream)


def run_stream(args: argparse.Namespace) -> int:
    from ..fileio import check_writable
    from ..tools.predict import Predictor
    from ..tools.stream import OverlayWriter, draw_label, open_source, segment_interval, stream_predictions

    if args.window is not None and args.window <= 0:
        raise ValueError(f"--window must be positive seconds, got {args.window}")
    for name in ("segments", "max_frames", "top"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.fps is not None and args.fps <= 0:
        raise ValueError(f"--fps must be positive, got {args.fps}")
    if args.overlay:
        OverlayWriter(args.overlay, fps=25)  # the suffix is checked before anything is read
        check_writable(Path(args.overlay))
    predictor = Predictor(args.checkpoint, segments=args.segments, device=args.device)
    if predictor.model.arch == "off" and predictor.segments < 2:
        raise ValueError(f"--segments must be at least 2 for the OFF network, got {predictor.segments}")
    with open_source(args.source) as source:
        fps = args.fps or source.fps or 25.0
        interval = segment_interval(predictor, fps=fps, window=args.window)
        print(f"{source.name}: {fps:g} fps, a segment every {interval} frames, window of {predictor.segments} "
              f"segments ({interval * predictor.segments / fps:.2f} s)")
        writer = OverlayWriter(args.overlay, fps=fps) if args.overlay else None
        seen = {"frames": 0, "segments": 0}

        def on_frame(index, frame, event) -> None:
            seen["frames"] = index + 1
            if writer is not None:
                writer.write(draw_label(frame, event))

        interrupted = False
        last = None
        with writer if writer is not None else contextlib.nullcontext():
            try:
                for event in stream_predictions(predictor, iter(source), fps=fps, window=args.window,
                                                on_frame=on_frame, max_frames=args.max_frames):
                    seen["segments"] += 1
                    last = event
                    if not args.quiet and event.probabilities is not None:
                        tops = "   ".join(f"{name} {prob:6.1%}" for name, prob in event.top(args.top))
                        print(f"{event.time:8.2f} s  {tops}", flush=True)
            except KeyboardInterrupt:
                interrupted = True  # a camera is stopped this way: finish the overlay, then exit 130
    summary = f"{seen['frames']} frames, {seen['segments']} segments"
    if last is not None and last.probabilities is not None:
        name, prob = last.top(1)[0]
        summary += f"; last: {name} {prob:.1%}"
    print(summary + (f"; overlay -> {args.overlay}" if args.overlay else ""))
    if seen["segments"] and (last is None or last.probabilities is None):
        print(f"(fewer than 2 segments: {predictor.model.arch} needs a pair before it can score)")
    if interrupted:
        raise KeyboardInterrupt
    return 0

