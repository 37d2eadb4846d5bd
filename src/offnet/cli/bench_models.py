"""``offnet bench models``: forward (or training-step) speed of tsn / hypnet / off, side by side."""

from __future__ import annotations

import argparse

NAME = "models"
HELP = "time tsn, hypnet and off side by side (ratios from one run)"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--archs", default="tsn,hypnet,off", help="comma-separated architectures (tsn,hypnet,off)")
    p.add_argument("--modality", default="rgb")
    p.add_argument("--backbone", default="bninception")
    p.add_argument("--segments", type=int, default=25, help="segments per clip (25, the paper's test)")
    p.add_argument("--size", type=int, default=None, help="input side in px (default: the backbone's)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--mode", choices=("inference", "train"), default="inference")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..models._registry import BACKBONES, check_backbone_name, check_clip_geometry
    from ..tools.bench_models import bench_models, format_model_results

    archs = [a for a in args.archs.split(",") if a]
    check_backbone_name(args.backbone)
    check_clip_geometry(archs, segments=args.segments, size=args.size or BACKBONES.get(args.backbone, (None, 224))[1])
    if args.batch < 1 or args.repeats < 1:
        raise ValueError(f"--batch and --repeats must be at least 1, got {args.batch} and {args.repeats}")
    if args.threads:
        torch.set_num_threads(args.threads)
    results = bench_models(
        archs=archs, modality=args.modality, backbone=args.backbone,
        segments=args.segments, size=args.size, batch=args.batch, repeats=args.repeats, mode=args.mode,
        device=args.device,
    )
    print(format_model_results(results))
    return 0
