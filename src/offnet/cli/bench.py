"""``offnet bench <what>``: throughput measurements. ``offnet bench data`` times the data loader.

Adding a benchmark (e.g. ``offnet bench models``) needs no edit here: either call
:func:`add_bench_command` before the parser is built, or create a module ``offnet/cli/bench_<name>.py``
defining ``NAME``, ``HELP``, ``configure(parser)`` and ``run(args) -> int``; ``register`` discovers it.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["register", "add_bench_command"]


@dataclass(frozen=True)
class _BenchCommand:
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


_COMMANDS: dict[str, _BenchCommand] = {}


def add_bench_command(
    name: str,
    help: str,
    configure: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
) -> None:
    """Register ``offnet bench <name>``: ``configure`` adds its arguments, ``run`` returns the exit code."""
    _COMMANDS[name] = _BenchCommand(help, configure, run)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _workers(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--workers takes comma-separated integers like 0,2; got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"--workers takes integers >= 0 like 0,2; got {text!r}")
    return values


def _containers(text: str) -> list[str]:
    from offnet.tools.bench import CONTAINERS

    values = [f".{v.strip().lstrip('.').lower()}" for v in text.split(",") if v.strip()]
    unknown = [v for v in values if v not in CONTAINERS]
    if not values or unknown:
        raise argparse.ArgumentTypeError(f"--containers takes some of {','.join(c[1:] for c in CONTAINERS)}; "
                                         f"got {text!r}")
    return values


def _configure_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", type=Path, help="folder of videos and/or frame folders (default: generate a small set)")
    p.add_argument("--workers", type=_workers, default=[0, 2], help="loader worker counts, comma-separated (0,2)")
    p.add_argument("--segments", type=_positive, default=3, help="segments T per clip (3)")
    p.add_argument("--size", type=_positive, default=112, help="crop size in pixels (112)")
    p.add_argument("--clips", type=_positive, default=64, help="clips per timed pass (64)")
    p.add_argument("--batch-size", type=_positive, default=8, help="loader batch size (8)")
    p.add_argument("--videos", type=_positive, default=4, help="videos to generate without --root (4)")
    p.add_argument("--containers", type=_containers, default=[".avi", ".mp4", ".webm"],
                   help="containers to generate without --root: avi (MPEG-4), mp4 (H.264), webm (VP9), comma-separated "
                   "(default avi,mp4,webm; one this PyAV build cannot encode is skipped with a warning)")
    p.add_argument("--seed", type=int, default=0)


def _run_data(args: argparse.Namespace) -> int:
    from offnet.tools.bench import bench_data, format_results

    results = bench_data(
        root=args.root,
        workers=args.workers,
        segments=args.segments,
        size=args.size,
        clips=args.clips,
        batch_size=args.batch_size,
        num_videos=args.videos,
        seed=args.seed,
        containers=args.containers,
    )
    print(format_results(results))
    return 0


add_bench_command(
    "data", "clips/s of the training data loader (.avi / .mp4 / .webm video files vs frame folders)",
    _configure_data, _run_data
)


def _discover() -> None:
    package = importlib.import_module("offnet.cli")
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("bench_"):
            continue
        module = importlib.import_module(f"offnet.cli.{info.name}")
        if all(hasattr(module, a) for a in ("NAME", "HELP", "configure", "run")):
            add_bench_command(module.NAME, module.HELP, module.configure, module.run)


def register(subparsers: argparse._SubParsersAction) -> None:
    _discover()
    bench = subparsers.add_parser(
        "bench", help="measure throughput", description="Throughput measurements (data loader, …)."
    )
    sub = bench.add_subparsers(dest="bench_command", metavar="WHAT")
    for name, cmd in sorted(_COMMANDS.items()):
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        cmd.configure(p)
        p.set_defaults(func=cmd.run)

    def _usage(args: argparse.Namespace) -> int:
        bench.print_help()
        return 2

    bench.set_defaults(func=_usage)
