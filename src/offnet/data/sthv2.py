"""Something-Something v2 as distributed: JSON annotations and one ``.webm`` per clip.

Layout (the archive unpacks the videos into ``20bn-something-something-v2/``; both places work)::

    ROOT/labels/labels.json        {"Approaching something with your camera": "0", …}   (174 templates)
    ROOT/labels/train.json         [{"id": "78687", "label": "holding potato next to …",
    ROOT/labels/validation.json      "template": "Holding [something] next to [something]", …}, …]
    ROOT/20bn-something-something-v2/78687.webm                  (or ROOT/78687.webm)

(the JSON files may also sit in ``ROOT`` itself). ``subset="train"`` reads ``train.json``,
``subset="test"`` reads ``validation.json`` (the test set's labels are not public). An entry's class is its
``template`` with the brackets removed, looked up in ``labels.json``, whose numbers (0..173) are the labels.
Class names are the templates in label order.

The classes are defined by direction ("Pushing something from left to right" / "… right to left"), so a
horizontal flip changes the class: ``data.flip`` is off by default for this dataset.

Every entry is checked: a missing ``id``/``template``, an id that is not a number (and so could name a path
outside the data root), a template absent from ``labels.json`` are errors naming the file and the entry.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from offnet.data.listfile import LineErrors, frames_dir_for, resolve_inside
from offnet.data.records import SplitData, VideoRecord

__all__ = ["STHV2_FILES", "find_sthv2_layout", "read_sthv2_labels", "load_sthv2"]

STHV2_FILES = {"train": "train.json", "test": "validation.json"}
_LABEL_DIRS = ("labels", ".", "annotations")
_VIDEO_DIRS = ("20bn-something-something-v2", "videos", ".")


def find_sthv2_layout(root: str | Path) -> tuple[Path, Path]:
    """``(label_dir, video_dir)`` of a Something-Something v2 root; ``FileNotFoundError`` without ``labels.json``."""
    root = Path(os.path.abspath(root))
    label_dir = next((root / d for d in _LABEL_DIRS if (root / d / "labels.json").is_file()), None)
    if label_dir is None:
        tried = ", ".join(str(root / d / "labels.json") for d in _LABEL_DIRS)
        raise FileNotFoundError(f"Something-Something v2 labels.json not found (tried {tried}); unpack the label "
                                f"archive into {root}")
    video_dir = next((root / d for d in _VIDEO_DIRS if d != "." and (root / d).is_dir()), root)
    return label_dir, video_dir


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"Something-Something v2 annotation file not found: {path}; unpack the label archive "
                                "next to labels.json")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); give the file as distributed") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None


def _template_name(template: str) -> str:
    """The class name of a template: "Putting [something] on [something]" -> "Putting something on something"."""
    return template.replace("[", "").replace("]", "").strip()


def read_sthv2_labels(path: Path) -> list[str]:
    """Class names in label order from ``labels.json`` (``{template: "index"}``, indices 0..N-1)."""
    data = _read_json(path)
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a JSON object mapping each template to its label number, e.g. "
                         '{"Approaching something with your camera": "0", …}')
    errors = LineErrors()
    by_index: dict[int, str] = {}
    for name, value in data.items():
        text = str(value).strip()
        if not text.isdigit():
            errors.add(f"{path} entry {name!r}", f"label number must be a non-negative integer, got {value!r}")
            continue
        index = int(text)
        if index in by_index:
            errors.add(f"{path} entry {name!r}", f"label number {index} is also given to {by_index[index]!r}")
            continue
        by_index[index] = _template_name(name)
    errors.raise_if_any()
    if sorted(by_index) != list(range(len(by_index))):
        gaps = sorted(set(range(max(by_index) + 1)) - set(by_index))[:5]
        raise ValueError(f"{path}: label numbers must run 0..{len(by_index) - 1} without gaps (missing e.g. {gaps})")
    return [by_index[i] for i in range(len(by_index))]


def load_sthv2(root: str | Path, *, subset: str = "train", frames_root: str | Path | None = None) -> SplitData:
    """Parse ``labels.json`` and the entries of ``subset`` (see the module docstring) into records.

    Raises ``ValueError`` listing every bad entry (file, entry number and id) and ``FileNotFoundError`` for a
    missing annotation file.
    """
    label_dir, video_dir = find_sthv2_layout(root)
    class_names = read_sthv2_labels(label_dir / "labels.json")
    index = {name: i for i, name in enumerate(class_names)}
    path = label_dir / STHV2_FILES[subset]
    entries = _read_json(path)
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON list of clips ({{\"id\": …, \"template\": …}}), got "
                         f"{type(entries).__name__}")
    errors = LineErrors()
    records: list[VideoRecord] = []
    for number, entry in enumerate(entries, start=1):
        where = f"{path} entry {number}"
        if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
            errors.add(where, f"expected an object with 'id' and 'template', got {str(entry)[:80]!r}")
            continue
        clip = str(entry["id"]).strip()
        where = f"{where} (id {clip!r})"
        if not clip.isdigit():
            errors.add(where, "the id must be a number (the video file name); paths must stay inside the data root")
            continue
        name = _template_name(str(entry["template"]))
        if name not in index:
            errors.add(where, f"template {entry['template']!r} is not in {label_dir / 'labels.json'} "
                       f"({len(class_names)} classes)")
            continue
        video = resolve_inside(video_dir, f"{clip}.webm")
        if frames_root is not None:
            video = frames_dir_for(Path(frames_root), video_dir, video)
        records.append(VideoRecord(path=video, label=index[name], source=f"{path.name} entry {number}"))
    errors.raise_if_any()
    base = Path(frames_root) if frames_root is not None else video_dir
    return SplitData(records=records, class_names=class_names, base=base)
