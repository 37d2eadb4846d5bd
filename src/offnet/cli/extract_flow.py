"""``offnet extract-flow``: TV-L1 (or Farneback) optical flow and RGB frames for every video under a root."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "extract-flow",
        help="extract TV-L1 flow (+ RGB frames) of every video into frame folders",
        description="For every video under ROOT write OUT/<relative path without extension>/ with "
        "flow_x_%%05d.jpg / flow_y_%%05d.jpg (N-1 pairs, clipped to +-bound and quantised to 0..255) and "
        "img_%%05d.jpg (N frames). Resumable: finished videos are skipped; a video appears only when "
        "complete.",
    )
    p.add_argument(
        "--root",
        required=True,
        type=Path,
        help="folder of videos, searched recursively (for UCF-101: ROOT/videos)",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder of frame folders")
    p.add_argument(
        "--workers",
        type=int,
        default=max(1, (os.cpu_count() or 2) - 1),
        help="parallel processes (default: CPUs - 1)",
    )
    p.add_argument(
        "--algorithm",
        choices=["tvl1", "farneback", "none"],
        default="tvl1",
        help="tvl1: OpenCV dual TV-L1 as the paper (default); farneback: much faster, coarser; none: the RGB "
        "frames only (decode once, train from frame folders with data.frames_root)",
    )
    p.add_argument(
        "--rgb",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also write the RGB frames img_%%05d.jpg (default: yes)",
    )
    p.add_argument(
        "--size",
        default=None,
        help="resize frames first: short side ('256') or WIDTHxHEIGHT ('340x256', the paper's)",
    )
    p.add_argument("--bound", type=float, default=20.0, help="flow clipping bound in pixels (default 20)")
    p.add_argument(
        "--on-bad-video",
        choices=["fail", "skip"],
        default="fail",
        help="a video that cannot be extracted (unreadable, truncated, < 2 frames): fail = start no new video "
        "and exit 1 (default); skip = list it at the end and go on (exit 0)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from offnet.data.flow import extract_flow, parse_size

    size = parse_size(args.size)
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    summary = extract_flow(
        args.root,
        args.out,
        algorithm=args.algorithm,
        rgb=args.rgb,
        size=size,
        bound=args.bound,
        workers=args.workers,
        progress=True,
        on_bad_video=args.on_bad_video,
    )
    if summary.cleaned:
        print(f"removed {summary.cleaned} unfinished folder(s) left by an earlier run")
    for f in summary.failed:
        print(f"FAILED {f.video}: {f.error}")
    fps = summary.frames / summary.seconds if summary.seconds > 0 else 0.0
    busy = f", {summary.busy} left to another process extracting them" if summary.busy else ""
    print(
        f"done {summary.done}, skipped {summary.skipped} (already extracted){busy}, failed {len(summary.failed)}; "
        f"{summary.frames} frames in {summary.seconds:.1f} s ({fps:.1f} frames/s) -> {args.out}"
    )
    if summary.failed and args.on_bad_video == "fail":
        print("stopped at a bad video (--on-bad-video fail); fix or remove it, or pass --on-bad-video skip")
        return 1
    return 0
