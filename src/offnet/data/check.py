"""Validate a dataset before training: every missing, unreadable, truncated or too-short video at once.

:func:`inspect_record` looks at one video (file or frame folder) and returns its frame count or the reason
it is bad. :func:`validate_records` applies the bad-video policy at training start; :func:`check_dataset`
builds the full report that ``offnet data check`` prints; :func:`write_split_lists` writes resolved list
files with frame counts.

Frame folders (``offnet extract-flow`` output) follow one rule, shared with :mod:`offnet.data.flow`:
**N RGB frames and N − 1 flow frames**. ``flow_x_k``/``flow_y_k`` is the flow from ``img_k`` to
``img_{k+1}``, so ``#flow_x == #flow_y == #img − 1`` (with ``--no-rgb`` extraction only the flow
files exist, and ``#flow_x == #flow_y``). Files are numbered 1..count without gaps. A folder's usable
frame count (the ``num_frames`` of its record and of written list files) is the flow count when it has
flow, else the RGB count, so that one count is valid for every modality (as the authors' test script,
which reads every modality with the flow list's counts).

A video file is **truncated** when its container declares more frames than decode
(``declared − decoded > max(1, declared // 20)``): the end of the file is missing.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from offnet.data.datasets import SUBSETS, SplitData, load_split
from offnet.data.decode import VideoDecodeError, count_frames, declared_frames, truncation
from offnet.data.listfile import atomic_write_text, format_list_line
from offnet.data.records import VideoRecord

__all__ = [
    "BAD_KINDS",
    "ON_BAD_VIDEO",
    "BadVideo",
    "FrameFolderCounts",
    "SubsetReport",
    "CheckReport",
    "count_frame_folder",
    "inspect_record",
    "validate_records",
    "check_dataset",
    "write_split_lists",
]

log = logging.getLogger(__name__)

BAD_KINDS: tuple[str, ...] = ("missing", "empty", "unreadable", "truncated", "too_short", "too_small",
                              "frame_mismatch")
ON_BAD_VIDEO: tuple[str, ...] = ("fail", "skip")
_FRAME_RE = re.compile(r"^(img|flow_x|flow_y)_(\d+)\.(?:jpg|jpeg|png)$")


@dataclass(frozen=True)
class BadVideo:
    """A video that cannot be used, why (``kind`` is one of :data:`BAD_KINDS`), and where it is listed."""

    record: VideoRecord
    kind: str
    message: str

    def __str__(self) -> str:
        where = f" [{self.record.source}]" if self.record.source else ""
        return f"{self.kind}: {self.record.path}{where}: {self.message}"


@dataclass(frozen=True)
class FrameFolderCounts:
    """Counts of ``img_*``, ``flow_x_*`` and ``flow_y_*`` files in one frame folder, and rule violations."""

    rgb: int
    flow_x: int
    flow_y: int
    problems: tuple[str, ...]

    @property
    def usable(self) -> int:
        """Frames valid for every modality: the flow count when there is flow, else the RGB count."""
        return min(self.flow_x, self.flow_y) if (self.flow_x or self.flow_y) else self.rgb


def count_frame_folder(folder: str | Path) -> FrameFolderCounts:
    """Count a frame folder's files and check them against the N RGB / N − 1 flow rule."""
    numbers: dict[str, list[int]] = {"img": [], "flow_x": [], "flow_y": []}
    for name in os.listdir(folder):
        m = _FRAME_RE.match(name)
        if m:
            numbers[m.group(1)].append(int(m.group(2)))
    problems: list[str] = []
    for kind, nums in numbers.items():
        nums.sort()
        if nums and nums != list(range(1, len(nums) + 1)):
            missing = sorted(set(range(1, nums[-1] + 1)) - set(nums))[:5]
            problems.append(f"{kind} files are not numbered 1..{len(nums)} (missing e.g. {missing})")
    rgb, fx, fy = (len(numbers[k]) for k in ("img", "flow_x", "flow_y"))
    if rgb == 0 and fx == 0 and fy == 0:
        problems.append("no img_00001.jpg or flow_x_00001.jpg frames")
    if fx != fy:
        problems.append(f"{fx} flow_x but {fy} flow_y files (they must be equal)")
    if rgb and (fx or fy) and max(fx, fy) != rgb - 1:
        problems.append(
            f"{rgb} RGB frames but {max(fx, fy)} flow frames (expected {rgb - 1}: N RGB, N-1 flow)"
        )
    return FrameFolderCounts(rgb=rgb, flow_x=fx, flow_y=fy, problems=tuple(problems))


