"""Read frames from video files (PyAV) and from folders of extracted frames (OpenCV).

Two storage layouts are supported everywhere:

* a **video file** (``.avi``, ``.mp4``, …) decoded with PyAV;
* a **frame folder** holding ``img_00001.jpg`` … (1-indexed, ``.png`` also accepted) and, for optical flow,
  ``flow_x_00001.jpg`` / ``flow_y_00001.jpg`` grayscale images (the layout of the authors' ``build_of.py``).

Indices in this module are always **0-based**: index ``i`` is the ``i``-th frame in presentation order of a
video, or the file ``img_{i+1:05d}.jpg`` of a folder. Frames come back as RGB ``uint8`` arrays, so that the
same frames read from a video and from a lossless (PNG) extraction of it are bit-identical.

Frame-accurate random access. A video's frames are indexed once by demuxing its packets (no decoding): the
sorted packet timestamps are the frames' presentation timestamps, so frame ``i`` is the frame whose ``pts``
is the ``i``-th smallest. To read frame ``i`` the decoder seeks to the last keyframe at or before it and
decodes forward, recognising frames by ``pts``. Containers without usable timestamps fall back to decoding
from the start and counting. The index is verified (the tail of the video is decoded, and the packet count
is compared with the container's frame count) and rebuilt from a full decode when they disagree; it is
cached per ``(path, size, mtime)``.

The cache is per process (each DataLoader worker has its own) and bounded: it keeps the indexes of the
:func:`index_cache_size` most recently used videos (``$OFFNET_INDEX_CACHE``, default 4096; frame folders' counts
likewise) and forgets the least recently used, so a dataset of Kinetics' size (240k videos) does not grow a
worker's memory without limit. Timestamps are stored as packed 64-bit integers (8 bytes a frame).
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import threading
from array import array
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

__all__ = [
    "VideoDecodeError",
    "count_frames",
    "count_flow_frames",
    "read_frames",
    "read_flow_frames",
    "iter_frames",
    "clear_cache",
    "index_cache_size",
    "set_index_cache_size",
    "INDEX_CACHE_ENV",
]

log = logging.getLogger(__name__)

_IMG_RE = re.compile(r"^img_(\d+)\.(jpg|jpeg|png)$")
_FLOW_RE = re.compile(r"^flow_x_(\d+)\.(jpg|jpeg|png)$")


class VideoDecodeError(RuntimeError):
    """A video file or frame folder cannot be read; the message names the path and what to do."""


# --------------------------------------------------------------------------------------------------
# video index
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _VideoIndex:
    """What random access into one video needs.

    ``pts`` are the presentation timestamps of the decodable frames in order (``None`` when the container
    has no usable timestamps: then frames are found by decoding from the start and counting);
    ``key_positions`` are the frame indices of keyframes (seek targets), ascending, starting with 0. Both
    are packed ``array("q")`` (8 bytes an entry, a tuple of ints takes about 36).
    """

    num_frames: int
    height: int
    width: int
    pts: array | None
    key_positions: array

    def keyframe_at_or_before(self, index: int) -> int:
        return self.key_positions[bisect.bisect_right(self.key_positions, index) - 1]


class _LRU:
    """A mapping that keeps its ``maxsize`` most recently used entries (thread-safe)."""

    def __init__(self, maxsize: int) -> None:
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.maxsize = maxsize
        self.hits = self.misses = self.evictions = 0

    def get(self, key: Hashable) -> Any:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            self._shrink()

    def resize(self, maxsize: int) -> None:
        with self._lock:
            self.maxsize = maxsize
            self._shrink()

    def _shrink(self) -> None:
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)
            self.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = self.misses = self.evictions = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data


#: environment variable: how many video indexes (and frame-folder counts) each process keeps
INDEX_CACHE_ENV = "OFFNET_INDEX_CACHE"
_DEFAULT_INDEX_CACHE = 4096


def _size_from_env() -> int:
    text = os.environ.get(INDEX_CACHE_ENV, "").strip()
    if not text:
        return _DEFAULT_INDEX_CACHE
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{INDEX_CACHE_ENV}={text!r}: give the number of videos whose index each process keeps "
                         f"(an integer >= 1, default {_DEFAULT_INDEX_CACHE})")
    return int(text)


_CACHE = _LRU(_size_from_env())  # (path, size, mtime) -> _VideoIndex
_FOLDER_CACHE = _LRU(_CACHE.maxsize)  # (path, mtime, pattern) -> frame count


def index_cache_size() -> int:
    """How many video indexes (and frame-folder counts) this process keeps (least recently used go first)."""
    return _CACHE.maxsize


def set_index_cache_size(maxsize: int) -> None:
    """Keep at most ``maxsize`` video indexes (and as many frame-folder counts) in this process.

    DataLoader workers inherit ``$OFFNET_INDEX_CACHE`` (read when this module is imported); call this in the
    main process before workers start, or set the variable, to change it for them too.
    """
    if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
        raise ValueError(f"index cache size must be an integer >= 1, got {maxsize!r}")
    _CACHE.resize(maxsize)
    _FOLDER_CACHE.resize(maxsize)


def clear_cache() -> None:
    """Forget every cached video index and folder count (tests; files rewritten in place)."""
    _CACHE.clear()
    _FOLDER_CACHE.clear()


def _hint(path: Path) -> str:
    return (
        f"{path}: re-download or re-encode the video (e.g. `ffmpeg -i in -c:v libx264 out.mp4`), "
        "or drop it from the split / run with on_bad_video='skip'"
    )


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise FileNotFoundError(f"video not found: {path}; check the dataset root and the list file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(f"video file is empty (0 bytes): {_hint(path)}")
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoDecodeError(f"cannot open as a video ({exc}): {_hint(path)}") from exc
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(f"no video stream in file: {_hint(path)}")
    return container


def _cache_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def _video_index(path: Path) -> _VideoIndex:
    if not path.exists():
        raise FileNotFoundError(f"video not found: {path}; check the dataset root and the list file")
    key = _cache_key(path)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    index = _build_index(path)
    _CACHE.put(key, index)
    return index


def _build_index(path: Path) -> _VideoIndex:
    container = _open(path)
    try:
        stream = container.streams.video[0]
        declared = stream.frames or 0
        height, width = stream.codec_context.height, stream.codec_context.width
        stamps: list[int] = []
        keys: list[int] = []
        usable = True
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # flush packet
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:
                    usable = False
                    break
                stamps.append(int(ts))
                if packet.is_keyframe:
                    keys.append(int(ts))
        except av.error.FFmpegError as exc:
            log.debug("%s: demuxing stopped early (%s); decoding to count frames", path, exc)
            usable = False
        if usable:
            stamps.sort()
            usable = (
                len(stamps) > 0
                and len(set(stamps)) == len(stamps)
                and (declared in (0, len(stamps)))
                and len(keys) > 0
                and keys[0] <= stamps[0] + 0  # a keyframe opens the stream
                and min(keys) == stamps[0]
            )
        if usable:
            position = {ts: i for i, ts in enumerate(stamps)}
            key_positions = sorted({position[k] for k in keys if k in position})
            if _tail_decodes(container, stream, stamps, stamps[key_positions[-1]]):
                return _VideoIndex(len(stamps), height, width, array("q", stamps), array("q", key_positions))
            log.debug("%s: tail of the video does not decode as indexed; decoding to count frames", path)
    finally:
        container.close()
    index = _index_by_decoding(path)
    if declared and declared != index.num_frames:
        log.warning(
            "%s: the container declares %d frames but %d decode (truncated or damaged file?)",
            path,
            declared,
            index.num_frames,
        )
    return index


def _tail_decodes(container, stream, stamps: list[int], last_key: int) -> bool:
    """Decode from the last keyframe to the end; every indexed frame there must come out."""
    expected = {ts for ts in stamps if ts >= last_key}
    got: set[int] = set()
    try:
        container.seek(last_key, stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is None:
                return False
            got.add(int(frame.pts))
    except av.error.FFmpegError:
        return False
    return expected <= got


def _index_by_decoding(path: Path) -> _VideoIndex:
    """Decode every frame: exact count, and timestamps/keyframes when the frames carry them."""
    container = _open(path)
    stamps: list[int | None] = []
    keys: list[int] = []
    height = width = 0
    try:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            stamps.append(None if frame.pts is None else int(frame.pts))
            if frame.key_frame:
                keys.append(i)
            height, width = frame.height, frame.width
    except av.error.FFmpegError as exc:
        if not stamps:
            raise VideoDecodeError(f"cannot decode any frame ({exc}): {_hint(path)}") from exc
        log.warning("%s: decoding failed after %d frames (%s); using those frames", path, len(stamps), exc)
    finally:
        container.close()
    if not stamps:
        raise VideoDecodeError(f"video contains no decodable frames: {_hint(path)}")
    seekable = (
        all(ts is not None for ts in stamps)
        and all(a < b for a, b in zip(stamps, stamps[1:]))  # type: ignore[operator]
        and bool(keys)
        and keys[0] == 0
    )
    pts = array("q", stamps) if seekable else None  # type: ignore[arg-type]
    return _VideoIndex(len(stamps), height, width, pts, array("q", keys if seekable else (0,)))


# --------------------------------------------------------------------------------------------------
# frame folders
# --------------------------------------------------------------------------------------------------


def _folder_count(folder: Path, pattern: re.Pattern[str]) -> int:
    st = folder.stat()
    key = (str(folder.resolve()), st.st_mtime_ns, pattern.pattern)
    cached = _FOLDER_CACHE.get(key)
    if cached is not None:
        return cached
    numbers = sorted(int(m.group(1)) for name in os.listdir(folder) if (m := pattern.match(name)))
    if numbers and numbers != list(range(1, len(numbers) + 1)):
        missing = sorted(set(range(1, numbers[-1] + 1)) - set(numbers))
        raise VideoDecodeError(
            f"{folder}: frame files are not numbered 1..{len(numbers)} without gaps "
            f"(missing numbers: {missing[:10]}{' …' if len(missing) > 10 else ''}); re-extract the frames"
        )
    _FOLDER_CACHE.put(key, len(numbers))
    return len(numbers)


def _image_suffix(folder: Path, prefix: str) -> str:
    for suffix in (".jpg", ".png", ".jpeg"):
        if (folder / f"{prefix}00001{suffix}").exists():
            return suffix
    return ".jpg"


def _imread(file: Path, flags: int) -> np.ndarray:
    image = cv2.imread(str(file), flags)
    if image is None:
        if not file.exists():
            raise VideoDecodeError(f"frame file missing: {file}; re-extract the frames of this video")
        raise VideoDecodeError(f"cannot decode image {file}; the file is corrupt, re-extract the frames")
    return image


def _check_indices(path: Path, indices: Sequence[int], num_frames: int) -> list[int]:
    idx = [int(i) for i in indices]
    for i in idx:
        if i < 0:
            raise ValueError(f"frame indices are 0-based and non-negative; got {i} for {path}")
        if i >= num_frames:
            raise VideoDecodeError(
                f"frame index {i} out of range: {path} has {num_frames} decodable frames "
                "(a frame count in the list file may be wrong; run `offnet data check`)"
            )
    return idx


def _read_folder(folder: Path, indices: Sequence[int]) -> np.ndarray:
    n = _folder_count(folder, _IMG_RE)
    if n == 0:
        raise VideoDecodeError(f"no img_00001.jpg … frames in folder {folder}; extract the frames first")
    idx = _check_indices(folder, indices, n)
    suffix = _image_suffix(folder, "img_")
    cache: dict[int, np.ndarray] = {}
    for i in idx:
        if i not in cache:
            bgr = _imread(folder / f"img_{i + 1:05d}{suffix}", cv2.IMREAD_COLOR)
            cache[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if not idx:
        return np.empty((0, 0, 0, 3), dtype=np.uint8)
    return np.stack([cache[i] for i in idx])


# --------------------------------------------------------------------------------------------------
# video files
# --------------------------------------------------------------------------------------------------


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def _decode_sequential(path: Path, wanted: set[int], out: dict[int, np.ndarray]) -> None:
    last = max(wanted)
    container = _open(path)
    try:
        for i, frame in enumerate(container.decode(container.streams.video[0])):
            if i in wanted and i not in out:
                out[i] = _to_rgb(frame)
            if i >= last:
                break
    except av.error.FFmpegError as exc:
        raise VideoDecodeError(f"decoding failed ({exc}): {_hint(path)}") from exc
    finally:
        container.close()


def _decode_seeking(path: Path, index: _VideoIndex, wanted: list[int], out: dict[int, np.ndarray]) -> bool:
    """Fill ``out`` for the sorted frame indices ``wanted``; ``False`` if the timestamps misbehave."""
    assert index.pts is not None
    position = {ts: i for i, ts in enumerate(index.pts)}
    wanted_set = set(wanted)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        frames: Iterator[av.VideoFrame] | None = None
        next_pos = 0  # index of the next frame the open decoder will produce
        for target in wanted:
            if target in out:
                continue
            key = index.keyframe_at_or_before(target)
            if frames is None or key > next_pos:
                # Seeking beats decoding every frame between here and the keyframe.
                if key > 0 or frames is not None:
                    container.seek(index.pts[key], stream=stream, backward=True, any_frame=False)
                frames = container.decode(stream)
            found = False
            for frame in frames:
                i = position.get(frame.pts) if frame.pts is not None else None
                if i is None:
                    return False
                next_pos = i + 1
                if i in wanted_set and i not in out:
                    out[i] = _to_rgb(frame)
                if i >= target:
                    found = True
                    break
            if not found or target not in out:
                return False
    except av.error.FFmpegError as exc:
        raise VideoDecodeError(f"decoding failed ({exc}): {_hint(path)}") from exc
    finally:
        container.close()
    return True


def _read_video(path: Path, indices: Sequence[int]) -> np.ndarray:
    index = _video_index(path)
    idx = _check_indices(path, indices, index.num_frames)
    if not idx:
        return np.empty((0, index.height, index.width, 3), dtype=np.uint8)
    out: dict[int, np.ndarray] = {}
    wanted = sorted(set(idx))
    if index.pts is None or not _decode_seeking(path, index, wanted, out):
        if index.pts is not None:
            log.debug("%s: timestamps unusable for seeking; decoding from the start", path)
        out.clear()
        _decode_sequential(path, set(wanted), out)
    missing = [i for i in wanted if i not in out]
    if missing:
        raise VideoDecodeError(f"frames {missing[:5]} could not be decoded: {_hint(path)}")
    return np.stack([out[i] for i in idx])


# --------------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------------


def count_frames(path: str | Path) -> int:
    """Number of decodable frames of a video file, or of RGB frames in a frame folder.

    A video's count is exact (the container's own frame count may be 0 or wrong, so it is verified
    and, if needed, replaced by a full decode) and cached per ``(path, size, mtime)``. A frame folder's
    count is the number of ``img_*.jpg`` files, or of ``flow_x_*.jpg`` files when it has no ``img`` files.

    Raises ``FileNotFoundError`` for a missing path and :class:`VideoDecodeError` for an empty, truncated
    or non-video file or an empty folder; both messages name the path.
    """
    path = Path(path)
    if path.is_dir():
        n = _folder_count(path, _IMG_RE)
        if n == 0:
            n = _folder_count(path, _FLOW_RE)
        if n == 0:
            raise VideoDecodeError(
                f"folder {path} holds no img_00001.jpg or flow_x_00001.jpg frames; extract frames first"
            )
        return n
    return _video_index(path).num_frames


def count_flow_frames(folder: str | Path) -> int:
    """Number of ``flow_x_*.jpg`` files in a frame folder (usually ``count_frames - 1``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"flow folder not found: {folder}; optical flow is read from frame folders only "
            "(extract flow first with `offnet extract-flow`)"
        )
    return _folder_count(folder, _FLOW_RE)


