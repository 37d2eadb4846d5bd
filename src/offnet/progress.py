"""Progress bars that suit where the output goes.

On a terminal, :func:`progress_bar` is a tqdm bar. When stderr is a file or a pipe (a CI log, ``nohup``,
``| tee``), redrawing a bar would write every update as a line of carriage returns and a long run's log
would grow to megabytes; there it prints one plain line each time another ``step_percent`` of the work
is done (and at the end) instead.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["progress_bar", "LineProgress"]


class LineProgress:
    """A tqdm-like counter that prints ``desc: 40% (40/100 unit) 12.3 s, key=value`` every few percent."""

    def __init__(self, *, total: int | None, desc: str = "", unit: str = "it", initial: int = 0,
                 step_percent: float = 10.0, file: TextIO | None = None) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = initial
        self.step = step_percent
        self.file = file if file is not None else sys.stderr
        self.postfix = ""
        self.start = time.perf_counter()
        self._next = self._threshold(initial) + step_percent
        self._printed = initial
        self._closed = False

    def _threshold(self, n: int) -> float:
        if not self.total:
            return 0.0
        return (100.0 * n / self.total) // self.step * self.step

    def _print(self) -> None:
        pct = f"{100.0 * self.n / self.total:.0f}% " if self.total else ""
        of = f"/{self.total}" if self.total else ""
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {pct}({self.n}{of} {self.unit}) {time.perf_counter() - self.start:.1f} s{extra}",
              file=self.file, flush=True)
        self._printed = self.n

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.total and 100.0 * self.n / self.total >= self._next:
            self._print()
            self._next = self._threshold(self.n) + self.step

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.n != self._printed:  # the last state, unless it was just printed
                self._print()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Disabled:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _Disabled:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def progress_bar(*, total: int | None, desc: str = "", unit: str = "it", disable: bool = False, initial: int = 0,
                 leave: bool = True, file: TextIO | None = None) -> Any:
    """A tqdm bar on a terminal, a :class:`LineProgress` elsewhere, or nothing with ``disable``."""
    if disable:
        return _Disabled()
    stream = file if file is not None else sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=leave, file=stream,
                    dynamic_ncols=True)
    return LineProgress(total=total, desc=desc, unit=unit, initial=initial, file=stream)
