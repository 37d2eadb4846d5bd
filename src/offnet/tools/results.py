"""Per-video prediction results in a file that grows as a run goes: JSON Lines or CSV, resumable, mergeable.

One line per video, written and flushed as soon as the video is scored, so a killed run keeps every
finished line; a line cut short by the kill is dropped when the file is opened again (``--resume``).

JSON Lines (``.jsonl``)::

    {"video": "clips/a.avi", "status": "ok", "top": [["Run", 0.91], ["Walk", 0.05]], "levels": {"rgb": […], …}}
    {"video": "clips/b.avi", "status": "skipped", "reason": "truncated: … container declares 90 frames …"}

CSV (``.csv``): ``video,status,class_1,probability_1,…,class_K,probability_K,reason`` (K = ``--top``; no
raw logits).

Under ``torchrun`` rank ``r`` writes ``FILE.rank<r>``; :func:`merge_results` then writes ``FILE`` atomically
with one line per video in input order and removes the parts.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from offnet.fileio import atomic_writer, output_error
from offnet.tools.batch import VideoOutcome

__all__ = ["RESULT_SUFFIXES", "result_format", "outcome_record", "part_path", "read_results", "ResultWriter",
           "merge_results"]

RESULT_SUFFIXES = {".jsonl": "jsonl", ".csv": "csv"}


def result_format(path: str | Path) -> str:
    """``"jsonl"`` or ``"csv"`` from the suffix of ``path`` (of ``FILE`` for a part ``FILE.rankN``); anything
    else is an error naming it."""
    path = Path(path)
    if re.fullmatch(r"\.rank\d+", path.suffix):
        path = path.with_suffix("")
    fmt = RESULT_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"--out {path}: unknown suffix {Path(path).suffix!r}; name it .jsonl (JSON Lines, with raw "
                         "scores) or .csv (top classes)")
    return fmt


def part_path(path: str | Path, rank: int) -> Path:
    """The part written by ``rank`` under torchrun: ``FILE.rank<rank>``."""
    path = Path(path)
    return path.with_name(f"{path.name}.rank{rank}")


def csv_columns(top: int) -> list[str]:
    cols = ["video", "status"]
    for k in range(1, top + 1):
        cols += [f"class_{k}", f"probability_{k}"]
    return [*cols, "reason"]


def outcome_record(outcome: VideoOutcome, *, top: int) -> dict[str, Any]:
    """The JSON record of one outcome (see the module docstring)."""
    if outcome.prediction is None:
        return {"video": outcome.video, "status": "skipped", "reason": outcome.error}
    pred = outcome.prediction
    return {"video": outcome.video, "status": "ok", "top": [[n, round(p, 6)] for n, p in pred.top(top)],
            "levels": {k: [float(x) for x in v] for k, v in pred.levels.items()}}


def _csv_row(record: dict[str, Any], top: int) -> list[str]:
    row = [record["video"], record["status"]]
    pairs = record.get("top") or []
    for k in range(top):
        row += [str(pairs[k][0]), f"{pairs[k][1]:.6f}"] if k < len(pairs) else ["", ""]
    return [*row, record.get("reason") or ""]


def _csv_line(values: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _format_line(record: dict[str, Any], fmt: str, top: int) -> str:
    if fmt == "jsonl":
        return json.dumps(record, allow_nan=False) + "\n"
    return _csv_line(_csv_row(record, top))


def read_results(path: str | Path, *, top: int | None = None, repair: bool = False) -> list[dict[str, Any]]:
    """The records of a result file (missing file: none).

    A last line without its newline is what a killed run leaves: it is ignored, and with ``repair`` cut from
    the file so that appending goes on from a clean line. A damaged line elsewhere, or a CSV written with
    another ``--top`` (``top`` given), is an error naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        return []
    fmt = result_format(path)
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if repair and len(complete) != len(data):
        try:
            with open(path, "r+b") as handle:
                handle.truncate(len(complete))
        except OSError as exc:
            raise output_error(path, exc) from exc
    text = complete.decode("utf-8", errors="replace")
    records: list[dict[str, Any]] = []
    if fmt == "jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not a JSON line ({exc.msg}); remove the line or use another "
                                 "--out") from None
            if not isinstance(record, dict) or "video" not in record:
                raise ValueError(f"{path}:{number}: not an offnet result (no 'video'); use another --out")
            records.append(record)
        return records
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return []
    header = rows[0]
    if top is not None and header != csv_columns(top):
        raise ValueError(f"{path}: its columns {header[:4]}… do not match --top {top}; resume with the --top it "
                         "was written with or choose another --out")
    if header[:2] != ["video", "status"]:
        raise ValueError(f"{path}:1: not an offnet result file (header {header[:3]}); use another --out")
    for number, row in enumerate(rows[1:], 2):
        if len(row) != len(header):
            raise ValueError(f"{path}:{number}: {len(row)} fields, the header has {len(header)}; remove the line "
                             "or use another --out")
        values = dict(zip(header, row))
        record: dict[str, Any] = {"video": values["video"], "status": values["status"]}
        if values["status"] == "ok":
            record["top"] = [[values[f"class_{k}"], float(values[f"probability_{k}"])]
                             for k in range(1, (len(header) - 3) // 2 + 1) if values[f"class_{k}"]]
        else:
            record["reason"] = values.get("reason", "")
        records.append(record)
    return records


class ResultWriter:
    """Appends one line per outcome to ``path`` and flushes it at once (``with ResultWriter(…) as w:``)."""

    def __init__(self, path: str | Path, *, top: int) -> None:
        self.path = Path(path)
        self.fmt = result_format(self.path)
        self.top = top
        self._handle: IO[str] | None = None

    def __enter__(self) -> ResultWriter:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.is_file() or self.path.stat().st_size == 0
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in __exit__
            if fresh and self.fmt == "csv":
                self._write(_csv_line(csv_columns(self.top)))
        except OSError as exc:
            raise output_error(self.path, exc) from exc
        return self

    def _write(self, line: str) -> None:
        assert self._handle is not None, "use ResultWriter in a with block"
        try:
            self._handle.write(line)
            self._handle.flush()
        except OSError as exc:
            raise output_error(self.path, exc) from exc

    def write(self, outcome: VideoOutcome) -> dict[str, Any]:
        """Write one outcome's line; returns its record."""
        record = outcome_record(outcome, top=self.top)
        self._write(_format_line(record, self.fmt, self.top))
        return record

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            try:
                os.fsync(self._handle.fileno())
            except OSError:
                pass
            self._handle.close()
            self._handle = None


def merge_results(out: str | Path, parts: Iterable[str | Path], *, order: Sequence[str], top: int) -> int:
    """Write ``out`` (atomically) from its own lines and the ``parts``: one line per video, in ``order``
    (videos not in it follow in the order read); later lines of a video replace earlier ones. The parts are
    removed once ``out`` is written. Returns the number of lines written."""
    out = Path(out)
    fmt = result_format(out)
    parts = [Path(p) for p in parts]
    merged: dict[str, dict[str, Any]] = {}
    for source in [out, *parts]:
        for record in read_results(source, top=top if fmt == "csv" else None):
            merged[record["video"]] = record
    rank = {video: i for i, video in enumerate(order)}
    records = sorted(merged.values(), key=lambda r: rank.get(r["video"], len(rank)))
    with atomic_writer(out) as handle:
        if fmt == "csv":
            handle.write(_csv_line(csv_columns(top)))
        for record in records:
            handle.write(_format_line(record, fmt, top))
    for part in parts:
        part.unlink(missing_ok=True)
    return len(records)
