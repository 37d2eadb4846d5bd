"""Kinetics-400/600/700 as distributed: annotation CSVs and one clip per row.

Layout::

    ROOT/train.csv      label,youtube_id,time_start,time_end,split[,is_cc]   (or ROOT/annotations/…,
    ROOT/validate.csv                                                       val.csv, kinetics_train.csv, …)
    ROOT/train/<label>/<youtube_id>_<time_start:06d>_<time_end:06d>.mp4
    ROOT/val/<label>/…                                                     (or ROOT/validate/…, ROOT/valid/…)

``subset="train"`` reads the training CSV and the ``train`` folder; ``subset="test"`` the validation CSV and
the ``val`` folder (the test set's labels are not public; papers report on the validation set). Class names
are the sorted labels of the training CSV (400, 600 or 700 of them), so labels are the same for both
subsets. A label folder may also be written with underscores for spaces (``air_drumming``), as some
download tools do, and clips may sit directly in the split folder (``ROOT/train/<clip>.mp4``); whichever
exists is used, and a clip found nowhere is recorded at the documented path, so that
``offnet data check`` lists it as missing (a few percent of Kinetics clips are always missing:
``--on-bad-video skip`` trains without them).

Every row is checked: a missing column, a time that is not a whole number of seconds, a label absent from
the training CSV, a YouTube id or label that would leave the data root (``/``, ``..``) are errors naming
the file and line.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from offnet.data.listfile import LineErrors, frames_dir_for, resolve_inside
from offnet.data.records import SplitData, VideoRecord

__all__ = ["KINETICS_COLUMNS", "find_kinetics_csv", "read_kinetics_csv", "load_kinetics"]

KINETICS_COLUMNS: tuple[str, ...] = ("label", "youtube_id", "time_start", "time_end")
_CSV_DIRS = (".", "annotations", "kinetics400", "kinetics600", "kinetics700")
_CSV_NAMES = {"train": ("train.csv", "kinetics_train.csv"),
              "test": ("validate.csv", "val.csv", "kinetics_val.csv", "valid.csv")}
_SPLIT_DIRS = {"train": ("train",), "test": ("val", "validate", "valid", "validation")}
_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def find_kinetics_csv(root: str | Path, subset: str) -> Path:
    """The annotation CSV of ``subset`` (``train`` / ``test`` = validation); ``FileNotFoundError`` if absent."""
    root = Path(os.path.abspath(root))
    for d in _CSV_DIRS:
        for name in _CSV_NAMES[subset]:
            path = root / d / name
            if path.is_file():
                return path
    tried = ", ".join(_CSV_NAMES[subset])
    raise FileNotFoundError(
        f"Kinetics annotation file for '{subset}' not found in {root} or {root / 'annotations'} (tried {tried}); "
        "unpack the annotation archive of Kinetics-400/600/700 into the dataset root"
    )


def _seconds(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() and value >= 0 else None


def read_kinetics_csv(path: Path) -> tuple[list[tuple[int, str, str, int, int]], LineErrors]:
    """Rows ``(line, label, youtube_id, start, end)`` of an annotation CSV, and the errors of the bad rows."""
    errors = LineErrors()
    rows: list[tuple[int, str, str, int, int]] = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); give the CSV as distributed") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        raise ValueError(f"{path}: empty file; expected a header line {','.join(KINETICS_COLUMNS)},split")
    header = [h.strip() for h in header]
    missing = [c for c in KINETICS_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path}:1: header lacks column(s) {missing}; expected "
                         f"{','.join(KINETICS_COLUMNS)},split (got {','.join(header)})")
    col = {name: header.index(name) for name in KINETICS_COLUMNS}
    for number, fields in enumerate(reader, start=2):
        if not fields or all(not f.strip() for f in fields):
            continue
        where = f"{path}:{number}"
        if len(fields) != len(header):
            errors.add(where, f"{len(fields)} fields, the header has {len(header)}: {','.join(fields)!r}")
            continue
        label, youtube_id = fields[col["label"]].strip(), fields[col["youtube_id"]].strip()
        start, end = _seconds(fields[col["time_start"]].strip()), _seconds(fields[col["time_end"]].strip())
        if not label or "/" in label or "\\" in label or label in (".", ".."):
            errors.add(where, f"label {label!r} is empty or not a folder name; paths must stay inside the data root")
            continue
        if not _YOUTUBE_ID.match(youtube_id):
            errors.add(where, f"youtube_id {youtube_id!r} is not a YouTube id (letters, digits, '-', '_'); paths must "
                       "stay inside the data root")
            continue
        if start is None or end is None or end <= start:
            errors.add(where, f"time_start/time_end must be whole seconds with time_start < time_end, got "
                       f"{fields[col['time_start']]!r}, {fields[col['time_end']]!r}")
            continue
        rows.append((number, label, youtube_id, start, end))
    return rows, errors


def _split_dir(root: Path, subset: str) -> Path:
    for name in _SPLIT_DIRS[subset]:
        if (root / name).is_dir():
            return root / name
    return root / _SPLIT_DIRS[subset][0]


def load_kinetics(root: str | Path, *, subset: str = "train", frames_root: str | Path | None = None) -> SplitData:
    """Parse the training CSV (class names) and the CSV of ``subset`` into records (see the module docstring).

    Raises ``ValueError`` listing every bad row (file:line) and ``FileNotFoundError`` for a missing CSV.
    """
    root = Path(os.path.abspath(root))
    train_csv = find_kinetics_csv(root, "train")
    train_rows, train_errors = read_kinetics_csv(train_csv)
    train_errors.raise_if_any()
    class_names = sorted({label for _, label, *_ in train_rows})
    if not class_names:
        raise ValueError(f"{train_csv}: no clip listed; expected rows of {','.join(KINETICS_COLUMNS)},split")
    if subset == "train":
        csv_path, rows = train_csv, train_rows
        errors = LineErrors()
    else:
        csv_path = find_kinetics_csv(root, subset)
        rows, errors = read_kinetics_csv(csv_path)
    index = {name: i for i, name in enumerate(class_names)}
    split_dir = _split_dir(root, subset)
    folders: dict[str, Path | None] = {}  # label -> its folder (spaces or underscores), None: clips sit flat
    records: list[VideoRecord] = []
    for number, label, youtube_id, start, end in rows:
        where = f"{csv_path}:{number}"
        if label not in index:
            errors.add(where, f"label {label!r} is not a class of {train_csv.name} ({len(class_names)} classes, e.g. "
                       f"{class_names[0]!r})")
            continue
        name = f"{youtube_id}_{start:06d}_{end:06d}.mp4"
        if label not in folders:
            folders[label] = next((split_dir / f for f in (label, label.replace(" ", "_"))
                                   if (split_dir / f).is_dir()), None)
        folder = folders[label]
        try:
            if folder is not None:
                path = resolve_inside(split_dir, f"{folder.name}/{name}")
            elif (split_dir / name).is_file():
                path = resolve_inside(split_dir, name)
            else:
                path = resolve_inside(split_dir, f"{label}/{name}")  # not found: reported at the documented path
        except ValueError as exc:
            errors.add(where, str(exc))
            continue
        if frames_root is not None:
            path = frames_dir_for(Path(frames_root), split_dir, path)
        records.append(VideoRecord(path=path, label=index[label], source=f"{csv_path.name}:{number}"))
    errors.raise_if_any()
    base = Path(frames_root) if frames_root is not None else split_dir
    return SplitData(records=records, class_names=class_names, base=base)
