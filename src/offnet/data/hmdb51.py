"""HMDB-51 as distributed: class folders of ``.avi`` files and the ``testTrainMulti_7030_splits`` files.

Layout::

    ROOT/videos/brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi   (or ROOT/hmdb51_org/…, ROOT/<class>/…)
    ROOT/testTrainMulti_7030_splits/brush_hair_test_split1.txt           (51 classes × 3 splits)

Each split file line is ``"<name>.avi <id>"`` with id 1 = train, 2 = test, 0 = unused in this split. The
class names are the sorted class parts of the split file names, so labels are stable (0..50).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from offnet.data.listfile import LineErrors, frames_dir_for, read_lines, resolve_inside
from offnet.data.records import SplitData, VideoRecord

__all__ = ["HMDB51_SPLITS", "find_hmdb51_layout", "load_hmdb51"]

HMDB51_SPLITS: tuple[int, ...] = (1, 2, 3)
_SPLIT_DIRS = ("testTrainMulti_7030_splits", "test_train_splits/testTrainMulti_7030_splits", "splits")
_VIDEO_DIRS = ("videos", "hmdb51_org", "hmdb51", ".")
_SUBSET_ID = {"train": 1, "test": 2}


def find_hmdb51_layout(root: str | Path, split: int) -> tuple[Path, dict[str, Path]]:
    """``(video_dir, {class_name: split_file})`` for ``split``; ``FileNotFoundError`` if no split file."""
    root = Path(os.path.abspath(root))
    pattern = re.compile(rf"^(.+)_test_split{split}\.txt$")
    files: dict[str, Path] = {}
    for d in _SPLIT_DIRS:
        folder = root / d
        if folder.is_dir():
            for f in sorted(folder.iterdir()):
                m = pattern.match(f.name)
                if m:
                    files[m.group(1)] = f
            if files:
                break
    if not files:
        tried = ", ".join(str(root / d) for d in _SPLIT_DIRS)
        raise FileNotFoundError(
            f"HMDB-51 split files '<class>_test_split{split}.txt' not found (tried {tried}); extract "
            f"test_train_splits.rar into {root}"
        )
    video_dir = None
    for d in _VIDEO_DIRS:
        candidate = root if d == "." else root / d
        if candidate.is_dir() and any((candidate / name).is_dir() for name in files):
            video_dir = candidate
            break
    if video_dir is None:
        video_dir = root / "videos" if (root / "videos").is_dir() else root
    return video_dir, dict(sorted(files.items()))


def load_hmdb51(
    root: str | Path, *, split: int = 1, subset: str = "train", frames_root: str | Path | None = None
) -> SplitData:
    """Parse the 51 ``<class>_test_split{split}.txt`` files into the records of ``subset``.

    Raises ``ValueError`` listing every bad line (file:line): wrong column count, an id other than 0/1/2,
    a name that is not a plain file name (paths must stay inside the class folder).
    """
    if split not in HMDB51_SPLITS:
        raise ValueError(f"HMDB-51 split {split} does not exist; choose one of {list(HMDB51_SPLITS)}")
    video_dir, files = find_hmdb51_layout(root, split)
    class_names = list(files)
    wanted_id = _SUBSET_ID[subset]
    errors = LineErrors()
    records: list[VideoRecord] = []
    for label, (name, split_file) in enumerate(files.items()):
        class_dir = video_dir / name
        for number, line in read_lines(split_file):
            where = f"{split_file}:{number}"
            parts = line.split()
            if len(parts) != 2:
                errors.add(where, f"expected '<name>.avi <id>' (2 columns), got {len(parts)}: {line!r}")
                continue
            if parts[1] not in ("0", "1", "2"):
                errors.add(where, f"id must be 0 (unused), 1 (train) or 2 (test), got {parts[1]!r}")
                continue
            video = parts[0]
            try:
                path = resolve_inside(class_dir, video)
            except ValueError as exc:
                errors.add(where, str(exc))
                continue
            if path.parent != class_dir:
                errors.add(
                    where,
                    f"{video!r} is not a file name of class folder {class_dir}; paths in list files must "
                    "stay "
                    "inside the data root and the class named by the split file",
                )
                continue
            if int(parts[1]) != wanted_id:
                continue
            if frames_root is not None:
                path = frames_dir_for(Path(frames_root), video_dir, path)
            records.append(VideoRecord(path=path, label=label, source=f"{split_file.name}:{number}"))
    errors.raise_if_any()
    base = Path(frames_root) if frames_root is not None else video_dir
    return SplitData(records=records, class_names=class_names, base=base)
