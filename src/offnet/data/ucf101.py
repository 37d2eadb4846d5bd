"""UCF-101 as distributed: class folders of ``.avi`` files and the official ``ucfTrainTestlist``.

Layout (any of the three video folders is accepted; the first that holds class folders wins)::

    ROOT/videos/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi     (or ROOT/UCF-101/…, or ROOT/<Class>/…)
    ROOT/ucfTrainTestlist/classInd.txt        "1 ApplyEyeMakeup"            (1-based, 101 lines)
    ROOT/ucfTrainTestlist/trainlist01.txt     "ApplyEyeMakeup/v_…_g08_c01.avi 1"  (1-based label)
    ROOT/ucfTrainTestlist/testlist01.txt      "ApplyEyeMakeup/v_…_g01_c01.avi"    (label = class folder)

Labels in :class:`~offnet.data.records.VideoRecord` are 0-based (``classInd`` index − 1). A train line's
label must agree with its class folder. Class folders are matched exactly, then case-insensitively: the
official lists write ``HandstandPushups/v_HandStandPushups_…`` although file names differ in case.
"""

from __future__ import annotations

import os
from pathlib import Path

from offnet.data.listfile import LineErrors, frames_dir_for, read_class_file, read_lines, resolve_inside
from offnet.data.records import SplitData, VideoRecord

__all__ = ["UCF101_SPLITS", "find_ucf101_layout", "load_ucf101"]

UCF101_SPLITS: tuple[int, ...] = (1, 2, 3)
_SPLIT_DIRS = (
    "ucfTrainTestlist",
    "UCF101TrainTestSplits-RecognitionTask/ucfTrainTestlist",
    "videos/ucfTrainTestlist",
)
_VIDEO_DIRS = ("videos", "UCF-101", "UCF101", ".")


def find_ucf101_layout(root: str | Path) -> tuple[Path, Path, list[str]]:
    """``(video_dir, split_dir, class_names)`` of a UCF-101 root; ``FileNotFoundError`` if absent."""
    root = Path(os.path.abspath(root))
    split_dir = next((root / d for d in _SPLIT_DIRS if (root / d / "classInd.txt").is_file()), None)
    if split_dir is None:
        tried = ", ".join(str(root / d / "classInd.txt") for d in _SPLIT_DIRS)
        raise FileNotFoundError(
            f"UCF-101 split files not found (tried {tried}); unzip UCF101TrainTestSplits-RecognitionTask.zip "
            f"into {root}"
        )
    class_names = read_class_file(split_dir / "classInd.txt")
    video_dir = None
    for d in _VIDEO_DIRS:
        candidate = root if d == "." else root / d
        if candidate.is_dir() and any((candidate / name).is_dir() for name in class_names):
            video_dir = candidate
            break
    if video_dir is None:
        # Nothing found: keep the documented layout so that `data check` lists the missing files.
        video_dir = root / "videos" if (root / "videos").is_dir() else root
    return video_dir, split_dir, class_names


def load_ucf101(
    root: str | Path, *, split: int = 1, subset: str = "train", frames_root: str | Path | None = None
) -> SplitData:
    """Parse ``trainlist0{split}.txt`` or ``testlist0{split}.txt`` into 0-labelled records.

    Raises ``ValueError`` listing every bad line (file:line): wrong column count, unknown class folder,
    label not matching the folder, path escaping the video folder.
    """
    if split not in UCF101_SPLITS:
        raise ValueError(f"UCF-101 split {split} does not exist; choose one of {list(UCF101_SPLITS)}")
    video_dir, split_dir, class_names = find_ucf101_layout(root)
    list_path = split_dir / f"{subset}list{split:02d}.txt"
    index = {name: i for i, name in enumerate(class_names)}
    folded = {name.lower(): i for i, name in enumerate(class_names)}
    errors = LineErrors()
    records: list[VideoRecord] = []
    for number, line in read_lines(list_path):
        where = f"{list_path}:{number}"
        parts = line.split()
        wanted = (2,) if subset == "train" else (1, 2)
        if len(parts) not in wanted:
            form = "'Class/v_….avi label'" if subset == "train" else "'Class/v_….avi'"
            errors.add(
                where,
                f"expected {form} ({' or '.join(map(str, wanted))} columns), got {len(parts)}: {line!r}",
            )
            continue
        try:
            path = resolve_inside(video_dir, parts[0])
        except ValueError as exc:
            errors.add(where, str(exc))
            continue
        rel = path.relative_to(video_dir).parts
        folder = rel[0] if len(rel) > 1 else ""
        label = index.get(folder, folded.get(folder.lower()))
        if label is None:
            errors.add(
                where,
                f"unknown class folder {folder!r} in {parts[0]!r}; valid classes are the {len(class_names)} "
                f"names of {split_dir / 'classInd.txt'} (e.g. {class_names[0]!r})",
            )
            continue
        if len(parts) == 2:
            if not parts[1].isdigit():
                errors.add(where, f"label must be an integer 1..{len(class_names)}, got {parts[1]!r}")
                continue
            given = int(parts[1])
            if given != label + 1:
                named = class_names[given - 1] if 1 <= given <= len(class_names) else "no class"
                errors.add(
                    where,
                    f"label {given} ({named}) does not match the class folder {folder!r} "
                    f"(label {label + 1}); "
                    "fix the label or the path",
                )
                continue
        if frames_root is not None:
            path = frames_dir_for(Path(frames_root), video_dir, path)
        records.append(VideoRecord(path=path, label=label, source=f"{list_path.name}:{number}"))
    errors.raise_if_any()
    base = Path(frames_root) if frames_root is not None else video_dir
    return SplitData(records=records, class_names=class_names, base=base)
