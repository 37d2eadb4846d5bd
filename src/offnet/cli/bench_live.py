"""``offnet bench live``: per-new-segment cost of the incremental live scorer against a full recompute."""

from __future__ import annotations

import argparse

NAME = "live"
HELP = "live OFF: cost per new segment, incremental (1 backbone pass + 1 OFF pair) vs full recompute"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default="off", choices=("off", "hypnet", "tsn"))
    p.add_argument("--modality", default="rgb")
    p.add_argument("--backbone", default="bninception")
    p.add_argument("--window", type=int, default=25, help="segments in the sliding window (25, the paper's test)")
    p.add_argument("--size", type=int, default=None, help="input side in px (default: the backbone's)")
    p.add_argument("--streams", type=int, default=1, help="parallel streams scored together (1)")
    p.add_argument("--repeats", type=int, default=10, help="new segments timed (10)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..models._registry import BACKBONES, check_clip_geometry
    from ..tools.bench_live import bench_live, format_live_result

    if args.backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {args.backbone!r}; available: {', '.join(BACKBONES)}")
    least = 2 if args.arch == "off" else 1
    if args.window < least:
        raise ValueError(f"--window must be at least {least} segment(s) for {args.arch}, got {args.window}")
    check_clip_geometry([args.arch], segments=args.window, size=args.size or BACKBONES[args.backbone][1])
    if args.repeats < 1 or args.streams < 1:
        raise ValueError(f"--repeats and --streams must be at least 1, got {args.repeats} and {args.streams}")
    if args.threads:
        torch.set_num_threads(args.threads)
    result = bench_live(arch=args.arch, modality=args.modality, backbone=args.backbone, window=args.window,
                        size=args.size, streams=args.streams, repeats=args.repeats, device=args.device)
    print(format_live_result(result))
    return 0
