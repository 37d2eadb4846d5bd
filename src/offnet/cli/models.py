"""``offnet models``: list every architecture × modality with parameters and GFLOPs."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models", help="list architectures x modalities with parameter counts and GFLOPs",
        description="List every architecture and input modality with its parameter count and the GFLOPs "
        "of one forward pass of a clip (batch 1) at the default input.",
    )
    p.add_argument("--backbone", default="bninception", help="backbone (default: bninception)")
    p.add_argument("--segments", type=int, default=7, help="segments per clip for the GFLOPs (default: 7)")
    p.add_argument("--size", type=int, default=None, help="input size in px (default: the backbone's, 224)")
    p.add_argument("--num-classes", type=int, default=101, help="classes of the heads (default: 101)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from .. import get_modality
    from ..models import BACKBONES, create_model, list_models
    from ..models._registry import check_backbone_name, check_clip_geometry
    from ..models.complexity import count_gflops, count_parameters

    check_backbone_name(args.backbone)
    size = args.size or BACKBONES.get(args.backbone, (None, 224))[1]  # timm:NAME: 224 unless --size
    check_clip_geometry(list_models(), segments=args.segments, size=size)
    print(f"backbone {args.backbone}, input (1, {args.segments}, C, {size}, {size}), "
          f"{args.num_classes} classes; GFLOPs count multiply-adds once")
    header = f"{'model':<8} {'modality':<9} {'input C':>7} {'levels':<28} {'params (M)':>10} {'GFLOPs':>8}"
    print(header)
    print("-" * len(header))
    for name in list_models():
        for modality in ("rgb", "flow", "rawoff", "rgbdiff"):
            with torch.device("meta"):
                model = create_model(name, num_classes=args.num_classes, modality=modality, backbone=args.backbone)
            c = get_modality(modality).data_channels
            gflops = count_gflops(model, (1, args.segments, c, size, size))
            params = count_parameters(model) / 1e6
            print(f"{name:<8} {modality:<9} {c:>7} {','.join(model.levels):<28} {params:>10.2f} {gflops:>8.2f}")
    return 0
