"""Checkpoints: atomic writes, safe loads, and rebuilding a model from a file or a run directory.

A checkpoint is a plain ``dict`` saved with :func:`torch.save` and read back with
``torch.load(..., weights_only=True)``, so it may hold only tensors and plain containers
(dict, list, tuple, str, int, float, bool, None). Its keys:

================  ==========================================================================
``format``        always :data:`CHECKPOINT_FORMAT` (``"offnet-checkpoint-v1"``)
``model_config``  ``model.config``: the keyword arguments of ``offnet.create_model``
``model``         the model's ``state_dict()``
``class_names``   list of class names, index = label
``config``        the resolved run configuration as a plain dict
``stage``         training stage (1, 2 or 3) the weights come from
``step``          optimiser steps done in that stage
``epoch``         epoch the next step belongs to
``best_metric``   best validation score seen so far in that stage (``None`` before any validation)
``optimizer``     ``optimizer.state_dict()``
``scheduler``     the learning-rate schedule's ``state_dict()``
``scaler``        the AMP grad scaler's ``state_dict()`` (or ``None``)
``rng``           RNG states (torch, numpy, python, data generator)
``sampler``       position of the resumable sampler within its epoch
================  ==========================================================================

A run directory holds one sub-directory per stage (``RUN/stage1``, ``RUN/stage2`` …), each with
``last.pt`` (written every N steps) and ``best.pt`` (best validation score).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..fileio import OutputError, output_error

__all__ = [
    "check_finite_weights",
    "CHECKPOINT_FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "find_checkpoint",
    "build_model_from_checkpoint",
    "rng_state",
    "restore_rng_state",
]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "offnet-checkpoint-v1"
_REQUIRED_KEYS = ("format", "model_config", "model")
_STAGE_DIR = re.compile(r"^stage(\d+)$")


def _fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (best effort: not every OS can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically.

    The data go to a temporary file in the same directory, which is flushed and fsynced and then
    renamed over ``path`` (``os.replace`` is atomic on POSIX), and the directory is fsynced. A crash
    at any point leaves either the previous file or the new one, never a half-written file. The
    ``format`` key is filled in when missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(payload)
    payload.setdefault("format", CHECKPOINT_FORMAT)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise output_error(path, exc) from exc
        if isinstance(exc, RuntimeError) and "write" in str(exc).lower():
            # torch.save reports a failed write as "PytorchStreamWriter failed writing file …"
            free = shutil.disk_usage(path.parent).free / 2**20
            raise OutputError(errno.EIO, f"cannot write checkpoint {path}: the write failed with {free:.0f} MiB "
                              "free on that disk (full disk?); free some space and --resume") from exc
        raise
    _fsync_dir(path.parent)
    log.debug("saved checkpoint %s", path)


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises ``FileNotFoundError`` naming the file when it does not exist and ``ValueError`` when it is
    truncated, corrupt, not a ``torch.save`` file or lacks the offnet keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {str(path)!r} does not exist; pass a .pt file written by `offnet train` "
            "or a run directory that holds stage*/best.pt or stage*/last.pt"
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for bad files (RuntimeError, EOFError, pickle…)
        if "weights_only" in str(exc):
            raise ValueError(
                f"{str(path)!r} is not a valid offnet checkpoint: it holds Python objects besides tensors and "
                "plain containers (possibly code), which offnet never unpickles. Do not load it with "
                "weights_only=False unless you trust where it came from; use a checkpoint written by offnet"
            ) from None
        raise ValueError(
            f"{str(path)!r} is not a valid offnet checkpoint (could not be read: "
            f"{type(exc).__name__}: {exc}); it may be truncated or corrupt — use another checkpoint "
            "(e.g. best.pt instead of last.pt) or retrain"
        ) from exc
    if not isinstance(payload, dict) or any(key not in payload for key in _REQUIRED_KEYS):
        keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            f"{str(path)!r} is not a valid offnet checkpoint: expected a dict with keys "
            f"{list(_REQUIRED_KEYS)}, got {keys}"
        )
    if payload["format"] != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{str(path)!r} is not a valid offnet checkpoint: format {payload['format']!r}, "
            f"expected {CHECKPOINT_FORMAT!r}"
        )
    return payload


def _stage_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for child in run_dir.iterdir():
        match = _STAGE_DIR.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def find_checkpoint(path_or_run_dir: str | Path) -> Path:
    """Resolve a checkpoint file from a ``.pt`` path, a stage directory or a run directory.

    For a run directory the final stage (highest ``stageN`` that holds a checkpoint) is used; within a
    stage directory ``best.pt`` is preferred over ``last.pt``.
    """
    path = Path(path_or_run_dir)
    if path.is_file():
        return path
    if not path.exists():
        raise FileNotFoundError(f"checkpoint or run directory {str(path)!r} does not exist")
    candidates: list[Path] = [stage_dir for _, stage_dir in reversed(_stage_dirs(path))] + [path]
    for directory in candidates:
        for name in ("best.pt", "last.pt"):
            if (directory / name).is_file():
                return directory / name
    raise FileNotFoundError(
        f"no checkpoint in {str(path)!r}: expected stage<N>/best.pt or stage<N>/last.pt (a run directory "
        "of `offnet train`) or best.pt/last.pt directly inside it"
    )


def build_model_from_checkpoint(path_or_run_dir: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored in a checkpoint and load its weights; returns ``(model, payload)``.

    ``path_or_run_dir`` is a ``.pt`` file or a run/stage directory (see :func:`find_checkpoint`).
    The model is returned in eval mode on the CPU.
    """
    import offnet  # local import: offnet.__init__ may import the engine

    path = find_checkpoint(path_or_run_dir)
    payload = load_checkpoint(path)
    model_config = dict(payload["model_config"])
    check_finite_weights(payload["model"], source=str(path))
    model = offnet.create_model(**model_config)
    try:
        model.load_state_dict(payload["model"], strict=True)
    except RuntimeError as exc:
        raise ValueError(
            f"{str(path)!r}: weights do not fit the model it describes ({model_config}): {exc}"
        ) from exc
    model.eval()
    log.info("loaded %s (stage %s, step %s)", path, payload.get("stage"), payload.get("step"))
    return model, payload


