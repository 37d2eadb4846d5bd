"""An exclusive lock on a run directory, so that two processes never write one run.

``RUN/.lock`` is locked with ``fcntl.flock`` for as long as the run trains. The operating system drops
the lock when its process ends, however it ends (SIGKILL, a crash), so a lock left by a killed process
is never mistaken for a live one: the next run takes it over. The file holds the holder's pid, host
and start time, which the error of a refused run names. Where ``flock`` does not exist (Windows), the
lock is the file's exclusive creation, and a lock whose process no longer runs on this host is stale.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

__all__ = ["RunLock", "RunLockedError"]

LOCK_NAME = ".lock"


class RunLockedError(RuntimeError):
    """Another live process holds the run directory."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    return f"process {info.get('pid', '?')} on {info.get('host', '?')} (since {started})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``with RunLock(run_dir):`` holds ``run_dir/.lock``; raises :class:`RunLockedError` if taken."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def _message(self) -> str:
        return (f"{self.path.parent} is in use by {_holder(self.path)}: wait for it to finish or choose another "
                f"--run-dir (if that process is gone, delete {self.path})")

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            self._acquire_exclusive(info)
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunLockedError(self._message()) from None
        os.ftruncate(fd, 0)
        os.write(fd, info.encode())
        self._fd = fd

    def _acquire_exclusive(self, info: str) -> None:  # pragma: no cover - Windows
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    held = json.loads(self.path.read_text() or "{}")
                except (OSError, ValueError):
                    held = {}
                if held.get("host") == socket.gethostname() and not _alive(int(held.get("pid", -1))):
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                raise RunLockedError(self._message()) from None
            os.write(fd, info.encode())
            self._fd = fd
            return
        raise RunLockedError(self._message())

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)
        except ImportError:  # pragma: no cover - Windows
            self.path.unlink(missing_ok=True)
        os.close(fd)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
