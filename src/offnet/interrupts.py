"""Ctrl-C that always stops: a SIGINT handler that remembers it was pressed.

Python delivers SIGINT as a ``KeyboardInterrupt`` wherever the main thread happens to be. When that is
inside a finaliser (a DataLoader iterator shutting its workers down in ``__del__``), Python prints
"Exception ignored …" and goes on, so a long run would finish as if nothing happened. The handler
installed by :func:`install` also sets a flag that stays set; long loops call :func:`check` at every
step, and the command line exits with 130 when the flag is set, however the exception was lost.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.process import BaseProcess
from types import FrameType

__all__ = ["install", "check", "interrupted", "reset", "stop_process_pool"]

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


def stop_process_pool(pool: ProcessPoolExecutor, grace_s: float = 5.0) -> None:
    """Stop ``pool`` now: start none of its queued tasks, interrupt its workers as Ctrl-C would, and kill
    those still running after ``grace_s`` seconds.

    For a Ctrl-C or an error in the process that owns the pool. Leaving the pool otherwise (``with``, or
    ``shutdown()`` at exit) waits for every submitted task, and a worker that got the Ctrl-C itself only
    abandons its current task and takes the next. Writers in offnet write atomically, so a stopped task
    leaves nothing half-written.
    """
    procs = list((getattr(pool, "_processes", None) or {}).values())  # no public handle before Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)  # forgets the processes: taken above
    for proc in procs:
        if proc.is_alive() and proc.pid is not None:
            try:
                os.kill(proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace_s
    for proc in procs:
        if not _wait_ended(proc, deadline - time.monotonic()):
            proc.kill()
            _wait_ended(proc, 10.0)


def _wait_ended(proc: BaseProcess, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``proc`` to end; True once it has.

    The pool's own manager thread joins the same processes: when it reaps one first, this thread's ``join``
    returns at once and ``is_alive()`` stays True until that thread records the exit code, so poll with short
    sleeps (they let that thread run) instead of trusting a single ``join``.
    """
    deadline = time.monotonic() + max(0.0, timeout_s)
    while True:
        proc.join(max(0.0, min(0.1, deadline - time.monotonic())))
        if not proc.is_alive():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