def _broken_images(folder: Path) -> list[str]:
    """Frame files of ``folder`` that cannot be images: empty, or not starting and ending as a JPEG/PNG does.

    Every file's first and last bytes are read (cheap); the first and last frame of each kind are also decoded.
    """
    import cv2

    broken: list[str] = []
    files = sorted(f for f in os.listdir(folder) if _FRAME_RE.match(f))
    for name in files:
        file = folder / name
        try:
            size = file.stat().st_size
            with file.open("rb") as fh:
                head = fh.read(8)
                fh.seek(max(0, size - 2))
                tail = fh.read(2)
        except OSError as exc:
            broken.append(f"{name} ({exc.strerror})")
            continue
        if size == 0:
            broken.append(f"{name} (0 bytes)")
        elif head[:2] == b"\xff\xd8":
            if tail != b"\xff\xd9":
                broken.append(f"{name} (JPEG cut short)")
        elif head != b"\x89PNG\r\n\x1a\n":
            broken.append(f"{name} (not a JPEG or PNG image)")
    for kind in ("img_", "flow_x_", "flow_y_"):
        named = [f for f in files if f.startswith(kind)]
        for name in {named[0], named[-1]} if named else ():
            if not any(b.startswith(name) for b in broken):
                if cv2.imread(str(folder / name), cv2.IMREAD_UNCHANGED) is None:
                    broken.append(f"{name} (does not decode)")
    return broken


def _frame_short_side(path: Path) -> int | None:
    """The shorter side of a video's (or frame folder's) frames, or None when it cannot be told cheaply."""
    from offnet.data.decode import frame_size

    try:
        return min(frame_size(path))
    except (OSError, ValueError, RuntimeError):
        return None


def inspect_record(record: VideoRecord, *, min_frames: int = 1,
                   min_side: int | None = None) -> tuple[VideoRecord, BadVideo | None]:
    """Open one video (file or frame folder): ``(record with num_frames set, None)`` or ``(record, bad)``.

    ``min_side``: frames whose shorter side is smaller are bad ("too_small"): a network input of that size
    cannot be cropped from them (set ``data.resize_to`` to rescale frames first).
    """
    path = record.path

    def bad(kind: str, message: str) -> tuple[VideoRecord, BadVideo]:
        return record, BadVideo(record=record, kind=kind, message=message)

    if not path.exists():
        what = "frame folder" if not path.suffix else "file"
        return bad("missing", f"{what} not found (listed in {record.source or 'the split'})")
    if path.is_dir():
        counts = count_frame_folder(path)
        if counts.problems:
            kind = "unreadable" if counts.rgb == counts.flow_x == counts.flow_y == 0 else "frame_mismatch"
            return bad(
                kind, "; ".join(counts.problems) + "; re-extract this video with `offnet extract-flow`"
            )
        broken = _broken_images(path)
        if broken:
            more = f" and {len(broken) - 3} more" if len(broken) > 3 else ""
            return bad("unreadable", f"broken frame files: {', '.join(broken[:3])}{more}; re-extract this video "
                       "with `offnet extract-flow`")
        n = counts.usable
    else:
        if path.stat().st_size == 0:
            return bad("empty", "file is empty (0 bytes); re-download or re-encode it")
        try:
            n = count_frames(path)
        except VideoDecodeError as exc:
            return bad("unreadable", str(exc))
        except OSError as exc:
            return bad("unreadable", f"cannot read ({exc})")
        why = truncation(declared_frames(path), n)
        if why:
            return bad("truncated", why)
    record = dataclasses.replace(record, num_frames=n)
    if n < min_frames:
        return bad("too_short", f"{n} frames, fewer than the {min_frames} needed (--min-frames)")
    if min_side is not None:
        side = _frame_short_side(path)
        if side is not None and side < min_side:
            return bad("too_small", f"frames of {side} px (shorter side) are smaller than the {min_side} px network "
                       f"input; set data.resize_to (e.g. {round(min_side / 0.875)}) to rescale them first")
    return record, None


def _inspect_all(
    records: Sequence[VideoRecord], *, min_frames: int, workers: int, progress: bool, desc: str,
    min_side: int | None = None,
) -> list[tuple[VideoRecord, BadVideo | None]]:
    from offnet.progress import progress_bar

    bar = progress_bar(total=len(records), desc=desc, unit="video", disable=not progress)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = []
        for result in pool.map(lambda r: inspect_record(r, min_frames=min_frames, min_side=min_side), records):
            results.append(result)
            bar.update()
    bar.close()
    return results


def validate_records(
    records: Sequence[VideoRecord],
    *,
    min_frames: int = 1,
    on_bad_video: str = "fail",
    workers: int = 4,
    progress: bool = False,
    min_side: int | None = None,
) -> tuple[list[VideoRecord], list[BadVideo]]:
    """The training-start policy: ``(good records with num_frames, bad videos)``.

    ``on_bad_video="fail"`` raises one ``ValueError`` listing every bad video; ``"skip"`` logs each
    skipped video and the count and returns them; it raises only when no usable video remains.
    """
    if on_bad_video not in ON_BAD_VIDEO:
        raise ValueError(f"on_bad_video must be one of {list(ON_BAD_VIDEO)}, got {on_bad_video!r}")
    results = _inspect_all(
        records, min_frames=min_frames, workers=workers, progress=progress, desc="checking", min_side=min_side
    )
    good = [r for r, b in results if b is None]
    bad = [b for _, b in results if b is not None]
    if bad and on_bad_video == "fail":
        listing = "\n  ".join(str(b) for b in bad)
        raise ValueError(
            f"{len(bad)} of {len(records)} videos cannot be used:\n  {listing}\n"
            "fix or remove them, or pass on_bad_video='skip' (--on-bad-video skip) to train without them"
        )
    for b in bad:
        log.warning("skipping %s", b)
    if bad:
        kinds = Counter(b.kind for b in bad)
        log.warning("skipped %d of %d videos (%s)", len(bad), len(records),
                    ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    if records and not good:
        raise ValueError(f"none of the {len(records)} videos is usable, e.g. {bad[0]}; run `offnet data check` "
                         "for the list")
    return good, bad


@dataclass
class SubsetReport:
    """Check result for one subset: usable records (with frame counts) and bad videos."""

    subset: str
    good: list[VideoRecord] = field(default_factory=list)
    bad: list[BadVideo] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.good) + len(self.bad)


