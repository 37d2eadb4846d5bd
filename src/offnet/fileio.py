"""Writing output files safely: atomically, with errors that say what to do.

Every file offnet writes (configs, scores, metrics, predictions, fusion results, list and class files)
goes through :func:`atomic_write_text` / :func:`atomic_write_bytes`: the data go to a temporary file in
the same folder, are flushed and fsynced, and are then renamed over the target, so a crash or a full
disk leaves the previous file or the new one, never a truncated one. :func:`check_writable` tests an
output location before any long work starts.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

__all__ = ["OutputError", "atomic_write_text", "atomic_write_bytes", "atomic_writer", "atomic_save",
           "atomic_savez", "save_figure", "check_writable", "output_error"]


class OutputError(OSError):
    """An output file or folder cannot be written; the message names it and the reason."""


def output_error(path: str | Path, exc: OSError) -> OutputError:
    """A readable :class:`OutputError` for ``exc`` raised while writing ``path``."""
    reason = {
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "the file system is read-only",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.EISDIR: "it is a folder",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    if exc.errno == errno.ENOSPC:
        return OutputError(exc.errno, f"no space left on {path}: free some space or write elsewhere")
    return OutputError(exc.errno or 0, f"cannot write {path}: {reason}")


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """``with atomic_writer(path) as fh:`` writes a temporary file that replaces ``path`` on success.

    On any error the temporary file is removed and ``path`` is left as it was; ``OSError`` becomes an
    :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from exc
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OutputError):
            raise
        raise output_error(path, exc) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path, "w") as handle:
        handle.write(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_save(path: str | Path, write: Callable[[IO], None], *, binary: bool = True) -> Path:
    """Call ``write(handle)`` on a temporary file that atomically becomes ``path``."""
    with atomic_writer(path, "wb" if binary else "w") as handle:
        write(handle)
    return Path(path)


def atomic_savez(path: str | Path, **arrays: object) -> Path:
    """``numpy.savez_compressed`` to ``path``, atomically."""
    import numpy as np

    return atomic_save(path, lambda handle: np.savez_compressed(handle, **arrays))


def save_figure(fig: object, path: str | Path, **kwargs: object) -> Path:
    """``fig.savefig`` to ``path`` atomically (the format follows the suffix, PNG by default)."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    return atomic_save(path, lambda handle: fig.savefig(handle, format=fmt, **kwargs))  # type: ignore[attr-defined]


def check_writable(path: str | Path, *, is_dir: bool = False) -> Path:
    """Raise :class:`OutputError` unless ``path`` (a file, or a folder with ``is_dir``) can be written.

    The nearest existing folder must accept a new file: a probe file is created there and removed.
    Missing folders are not created. Call it before long work whose result goes to ``path``.
    """
    path = Path(path)
    if is_dir and path.exists() and not path.is_dir():
        raise OutputError(errno.ENOTDIR, f"cannot write into {path}: it is a file, not a folder")
    if not is_dir and path.is_dir():
        raise OutputError(errno.EISDIR, f"cannot write {path}: it is a folder")
    folder = path if is_dir else path.parent
    probe_dir = folder
    while not probe_dir.exists():
        if probe_dir.parent == probe_dir:
            break
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise OutputError(errno.ENOTDIR, f"cannot write {path}: {probe_dir} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".offnet-probe.", dir=probe_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise output_error(path, exc) from exc
    return path
