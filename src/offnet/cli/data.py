"""``offnet data check`` (validate a dataset before training), ``offnet data synth`` (synthetic benchmark)."""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="check a dataset, or write the synthetic benchmark",
        description="Dataset tools: `check` validates a dataset, `synth` writes a synthetic one.",
    )
    actions = p.add_subparsers(dest="data_command", metavar="ACTION")
    p.set_defaults(func=lambda args: _help(p))

    c = actions.add_parser(
        "check",
        help="count videos per split and class, list every missing/unreadable/short video",
        description="Parse a dataset split and open every video: counts per subset and class, then every "
        "missing, empty, unreadable, truncated or too-short video and every frame folder whose RGB/flow "
        "counts break the N RGB / N-1 flow rule. Exits 1 when anything is wrong "
        "(with --on-bad-video skip: when nothing usable remains).",
    )
    c.add_argument(
        "--dataset", required=True, choices=["ucf101", "hmdb51", "kinetics", "sthv2", "folder", "list"],
        help="layout of ROOT (kinetics, sthv2: the training set and the validation set as 'test')"
    )
    c.add_argument("--root", required=True, type=Path, help="dataset root folder")
    c.add_argument("--split", type=int, default=1, help="official split 1..3 (ucf101/hmdb51; default 1)")
    c.add_argument(
        "--frames-root",
        type=Path,
        default=None,
        help="check the extracted frame folders here (`offnet extract-flow` output) instead of videos",
    )
    c.add_argument("--train-list", type=Path, default=None, help="train list file (--dataset list)")
    c.add_argument("--test-list", type=Path, default=None, help="test list file (--dataset list)")
    c.add_argument("--class-file", type=Path, default=None, help="class names, one per line (--dataset list)")
    c.add_argument(
        "--min-frames",
        type=int,
        default=1,
        help="videos with fewer usable frames are bad (e.g. the segments x frames per segment; default 1)",
    )
    c.add_argument(
        "--on-bad-video",
        choices=["fail", "skip"],
        default="fail",
        help="fail: exit 1 on any bad video (default); skip: list them and exit 0 if some remain",
    )
    c.add_argument(
        "--write-lists",
        type=Path,
        default=None,
        metavar="DIR",
        help="write train/test list files 'path num_frames label' of the usable videos + classes.txt",
    )
    c.add_argument(
        "--workers",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="threads opening videos (default: min(8, CPUs))",
    )
    c.add_argument(
        "--max-listed", type=int, default=200, help="list at most this many bad videos (default 200)"
    )
    c.set_defaults(func=run_check)

    s = actions.add_parser(
        "synth",
        help="write a synthetic benchmark (UCF-101 layout)",
        description="Write a synthetic benchmark into ROOT in the UCF-101 layout "
        "(videos/<Class>/*.avi + ucfTrainTestlist/), ready for `offnet data check --dataset ucf101`. "
        "Presets: `actions` (procedural textures, 64 px squares, appearance and motion classes) and "
        "`motion` (motion only: discs cut from real photographs moving over others, camera shake, "
        "UCF-101-like 160x120 frames, inter-frame coded; every class has a time-reversed twin).",
        epilog="examples:\n  offnet data synth data/motion --preset motion --videos-per-class 150\n"
        "  offnet data synth data/motion240 --preset motion --size 240x180 --frames 64 --speed 2,4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("root", type=Path, help="folder to create (must be empty or absent)")
    s.add_argument("--preset", choices=("actions", "motion"), default="actions",
                   help="which benchmark (default actions)")
    s.add_argument(
        "--classes", default=None, help="comma-separated subset of the preset's classes (default: the preset's)"
    )
    s.add_argument("--videos-per-class", type=int, default=12, help="videos per class (default 12)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--size", default=None,
                   help="frame size: a side in px for actions (multiple of 16, default 64), WxH for motion "
                   "(default 160x120)")
    s.add_argument("--frames", type=int, default=None, help="frames per video (default 32 actions, 40 motion)")
    s.add_argument("--speed", default=None,
                   help="motion: px per frame, LOW,HIGH (default 1.5,3 scaled by width/160)")
    s.add_argument("--turn", default="3,6", help="motion: degrees per frame, LOW,HIGH (default 3,6)")
    s.add_argument("--zoom", default="1.2,2", help="motion: percent scale change per frame, LOW,HIGH (default 1.2,2)")
    s.add_argument("--paired", action="store_true",
                   help="motion: each clip of a reversed class is the exact reversal of the same clip of its "
                        "twin (frame-level models then tie by construction)")
    s.set_defaults(func=run_synth)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_check(args: argparse.Namespace) -> int:
    from offnet.data.check import check_dataset, write_split_lists

    if args.min_frames < 1:
        raise ValueError(f"--min-frames must be >= 1, got {args.min_frames}")
    if args.dataset == "list" and args.train_list is None and args.test_list is None:
        raise ValueError("--dataset list needs --train-list and/or --test-list (files of 'path label' lines)")
    list_files = {k: v for k, v in (("train", args.train_list), ("test", args.test_list)) if v is not None}
    if args.write_lists is not None:
        from offnet.fileio import check_writable

        check_writable(args.write_lists, is_dir=True)  # before checking every video, not after
    report = check_dataset(
        args.dataset,
        args.root,
        split=args.split,
        list_files=list_files,
        class_file=args.class_file,
        frames_root=args.frames_root,
        min_frames=args.min_frames,
        workers=args.workers,
        progress=True,
    )
    what = f"frame folders under {args.frames_root}" if args.frames_root else f"videos under {report.base}"
    print(f"{args.dataset} split {args.split}: {len(report.class_names)} classes, {what}")
    subsets = list(report.subsets)
    width = max([len("class")] + [len(n) for n in report.class_names])
    print(f"{'class':<{width}}  " + "  ".join(f"{s:>7} {'bad':>4}" for s in subsets))
    for name, good, bad in report.per_class():
        print(f"{name:<{width}}  " + "  ".join(f"{good[s]:>7} {bad[s] or '':>4}" for s in subsets))
    for s, rep in report.subsets.items():
        print(f"{s}: {rep.total} listed, {len(rep.good)} usable, {len(rep.bad)} bad")
    bad = report.bad
    if bad:
        kinds = Counter(b.kind for b in bad)
        print(f"\n{len(bad)} bad video(s) ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}):")
        for b in bad[: args.max_listed]:
            print(f"  {b}")
        if len(bad) > args.max_listed:
            print(f"  … and {len(bad) - args.max_listed} more (raise --max-listed to see them)")
    ok = report.ok(args.on_bad_video)
    if args.write_lists is not None:
        if report.usable == 0:
            print("no usable video: no list written")
        else:
            for path in write_split_lists(report, args.write_lists):
                print(f"wrote {path}")
            print(
                f"load them with: --dataset list --root {report.base} --train-list "
                f"{args.write_lists / f'train_split{args.split}.txt'} "
                f"--class-file {args.write_lists / 'classes.txt'}"
            )
    if ok:
        skipped = f" ({len(bad)} bad video(s) will be skipped)" if bad else ""
        print(f"OK: {report.usable} usable video(s){skipped}")
        return 0
    if args.on_bad_video == "fail" and bad:
        print("FAILED: fix or remove the videos above, or pass --on-bad-video skip to train without them")
    else:
        print("FAILED: no usable video")
    return 1


def _range(text: str | None, option: str) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{option} takes two numbers LOW,HIGH (e.g. 1.5,3), got {text!r}") from None
    return low, high


def _frame_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size for the motion preset is WxH in px (e.g. 240x180), got {text!r}") from None
    return width, height


def run_synth(args: argparse.Namespace) -> int:
    from offnet.data.synth import SYNTH_CLASSES, write_synthetic_dataset
    from offnet.data.synth_motion import MOTION_CLASSES, write_motion_dataset
    from offnet.fileio import check_writable

    if args.videos_per_class < 2:
        raise ValueError(f"--videos-per-class must be at least 2 (training and test videos), got "
                         f"{args.videos_per_class}")
    check_writable(Path(args.root).absolute().parent, is_dir=True)
    known = MOTION_CLASSES if args.preset == "motion" else SYNTH_CLASSES
    classes = None
    if args.classes:
        classes = [c.strip() for c in args.classes.split(",") if c.strip()]
        unknown = [c for c in classes if c not in known]
        if unknown:
            raise ValueError(f"unknown {args.preset} class(es) {unknown}; choose from {', '.join(known)}")
    if args.preset == "motion":
        width, height = _frame_size(args.size or "160x120")
        zoom = _range(args.zoom, "--zoom")
        root = write_motion_dataset(
            args.root, classes=classes, videos_per_class=args.videos_per_class, seed=args.seed, width=width,
            height=height, num_frames=40 if args.frames is None else args.frames, speed=_range(args.speed, "--speed"),
            turn=_range(args.turn, "--turn"), zoom=zoom, paired=args.paired, progress=True,
        )
    else:
        if args.speed is not None or args.paired:
            raise ValueError("--speed and --paired apply to --preset motion only")
        try:
            size = int(args.size or 64)
        except ValueError:
            raise ValueError(f"--size for the actions preset is one side in px, got {args.size!r}") from None
        root = write_synthetic_dataset(
            args.root, classes=classes, videos_per_class=args.videos_per_class, seed=args.seed, size=size,
            num_frames=32 if args.frames is None else args.frames, progress=True,
        )
    print(
        f"synthetic dataset in {root} (UCF-101 layout); check it with: "
        f"offnet data check --dataset ucf101 --root {root}"
    )
    return 0
