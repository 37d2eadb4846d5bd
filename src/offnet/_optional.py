"""Optional packages: imported on first use, with an error that says how to install them."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingDependency", "require"]


class MissingDependency(ImportError, RuntimeError):
    """An optional package is missing or broken. A ``RuntimeError`` too, so the CLI prints it as one line."""


def require(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` naming ``purpose`` and the install line."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name == module or (exc.name is None and module in str(exc)):
            raise MissingDependency(
                f"{purpose} needs the optional package {module!r}, which is not installed: pip install "
                f"'offnet[{extra}]' (or pip install {module})", name=module,
            ) from None
        failure: Exception = exc
    except Exception as exc:  # e.g. a compiled dependency built for another torch
        failure = exc
    raise MissingDependency(
        f"{purpose} needs the optional package {module!r}, which is installed but fails to import "
        f"({type(failure).__name__}: {failure}); reinstall it to match this PyTorch (pip install -U {module})",
        name=module,
    ) from failure
