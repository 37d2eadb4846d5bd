"""List files and the rules every split parser shares.

A **list file** names one video per line, relative to a data root, in one of two forms::

    Basketball/v_Basketball_g01_c01.avi 7          # "relative/path label"
    Basketball/v_Basketball_g01_c01 164 7          # rawframes: "relative/dir num_frames label"

Labels are 0-based indices into a **class file** (one class name per line; the UCF-101 ``classInd.txt``
form "1 ApplyEyeMakeup" is accepted too). Blank lines and lines starting with ``#`` are skipped.

Every path read from a split or list file must stay inside the data root: absolute paths and paths that
climb out with ``..`` are refused, checked on the text (not on resolved symlinks, so a root that is itself a
symlink to a big disk still works). Every error names the file and the line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from offnet.data.records import VideoRecord
from offnet.fileio import atomic_write_text

__all__ = [
    "VIDEO_EXTENSIONS",
    "LineErrors",
    "read_lines",
    "resolve_inside",
    "read_class_file",
    "parse_list_file",
    "format_list_line",
    "atomic_write_text",
    "frames_dir_for",
]

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".avi",
    ".mp4",
    ".mkv",
    ".mov",
    ".webm",
    ".mpg",
    ".mpeg",
    ".m4v",
    ".wmv",
    ".flv",
    ".3gp",
)

_MAX_LISTED_ERRORS = 30


class LineErrors:
    """Collects "file:line: message" errors so that one run reports every bad line, not only the first."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.messages.append(f"{where}: {message}")

    def raise_if_any(self, hint: str = "") -> None:
        if not self.messages:
            return
        shown = self.messages[:_MAX_LISTED_ERRORS]
        more = len(self.messages) - len(shown)
        text = "\n  ".join(shown)
        tail = f"\n  … and {more} more" if more else ""
        plural = "s" if len(self.messages) > 1 else ""
        raise ValueError(
            f"{len(self.messages)} bad line{plural}:\n  {text}{tail}" + (f"\n{hint}" if hint else "")
        )


def read_lines(path: str | Path) -> list[tuple[int, str]]:
    """``(line_number, text)`` of the non-blank, non-comment lines of a UTF-8 text file (1-based numbers)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"list file not found: {path}; check the path (and the dataset root)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); save the list file as UTF-8") from None
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            out.append((number, line))
    return out


def resolve_inside(root: Path, relative: str) -> Path:
    """Join ``relative`` onto the absolute ``root``; ``ValueError`` if the result would leave the root.

    The check is lexical (``os.path.normpath``): absolute paths, drive letters and ``..`` components that
    climb above ``root`` are refused. The caller adds the file and line to the message.
    """
    root_n = os.path.normpath(os.path.abspath(root))
    rel = relative.replace("\\", "/")
    if os.path.isabs(rel) or rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        raise ValueError(
            f"path {relative!r} is absolute; paths in list files must stay inside the data root {root_n} "
            "(write them relative to it)"
        )
    joined = os.path.normpath(os.path.join(root_n, rel))
    if joined == root_n or os.path.commonpath([joined, root_n]) != root_n:
        raise ValueError(
            f"path {relative!r} escapes the data root {root_n}; paths in list files must stay inside "
            "the data root (remove the '..' parts)"
        )
    return Path(joined)


def read_class_file(path: str | Path) -> list[str]:
    """Class names, one per line (or "index name" lines numbered 1..N as in UCF-101's ``classInd.txt``)."""
    path = Path(path)
    errors = LineErrors()
    names: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in read_lines(path):
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            index, name = int(parts[0]), parts[1]
            if index != len(names) + 1:
                errors.add(
                    f"{path}:{number}", f"class index {index}, expected {len(names) + 1} (numbered 1..N)"
                )
        elif len(parts) == 1:
            name = parts[0]
        else:
            errors.add(f"{path}:{number}", f"expected one class name (or 'index name'), got {line!r}")
            continue
        if name in first_line:
            errors.add(f"{path}:{number}", f"class {name!r} repeats line {first_line[name]}")
        first_line.setdefault(name, number)
        names.append(name)
    errors.raise_if_any()
    if not names:
        raise ValueError(f"class file {path} names no class; write one class name per line")
    return names


def parse_list_file(
    list_file: str | Path,
    root: str | Path,
    *,
    class_names: Sequence[str] | None = None,
    frames_root: str | Path | None = None,
) -> list[VideoRecord]:
    """Parse a list file into records (paths under ``root``, or under ``frames_root`` without extension).

    Raises ``ValueError`` naming every bad line (wrong column count, non-integer or out-of-range label or
    frame count, path escaping the root) and ``FileNotFoundError`` for a missing list file.
    """
    list_file = Path(list_file)
    root = Path(os.path.abspath(root))
    errors = LineErrors()
    records: list[VideoRecord] = []
    for number, line in read_lines(list_file):
        where = f"{list_file}:{number}"
        parts = line.split()
        if len(parts) not in (2, 3):
            errors.add(
                where,
                f"expected 'path label' or 'path num_frames label' (2 or 3 columns), got {len(parts)}: "
                f"{line!r} (paths with spaces are not supported; rename the file)",
            )
            continue
        try:
            label = int(parts[-1])
            num_frames = int(parts[1]) if len(parts) == 3 else None
        except ValueError:
            errors.add(where, f"label and frame count must be integers, got {line!r}")
            continue
        if label < 0 or (class_names is not None and label >= len(class_names)):
            valid = f"0..{len(class_names) - 1}" if class_names is not None else ">= 0"
            errors.add(
                where, f"label {label} out of range (valid: {valid}; labels in list files are 0-based)"
            )
            continue
        if num_frames is not None and num_frames < 0:
            errors.add(where, f"frame count {num_frames} is negative")
            continue
        try:
            path = resolve_inside(root, parts[0])
        except ValueError as exc:
            errors.add(where, str(exc))
            continue
        if frames_root is not None:
            path = frames_dir_for(Path(frames_root), root, path)
        records.append(
            VideoRecord(path=path, label=label, num_frames=num_frames, source=f"{list_file.name}:{number}")
        )
    errors.raise_if_any()
    return records


def frames_dir_for(frames_root: Path, video_root: Path, video: Path) -> Path:
    """The frame folder of ``video`` under ``frames_root``: same relative path, extension dropped.

    ``offnet extract-flow --root VIDEOS --out FRAMES`` writes ``FRAMES/<Class>/<stem>/``. If the frames were
    extracted from the dataset root instead (``FRAMES/videos/<Class>/<stem>/``) that folder is used.
    """
    frames_root = Path(os.path.abspath(frames_root))
    rel = video.relative_to(video_root)
    rel = rel.with_suffix("") if rel.suffix.lower() in VIDEO_EXTENSIONS else rel
    nested = frames_root / video_root.name
    if not (frames_root / rel.parts[0]).exists() and nested.is_dir():
        return nested / rel
    return frames_root / rel


def format_list_line(relative: str, num_frames: int | None, label: int) -> str:
    """One list-file line: rawframes form when ``num_frames`` is known."""
    if any(c.isspace() for c in relative):
        raise ValueError(f"path {relative!r} contains whitespace, which list files cannot hold; rename it")
    return f"{relative} {label}" if num_frames is None else f"{relative} {num_frames} {label}"


