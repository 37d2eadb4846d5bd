"""The ``offnet`` command line: one sub-command per user task.

Each module of this package that defines ``register(subparsers)`` contributes sub-commands; the
function it registers as ``func`` receives the parsed ``argparse.Namespace`` and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="offnet",
        description="Optical Flow Guided Feature (OFF) for video action recognition.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (and tracebacks)")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error (also OFFNET_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = args.verbose or args.debug or os.environ.get("OFFNET_DEBUG", "") not in ("", "0")
    from offnet import interrupts

    interrupts.reset()
    interrupts.install()
    try:
        code = int(args.func(args) or 0)
        interrupts.check()  # Ctrl-C whose exception was swallowed somewhere (e.g. a finaliser)
        return code
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keep interpreter shutdown quiet
        return 0
    except (ValueError, OSError, RuntimeError) as exc:
        if interrupts.interrupted():  # Ctrl-C that surfaced as another error (e.g. inside torch.save)
            print("offnet: interrupted", file=sys.stderr)
            return 130
        # User errors carry a message naming the bad value; no traceback unless asked for.
        if debug:
            raise
        print(f"offnet: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("offnet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
