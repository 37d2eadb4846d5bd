"""``offnet demo``: train and test TSN, Hyp-Net, OFF, RGB+OFF fusion, Raw OFF (and flow) on the built-in
benchmarks (or your UCF-101-layout dataset) and print the paper's comparison tables."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="reproduce the paper's claims on built-in benchmarks (CPU, minutes)",
                       description="Generate the built-in benchmarks (cached): the motion-only one (discs from real "
                       "photographs moving, turning or zooming, every class with a time-reversed twin) and the "
                       "synthetic actions one; train and test tsn, hypnet, off (RGB), the RGB + OFF(RGB) fusion and "
                       "tsn on Raw OFF (with --flow also tsn on optical flow) with the tiny backbone, with "
                       "input size and iterations derived from each dataset, and print tables in the form of the "
                       "paper's Tables 2 and 3.")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    p.add_argument("--data", type=Path, default=None,
                   help="a dataset in UCF-101 layout (split 1) to use instead of the synthetic benchmark")
    p.add_argument("--benchmarks", default=None,
                   help="comma-separated built-in benchmarks to run: motion, actions (default: both)")
    p.add_argument("--quick", action="store_true", help="reduced sizes (well under a minute; used by the tests)")
    p.add_argument("--flow", action="store_true",
                   help="also extract optical flow and train TSN on it (adds minutes; off by default)")
    p.add_argument("--no-flow", action="store_true", help=argparse.SUPPRESS)  # the default since flow is opt-in
    p.add_argument("--flow-algorithm", choices=("farneback", "tvl1"), default=None,
                   help="optical flow for the flow stream (default farneback; tvl1 is the paper's, ~50x slower)")
    p.add_argument("--methods", default=None,
                   help="comma-separated methods to train on every benchmark (default: each benchmark's own set; "
                        "choose from tsn-rgb, hypnet-rgb, off-rgb, tsn-rawoff, off-rawoff, tsn-flow)")
    p.add_argument("--jobs", type=int, default=None,
                   help="methods trained side by side, each in its own process (default: 2 if the machine has 2 "
                   "or more cores, else 1; --quick: 1)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None,
                   help="training autocast (default fp32; auto: bf16 on CPUs that compute it natively, AVX512-BF16 "
                   "or AMX; bf16 trains faster there but measured lower accuracy for Raw OFF)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    import torch

    from ..tools.demo import FULL, QUICK, format_table, run_demo, with_methods

    torch.set_num_threads(max(1, torch.get_num_threads()))
    settings = QUICK if args.quick else FULL
    if args.benchmarks:
        chosen = tuple(b.strip() for b in args.benchmarks.split(",") if b.strip())
        unknown = sorted(set(chosen) - {"motion", "actions"})
        if unknown or not chosen:
            raise ValueError(f"--benchmarks takes motion and/or actions, got {args.benchmarks!r}")
        settings = dataclasses.replace(settings, benchmarks=chosen)
    settings = dataclasses.replace(settings, flow=args.flow and not args.no_flow)
    if args.methods:
        settings = with_methods(settings, [m.strip() for m in args.methods.split(",") if m.strip()])
    if args.jobs is not None:
        if args.jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
        settings = dataclasses.replace(settings, jobs=args.jobs)
    if args.flow_algorithm:
        settings = dataclasses.replace(settings, flow_algorithm=args.flow_algorithm)
    if args.precision:
        settings = dataclasses.replace(settings, precision=args.precision)
    results = run_demo(args.out, data=args.data, settings=settings, progress=not args.no_progress,
                       say=lambda line: print(line, flush=True))
    print()
    print(format_table(results))
    print(f"\nwrote {args.out / 'results.json'}")
    for bench in results["benchmarks"]:
        print(f"{bench['dataset']}:")
        for key, value in bench["files"].items():
            print(f"  {key}: {json.dumps(value) if isinstance(value, dict) else value}")
    return 0