def check_finite_weights(state_dict: dict[str, Any], *, source: str) -> None:
    """Raise ``ValueError`` when a floating-point tensor of ``state_dict`` holds NaN or infinity."""
    bad = [key for key, value in state_dict.items()
           if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        raise ValueError(
            f"{source} holds non-finite weights (NaN or inf) in {len(bad)} tensor(s), e.g. {', '.join(bad[:3])}: "
            "the run diverged or the file was damaged. Use an earlier checkpoint (best.pt, an earlier stage) or "
            "retrain with a lower learning rate"
        )


def rng_state(device: torch.device) -> dict[str, Any]:
    """torch / CUDA / numpy / python RNG states as plain containers (the ``rng`` payload key)."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state_plain(),
        "python": _to_lists(random.getstate()),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _numpy_state_plain() -> dict[str, Any]:
    # The MT19937 key is an ndarray, which weights_only loading refuses: store it as a list of ints.
    state = np.random.get_state(legacy=False)
    inner = dict(state["state"])
    inner["key"] = inner["key"].tolist()
    return {**state, "state": inner}


def _numpy_state_restore(state: dict[str, Any]) -> None:
    inner = dict(state["state"])
    inner["key"] = np.asarray(inner["key"], dtype=np.uint32)
    np.random.set_state({**state, "state": inner})


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, tuple | list) else value


def _to_tuples(value: Any) -> Any:
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value


def restore_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    _numpy_state_restore(state["numpy"])
    random.setstate(_to_tuples(state["python"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