def read_frames(path: str | Path, indices: Sequence[int]) -> np.ndarray:
    """Read RGB frames by 0-based index: ``(N, H, W, 3)`` uint8, in the order of ``indices``.

    ``indices`` may repeat and come in any order; each distinct frame is decoded once. Video files are
    read with PyAV, decoding only from the keyframe before each wanted stretch; frame folders with
    OpenCV (BGR converted to RGB). A frame index past the end raises :class:`VideoDecodeError`.
    """
    path = Path(path)
    if path.is_dir():
        return _read_folder(path, indices)
    return _read_video(path, indices)


def read_flow_frames(folder: str | Path, indices: Sequence[int]) -> np.ndarray:
    """Read flow images by 0-based index: ``(N, H, W, 2)`` uint8, channel 0 = x, channel 1 = y.

    Index ``i`` reads ``flow_x_{i+1:05d}.jpg`` and ``flow_y_{i+1:05d}.jpg`` (quantised flow, 128 = zero).
    """
    folder = Path(folder)
    n = count_flow_frames(folder)
    if n == 0:
        raise VideoDecodeError(
            f"no flow_x_00001.jpg … files in {folder}; extract flow first with `offnet extract-flow`"
        )
    idx = _check_indices(folder, indices, n)
    suffix = _image_suffix(folder, "flow_x_")
    cache: dict[int, np.ndarray] = {}
    for i in idx:
        if i not in cache:
            x = _imread(folder / f"flow_x_{i + 1:05d}{suffix}", cv2.IMREAD_GRAYSCALE)
            y = _imread(folder / f"flow_y_{i + 1:05d}{suffix}", cv2.IMREAD_GRAYSCALE)
            if x.shape != y.shape:
                raise VideoDecodeError(
                    f"{folder}: flow_x/flow_y images {i + 1} differ in size {x.shape} vs {y.shape}; re-extract the flow"
                )
            cache[i] = np.stack([x, y], axis=-1)
    if not idx:
        return np.empty((0, 0, 0, 2), dtype=np.uint8)
    return np.stack([cache[i] for i in idx])


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Yield every frame in order as ``(H, W, 3)`` uint8 RGB (video file or frame folder)."""
    path = Path(path)
    if path.is_dir():
        n = count_frames(path)
        suffix = _image_suffix(path, "img_")
        for i in range(n):
            yield cv2.cvtColor(_imread(path / f"img_{i + 1:05d}{suffix}", cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return
    container = _open(path)
    try:
        yielded = 0
        try:
            for frame in container.decode(container.streams.video[0]):
                yielded += 1
                yield _to_rgb(frame)
        except av.error.FFmpegError as exc:
            raise VideoDecodeError(f"decoding failed after {yielded} frames ({exc}): {_hint(path)}") from exc
        if yielded == 0:
            raise VideoDecodeError(f"video contains no decodable frames: {_hint(path)}")
    finally:
        container.close()


def declared_frames(path: str | Path) -> int:
    """The frame count a video container declares in its header (0 when it declares none)."""
    try:
        with av.open(str(path)) as container:
            return int(container.streams.video[0].frames or 0)
    except (av.error.FFmpegError, IndexError, ValueError, OSError):
        return 0


def truncation(declared: int, decoded: int) -> str | None:
    """Why a video whose header declares ``declared`` frames but decodes ``decoded`` is truncated, or None.

    A few frames of difference are tolerated (containers round), more than 5 % (at least 2) are not.
    """
    if declared and declared - decoded > max(1, declared // 20):
        return f"container declares {declared} frames but only {decoded} decode (truncated?); re-download it"
    return None


def frame_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of a video's frames (from its index) or a frame folder's first image."""
    path = Path(path)
    if path.is_dir():
        for prefix in ("img_", "flow_x_"):
            files = sorted(path.glob(f"{prefix}00001.*"))
            if files:
                image = _imread(files[0], cv2.IMREAD_UNCHANGED)
                return int(image.shape[0]), int(image.shape[1])
        raise VideoDecodeError(f"{path}: no img_00001 or flow_x_00001 frame")
    index = _video_index(path)
    return int(index.height), int(index.width)
