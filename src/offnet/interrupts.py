"""Ctrl-C that always stops: a SIGINT handler that remembers it was pressed.

Python delivers SIGINT as a ``KeyboardInterrupt`` wherever the main thread happens to be. When that is
inside a finaliser (a DataLoader iterator shutting its workers down in ``__del__``), Python prints
"Exception ignored …" and goes on, so a long run would finish as if nothing happened. The handler
installed by :func:`install` also sets a flag that stays set; long loops call :func:`check` at every
step, and the command line exits with 130 when the flag is set, however the exception was lost.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["install", "check", "interrupted", "reset"]

_pressed = threading.Event()


def _handler(signum: int, frame: FrameType | None) -> None:
    _pressed.set()
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT through the remembering handler (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)


def interrupted() -> bool:
    """Whether Ctrl-C was pressed since the last :func:`reset`."""
    return _pressed.is_set()


def check() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed, even if its first exception was swallowed."""
    if _pressed.is_set():
        raise KeyboardInterrupt


def reset() -> None:
    _pressed.clear()
