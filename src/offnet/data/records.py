"""The record every dataset parser produces and every clip dataset consumes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["VideoRecord", "SplitData"]


@dataclass(frozen=True)
class VideoRecord:
    """One video of a dataset split.

    ``path`` is absolute: a video file, or a folder of extracted frames (``img_00001.jpg`` …,
    ``flow_x_00001.jpg`` …). ``num_frames`` is known for frame folders and list files that give it,
    otherwise ``None`` until decoded. ``source`` says where the record came from ("trainlist01.txt:17")
    so that errors can point at the line.
    """

    path: Path
    label: int
    num_frames: int | None = None
    source: str = ""

    @property
    def is_frames(self) -> bool:
        return self.path.is_dir()

    @property
    def name(self) -> str:
        return self.path.stem if not self.path.is_dir() else self.path.name


@dataclass(frozen=True)
class SplitData:
    """The videos of one subset of one split, with the dataset's class names.

    ``records[i].label`` indexes ``class_names``. ``base`` is the folder the records' paths live under
    (the video folder, or ``frames_root``): list files written for this split are relative to it.
    """

    records: list[VideoRecord]
    class_names: list[str]
    base: Path
