"""``offnet bench pipelines``: the paper's speed table (TSN, OFF, the RGB-only stack, TV-L1 + flow) side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "pipelines"
HELP = "the paper's speed table: tsn-rgb, off-rgb, rgb-full-stack, flow-tvl1 … timed interleaved in one run"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="autocast precision of the networks (bf16: CPUs with bf16 support and GPUs; fp16: GPUs)")
    p.add_argument("--compile", action="store_true",
                   help="networks through torch.compile, timed against the plain forward in the same run (the "
                   "warm-up compiles: a minute or more per network and input shape on a CPU)")
    p.add_argument("--plain", action="store_true",
                   help="time the plain eval-mode forward only (no BatchNorm folding, default memory layout)")
    p.add_argument("--no-plain-compare", action="store_true",
                   help="skip timing the plain forward beside the optimised one (halves the main timing)")
    p.add_argument("--backbone", default="bninception")
    p.add_argument("--size", type=int, default=224, help="input side in px (224)")
    p.add_argument("--segments", type=int, default=25, help="segments per video (25, the paper's test)")
    p.add_argument("--crops", type=int, default=1, choices=(1, 3, 10), help="crops per segment (1)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved timed repeats (3)")
    p.add_argument("--pipelines", default=",".join(("tsn-rgb", "off-rgb", "off-rgb-official", "rgb-full-stack",
                                                     "flow-tvl1")), help="comma-separated subset (tsn-rgb needed)")
    p.add_argument("--no-ten-crop", action="store_true", help="skip the 10-crop measurement")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    p.add_argument("--quick", action="store_true", help="tiny backbone, small sizes: checks the output in seconds")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import sys

    from ..fileio import atomic_write_text, check_writable
    from ..tools.bench_pipelines import QUICK, PipelineSettings, bench_pipelines, format_pipelines

    if args.json is not None:
        check_writable(args.json)
    if args.quick:
        settings = dataclasses.replace(QUICK, device=args.device, precision=args.precision,
                                       memory=not args.no_memory, compile=args.compile,
                                       optimize=not args.plain, compare_plain=not args.no_plain_compare)
    else:
        settings = PipelineSettings(device=args.device, precision=args.precision, backbone=args.backbone,
                                    size=args.size, segments=args.segments, crops=args.crops, repeats=args.repeats,
                                    memory=not args.no_memory, compile=args.compile,
                                    optimize=not args.plain, compare_plain=not args.no_plain_compare)
    pipelines = tuple(p.strip() for p in args.pipelines.split(",") if p.strip())
    report = bench_pipelines(settings, pipelines=pipelines, ten_crop=not args.no_ten_crop,
                             say=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_pipelines(report))
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
