"""Optical flow extraction: OpenCV dual TV-L1 (or Farneback) into 8-bit JPEG frame folders.

For every video under a root, ``OUT/<relative video path without extension>/`` receives

* ``flow_x_00001.jpg`` … ``flow_x_{N-1}.jpg`` and ``flow_y_…``: the flow from frame k to frame k+1 on
  grayscale frames, clipped to ±``bound`` pixels and quantised ``q = round(255·(v + bound) / (2·bound))``
  (128 ≈ no motion; the authors' dense_flow convention, ``-b 20``);
* with ``rgb=True``, ``img_00001.jpg`` … ``img_{N}.jpg``: the N (resized) RGB frames.

So a finished folder holds **N RGB frames and N − 1 flow frames**, the rule
:func:`offnet.data.check.count_frame_folder` verifies. Flow sign follows OpenCV: a texture moving 2 px to
the right gives ``flow_x ≈ +2``.

Extraction is resumable. A video is written into a hidden temporary folder beside its final one
(``.<name>.offnet-tmp``) and renamed when complete, so a final folder always holds a finished video and is
skipped on the next run; temporary folders left by a killed run are removed at the start of the next.
A video that fails is reported with its path and error and the run goes on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from offnet.data.listfile import VIDEO_EXTENSIONS

__all__ = [
    "ALGORITHMS",
    "TMP_SUFFIX",
    "FrameSize",
    "FlowFailure",
    "ExtractSummary",
    "parse_size",
    "resize_frame",
    "compute_flow",
    "quantize_flow",
    "dequantize_flow",
    "find_videos",
    "extract_video",
    "extract_flow",
]

log = logging.getLogger(__name__)

ALGORITHMS: tuple[str, ...] = ("tvl1", "farneback")
TMP_SUFFIX = ".offnet-tmp"
_JPEG_QUALITY = 95

# None: keep the video's size; int: short side in pixels (aspect kept); (W, H): exact size.
FrameSize = int | tuple[int, int] | None


@dataclass(frozen=True)
class FlowFailure:
    """A video whose extraction failed, and the error."""

    video: Path
    error: str


@dataclass
class ExtractSummary:
    """Outcome of :func:`extract_flow`."""

    done: int = 0
    skipped: int = 0
    failed: list[FlowFailure] = field(default_factory=list)
    frames: int = 0  # RGB frames decoded by the videos extracted in this run
    seconds: float = 0.0
    cleaned: int = 0  # temporary folders of an earlier, killed run that were removed

    @property
    def ok(self) -> bool:
        return not self.failed


def parse_size(text: str | None) -> FrameSize:
    """``"256"`` → short side 256; ``"340x256"`` → (W=340, H=256); ``None``/``""`` → keep size."""
    if text is None or str(text).strip() == "":
        return None
    text = str(text).strip().lower()
    try:
        if "x" in text:
            w, h = (int(v) for v in text.split("x"))
            if w > 0 and h > 0:
                return (w, h)
        else:
            side = int(text)
            if side > 0:
                return side
    except ValueError:
        pass
    raise ValueError(f"--size {text!r} is not valid; give the short side ('256') or WIDTHxHEIGHT ('340x256')")


def resize_frame(frame: np.ndarray, size: FrameSize) -> np.ndarray:
    """Resize an ``(H, W, C)`` or ``(H, W)`` frame to ``size`` (bilinear); ``None`` returns it unchanged."""
    if size is None:
        return frame
    h, w = frame.shape[:2]
    if isinstance(size, tuple):
        out_w, out_h = size
    else:
        scale = size / min(h, w)
        out_w, out_h = max(1, round(w * scale)), max(1, round(h * scale))
    if (out_w, out_h) == (w, h):
        return frame
    return cv2.resize(frame, (out_w, out_h), interpolation=cv2.INTER_LINEAR)


def _make_engine(algorithm: str):
    if algorithm == "tvl1":
        return cv2.optflow.DualTVL1OpticalFlow_create()
    if algorithm == "farneback":
        return None
    raise ValueError(f"unknown flow algorithm {algorithm!r}; choose one of {list(ALGORITHMS)}")


def compute_flow(prev: np.ndarray, nxt: np.ndarray, *, algorithm: str = "tvl1", engine=None) -> np.ndarray:
    """Dense flow from ``prev`` to ``nxt`` (``(H, W)`` uint8 grayscale): ``(H, W, 2)`` float32, x then y.

    ``engine`` reuses an OpenCV TV-L1 object across calls (creating one per pair is wasteful).
    """
    if algorithm == "farneback":
        return cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    engine = engine if engine is not None else _make_engine(algorithm)
    return engine.calc(prev, nxt, None)


def quantize_flow(flow: np.ndarray, bound: float = 20.0) -> np.ndarray:
    """Clip to ±bound and map to 0..255: ``round(255·(v + bound) / (2·bound))``, uint8, same shape."""
    v = np.clip(flow, -bound, bound)
    return np.round(255.0 * (v + bound) / (2.0 * bound)).astype(np.uint8)


def dequantize_flow(q: np.ndarray, bound: float = 20.0) -> np.ndarray:
    """Inverse of :func:`quantize_flow` (up to the quantisation step ``2·bound/255``), float32."""
    return (q.astype(np.float32) * (2.0 * bound / 255.0) - bound).astype(np.float32)


def find_videos(root: str | Path) -> list[Path]:
    """Every video file under ``root`` (recursively, hidden folders skipped), sorted."""
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_EXTENSIONS:
                found.append(Path(dirpath) / name)
    return found


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    # cv2.imwrite cannot open non-ASCII paths on every platform; encoding in memory can.
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {path}")
    path.write_bytes(buf.tobytes())


def _tmp_dir(final: Path) -> Path:
    return final.parent / f".{final.name}{TMP_SUFFIX}"


def extract_video(
    video: str | Path,
    out_dir: str | Path,
    *,
    algorithm: str = "tvl1",
    rgb: bool = True,
    size: FrameSize = None,
    bound: float = 20.0,
) -> int:
    """Extract one video into ``out_dir`` (written to a temporary folder, renamed when complete).

    Returns the number of RGB frames N (N − 1 flow pairs were written). Raises
    :class:`~offnet.data.decode.VideoDecodeError` for an unreadable video and ``ValueError`` for a video with
    fewer than 2 frames.
    """
    from offnet.data.decode import iter_frames

    video, out_dir = Path(video), Path(out_dir)
    engine = _make_engine(algorithm)
    tmp = _tmp_dir(out_dir)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        prev_gray = None
        n = 0
        for frame in iter_frames(video):
            frame = resize_frame(frame, size)  # (H, W, 3) RGB
            n += 1
            if rgb:
                _write_jpeg(tmp / f"img_{n:05d}.jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            if prev_gray is not None:
                q = quantize_flow(compute_flow(prev_gray, gray, algorithm=algorithm, engine=engine), bound)
                _write_jpeg(tmp / f"flow_x_{n - 1:05d}.jpg", q[..., 0])
                _write_jpeg(tmp / f"flow_y_{n - 1:05d}.jpg", q[..., 1])
            prev_gray = gray
        if n < 2:
            raise ValueError(f"{video}: {n} decodable frame(s); optical flow needs at least 2")
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return n


def _worker(video: Path, out_dir: Path, algorithm: str, rgb: bool, size: FrameSize, bound: float) -> int:
    cv2.setNumThreads(1)  # parallelism comes from processes; one OpenCV thread each avoids oversubscription
    return extract_video(video, out_dir, algorithm=algorithm, rgb=rgb, size=size, bound=bound)


def _clean_leftovers(out: Path) -> int:
    removed = 0
    for dirpath, dirnames, _ in os.walk(out):
        for d in list(dirnames):
            if d.startswith(".") and d.endswith(TMP_SUFFIX):
                shutil.rmtree(Path(dirpath) / d, ignore_errors=True)
                dirnames.remove(d)
                removed += 1
    return removed


def extract_flow(
    root: str | Path,
    out: str | Path,
    *,
    algorithm: str = "tvl1",
    rgb: bool = True,
    size: FrameSize = None,
    bound: float = 20.0,
    workers: int = 1,
    videos: Sequence[str | Path] | None = None,
    progress: bool = False,
) -> ExtractSummary:
    """Extract every video under ``root`` (or the given ``videos``, which must lie under it) into ``out``.

    Finished videos (their final folder exists) are skipped; leftover temporary folders are removed first.
    ``workers > 1`` runs videos in that many processes. Failures are collected in the summary, not raised.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown flow algorithm {algorithm!r}; choose one of {list(ALGORITHMS)}")
    if bound <= 0:
        raise ValueError(f"bound must be positive (pixels), got {bound}")
    root, out = Path(os.path.abspath(root)), Path(os.path.abspath(out))
    if not root.is_dir():
        raise FileNotFoundError(f"video root not found: {root}; pass the folder holding the class folders")
    if out == root or root in out.parents:
        raise ValueError(f"--out {out} lies inside --root {root}; write frames outside the video folder")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summary = ExtractSummary(cleaned=_clean_leftovers(out))
    if summary.cleaned:
        log.info("removed %d unfinished folder(s) of an earlier run", summary.cleaned)
    all_videos = [Path(os.path.abspath(v)) for v in videos] if videos is not None else find_videos(root)
    todo: list[tuple[Path, Path]] = []
    for v in all_videos:
        final = out / v.relative_to(root).with_suffix("")
        if final.is_dir():
            summary.skipped += 1
        else:
            todo.append((v, final))
    log.info("%d videos: %d to extract, %d already done", len(all_videos), len(todo), summary.skipped)

    from tqdm import tqdm

    bar = tqdm(
        total=len(todo),
        desc=f"extract-flow ({algorithm})",
        unit="video",
        disable=not progress,
        dynamic_ncols=True,
    )

    def finish(video: Path, result: int | None, error: BaseException | None) -> None:
        if error is None:
            summary.done += 1
            summary.frames += int(result or 0)
        else:
            summary.failed.append(FlowFailure(video=video, error=f"{type(error).__name__}: {error}"))
            log.error("failed: %s: %s", video, error)
        bar.update()

    args = (algorithm, rgb, size, bound)
    if workers <= 1:
        for video, final in todo:
            try:
                finish(video, _worker(video, final, *args), None)
            except Exception as exc:
                finish(video, None, exc)
    else:
        # spawn, not fork: the parent may hold threads (tqdm, torch) that fork would copy mid-state.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures: dict[Future[int], Path] = {pool.submit(_worker, v, f, *args): v for v, f in todo}
            for fut in as_completed(futures):
                exc = fut.exception()
                finish(futures[fut], None if exc else fut.result(), exc)
    bar.close()
    summary.seconds = time.perf_counter() - start
    return summary
