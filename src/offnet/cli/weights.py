"""``offnet weights check``: what a pretrained weights file would load into a backbone, before training."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "run_weights_check"]

EPILOG = """\
examples:
  offnet weights check bn_inception-52deb4733.pth --backbone bninception
  offnet weights check resnet50-0676ba61.pth --backbone resnet50 --modality flow
  offnet weights check my_weights.pth --backbone bninception --json report.json

The exit status is 0 when every backbone tensor is in the file with its shape, 1 otherwise.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("weights", help="inspect pretrained backbone weights files")
    sub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    c = sub.add_parser(
        "check", help="list missing, unexpected and mis-shaped keys of a weights file for a backbone",
        description="Compare a local weights file (a state dict saved with torch.save) with a backbone: "
        "the tensors it would load, the backbone tensors it lacks, the file's tensors the backbone does not "
        "use, the tensors whose shapes differ, and the input preprocessing the weights expect.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("file", help="weights file (.pth / .pt), https:// or file:// URL, or hf-hub:owner/repo[/file]")
    c.add_argument("--backbone", required=True,
                   help="bninception | resnet18 | resnet50 | tiny | timm:NAME | a registered name")
    c.add_argument("--modality", default="rgb", help="rgb (default) | flow | rawoff | rgbdiff: the first conv's "
                   "input channels (RGB weights are averaged over channels for the others)")
    c.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    c.add_argument("--show", type=int, default=20, metavar="N", help="keys listed per group (default 20)")
    c.set_defaults(func=run_weights_check)


def _group(title: str, items: list[str], show: int) -> None:
    print(f"{title}: {len(items)}")
    for item in items[:show]:
        print(f"  {item}")
    if len(items) > show:
        print(f"  … and {len(items) - show} more (--show {len(items)})")


def run_weights_check(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from offnet.fileio import atomic_write_text, check_writable
    from offnet.modalities import get_modality
    from offnet.models._registry import build_backbone
    from offnet.models.weights import check_backbone_weights

    if args.json is not None:
        check_writable(args.json)
    from offnet.hub import resolve_weights

    net, _ = build_backbone(args.backbone, in_channels=get_modality(args.modality).network_channels)
    report = check_backbone_weights(net, resolve_weights(args.file), first_conv=net.first_conv)
    spec = report.spec
    print(f"{args.file} -> {args.backbone} ({args.modality})")
    print(f"loads {len(report.used)} of {len(net.state_dict())} backbone tensors")
    _group("missing from the file (left at random initialisation)", report.missing, args.show)
    _group("mis-shaped (refused)", report.mismatched, args.show)
    _group("adapted", report.adapted, args.show)
    _group("not used by the backbone (e.g. the ImageNet classifier)", report.unexpected, args.show)
    print(f"input preprocessing ({report.spec_source}): {'BGR' if spec.bgr else 'RGB'}, "
          f"{'0-255' if spec.scale255 else '0-1'}, mean {list(spec.mean)}, std {list(spec.std)}")
    print("OK: the file loads completely" if report.ok else "NOT OK: see the missing / mis-shaped keys above")
    if args.json is not None:
        payload = dataclasses.asdict(report)
        payload["spec"] = {k: list(v) if isinstance(v, tuple) else v for k, v in payload["spec"].items()}
        payload.update(ok=report.ok, file=str(args.file), backbone=args.backbone, modality=args.modality)
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")
    return 0 if report.ok else 1
