"""One entry point to every dataset layout: :func:`load_split` → :class:`SplitData`.

Layouts (details in the modules that parse them):

* ``"ucf101"`` — UCF-101 as distributed (:mod:`offnet.data.ucf101`), splits 1–3.
* ``"hmdb51"`` — HMDB-51 as distributed (:mod:`offnet.data.hmdb51`), splits 1–3.
* ``"kinetics"`` — Kinetics-400/600/700 as distributed (:mod:`offnet.data.kinetics`); ``test`` = validation.
* ``"sthv2"`` — Something-Something v2 as distributed (:mod:`offnet.data.sthv2`); ``test`` = validation.
* ``"folder"`` — your own videos, one folder per class: ``ROOT/<class>/<video>`` (class names = sorted
  folder names). With ``ROOT/train/<class>/…`` and ``ROOT/test/<class>/…`` the subsets come from those;
  otherwise every video is in ``"train"`` and ``"test"`` is empty. A class folder may hold video files or
  frame folders (``<video>/img_00001.jpg`` …).
* ``"list"`` — a list file (:mod:`offnet.data.listfile`) with paths relative to ``root`` and an optional
  class file.

With ``frames_root`` the records point at frame folders (the output of ``offnet extract-flow``:
``FRAMES/<Class>/<video_stem>/img_00001.jpg``, ``flow_x_00001.jpg`` …) instead of the video files.
Parsing reads split files only; whether the videos exist and decode is checked by
:func:`offnet.data.check.check_dataset` / :func:`offnet.data.check.validate_records`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from offnet.data.listfile import VIDEO_EXTENSIONS, frames_dir_for, parse_list_file, read_class_file
from offnet.data.records import SplitData, VideoRecord

__all__ = ["DATASETS", "SUBSETS", "SplitData", "load_split", "load_folder"]

log = logging.getLogger(__name__)

DATASETS: tuple[str, ...] = ("ucf101", "hmdb51", "kinetics", "sthv2", "folder", "list")
SUBSETS: tuple[str, ...] = ("train", "test")


def load_split(
    dataset: str,
    root: str | Path,
    *,
    split: int = 1,
    subset: str = "train",
    list_file: str | Path | None = None,
    class_file: str | Path | None = None,
    frames_root: str | Path | None = None,
) -> SplitData:
    """Parse one subset (``"train"`` / ``"test"``) of one split of a dataset.

    ``split`` selects the official split (1, 2 or 3) of UCF-101 and HMDB-51 and is ignored otherwise
    (Kinetics and Something-Something v2 have one split: ``test`` is their validation set).
    ``list_file`` (required for ``"list"``) and ``class_file`` (optional, ``"list"`` only) name the list
    files; ``list_file`` is the list of the requested subset. Raises ``ValueError`` naming the file and
    line of every malformed split line, and ``FileNotFoundError`` for a missing root or split file.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {list(DATASETS)}")
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; choose one of {list(SUBSETS)}")
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root not found: {root}; pass the folder that holds the dataset")
    if frames_root is not None:
        frames_root = Path(os.path.abspath(frames_root))
        if not frames_root.is_dir():
            raise FileNotFoundError(
                f"frames root not found: {frames_root}; extract frames first with `offnet extract-flow`"
            )
    if dataset == "ucf101":
        from offnet.data.ucf101 import load_ucf101

        return load_ucf101(root, split=split, subset=subset, frames_root=frames_root)
    if dataset == "hmdb51":
        from offnet.data.hmdb51 import load_hmdb51

        return load_hmdb51(root, split=split, subset=subset, frames_root=frames_root)
    if dataset == "kinetics":
        from offnet.data.kinetics import load_kinetics

        return load_kinetics(root, subset=subset, frames_root=frames_root)
    if dataset == "sthv2":
        from offnet.data.sthv2 import load_sthv2

        return load_sthv2(root, subset=subset, frames_root=frames_root)
    if dataset == "folder":
        return load_folder(root, subset=subset, frames_root=frames_root)
    if list_file is None:
        raise ValueError("dataset 'list' needs list_file= (a file of 'relative/path label' lines)")
    class_names = read_class_file(class_file) if class_file is not None else None
    records = parse_list_file(list_file, root, class_names=class_names, frames_root=frames_root)
    if class_names is None:
        # No class file: name classes by their label so that reports still have one row per class.
        count = max((r.label for r in records), default=-1) + 1
        class_names = [str(i) for i in range(count)]
    return SplitData(records=records, class_names=class_names, base=frames_root or root)


def _is_video_entry(path: Path) -> bool:
    if path.name.startswith("."):
        return False  # hidden files and unfinished extraction folders (".name.offnet-tmp")
    if path.is_dir():
        return any(p.name.startswith(("img_", "flow_x_")) for p in path.iterdir())
    return path.suffix.lower() in VIDEO_EXTENSIONS


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_folder(
    root: str | Path, *, subset: str = "train", frames_root: str | Path | None = None
) -> SplitData:
    """A folder per class (see the module docstring); labels follow the sorted class folder names."""
    root = Path(os.path.abspath(root))
    has_subsets = (root / "train").is_dir() and (root / "test").is_dir()
    if has_subsets:
        names = sorted({p.name for s in SUBSETS for p in _class_dirs(root / s)})
        folder = root / subset
    else:
        names = [p.name for p in _class_dirs(root)]
        folder = root
    if not names:
        raise ValueError(
            f"no class folders in {root}; the 'folder' layout is ROOT/<class>/<video> "
            "(or ROOT/train/<class>/… and ROOT/test/<class>/…)"
        )
    if not has_subsets and subset == "test":
        log.warning("%s has no train/ and test/ folders: every video is in 'train', 'test' is empty", root)
        return SplitData(records=[], class_names=names, base=Path(frames_root or root))
    records: list[VideoRecord] = []
    for label, name in enumerate(names):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        for entry in sorted(class_dir.iterdir()):
            if not _is_video_entry(entry):
                continue
            path = entry
            if frames_root is not None and entry.is_file():
                path = frames_dir_for(Path(frames_root), root, entry)
            records.append(VideoRecord(path=path, label=label, source=f"{class_dir}/"))
    if not records:
        log.warning("no videos (%s) or frame folders found under %s", ", ".join(VIDEO_EXTENSIONS), folder)
    return SplitData(records=records, class_names=names, base=Path(frames_root or root))