@dataclass
class CheckReport:
    """What ``offnet data check`` prints: per-subset and per-class counts, every bad video."""

    dataset: str
    root: Path
    split: int
    class_names: list[str]
    base: Path
    subsets: dict[str, SubsetReport]

    @property
    def bad(self) -> list[BadVideo]:
        return [b for s in self.subsets.values() for b in s.bad]

    @property
    def usable(self) -> int:
        return sum(len(s.good) for s in self.subsets.values())

    def per_class(self) -> list[tuple[str, dict[str, int], dict[str, int]]]:
        """``(class name, {subset: good count}, {subset: bad count})`` for every class."""
        good = {s: Counter(r.label for r in rep.good) for s, rep in self.subsets.items()}
        bad = {s: Counter(b.record.label for b in rep.bad) for s, rep in self.subsets.items()}
        return [
            (name, {s: good[s][i] for s in self.subsets}, {s: bad[s][i] for s in self.subsets})
            for i, name in enumerate(self.class_names)
        ]

    def ok(self, on_bad_video: str = "fail") -> bool:
        """``fail``: no bad video and something to train on; ``skip``: some usable video remains."""
        if on_bad_video == "fail":
            return not self.bad and self.usable > 0
        return len(self.subsets.get("train", SubsetReport("train")).good) > 0 or (
            "train" not in self.subsets and self.usable > 0
        )


def check_dataset(
    dataset: str,
    root: str | Path,
    *,
    split: int = 1,
    subsets: Sequence[str] = SUBSETS,
    list_files: dict[str, str | Path] | None = None,
    class_file: str | Path | None = None,
    frames_root: str | Path | None = None,
    min_frames: int = 1,
    workers: int = 4,
    progress: bool = False,
) -> CheckReport:
    """Parse the split and inspect every video of ``subsets`` (``list_files`` maps subset → list file).

    Parse errors (bad split lines) raise ``ValueError`` naming file and line; video problems are
    collected in the report, never raised. Each distinct path is opened once.
    """
    data: dict[str, SplitData] = {}
    for subset in subsets:
        list_file = (list_files or {}).get(subset)
        if dataset == "list" and list_file is None:
            continue
        data[subset] = load_split(
            dataset,
            root,
            split=split,
            subset=subset,
            list_file=list_file,
            class_file=class_file,
            frames_root=frames_root,
        )
    if not data:
        raise ValueError("nothing to check: dataset 'list' needs a train and/or test list file")
    first = next(iter(data.values()))
    class_names = max((d.class_names for d in data.values()), key=len)
    unique: dict[Path, VideoRecord] = {}
    for d in data.values():
        for r in d.records:
            unique.setdefault(r.path, r)
    results = _inspect_all(
        list(unique.values()),
        min_frames=min_frames,
        workers=workers,
        progress=progress,
        desc="checking videos",
    )
    by_path = {r.path: (r, b) for r, b in results}
    reports: dict[str, SubsetReport] = {}
    for subset, d in data.items():
        rep = SubsetReport(subset)
        for r in d.records:
            checked, b = by_path[r.path]
            if b is None:
                rep.good.append(dataclasses.replace(checked, label=r.label, source=r.source))
            else:
                rep.bad.append(dataclasses.replace(b, record=r))
        reports[subset] = rep
    return CheckReport(
        dataset=dataset,
        root=Path(os.path.abspath(root)),
        split=split,
        class_names=class_names,
        base=first.base,
        subsets=reports,
    )


def write_split_lists(report: CheckReport, out_dir: str | Path) -> list[Path]:
    """Write ``{subset}_split{N}.txt`` ("path num_frames label", usable videos) and ``classes.txt``.

    Paths are relative to ``report.base``; load them back with
    ``load_split("list", report.base, list_file=…, class_file=…)``. Every file is written atomically.
    """
    out_dir = Path(out_dir)
    written = [atomic_write_text(out_dir / "classes.txt", "".join(f"{n}\n" for n in report.class_names))]
    for subset, rep in report.subsets.items():
        lines = []
        for r in rep.good:
            rel = r.path.relative_to(report.base).as_posix()
            lines.append(format_list_line(rel, r.num_frames, r.label) + "\n")
        written.append(atomic_write_text(out_dir / f"{subset}_split{report.split}.txt", "".join(lines)))
    return written
