"""Optical flow extraction: OpenCV dual TV-L1 (or Farneback) into 8-bit JPEG frame folders.

For every video under a root, ``OUT/<relative video path without extension>/`` receives

* ``flow_x_00001.jpg`` … ``flow_x_{N-1}.jpg`` and ``flow_y_…``: the flow from frame k to frame k+1 on
  grayscale frames, clipped to ±``bound`` pixels and quantised ``q = round(255·(v + bound) / (2·bound))``
  (128 ≈ no motion; the authors' dense_flow convention, ``-b 20``);
* with ``rgb=True``, ``img_00001.jpg`` … ``img_{N}.jpg``: the N (resized) RGB frames.

So a finished folder holds **N RGB frames and N − 1 flow frames**, the rule
:func:`offnet.data.check.count_frame_folder` verifies. Flow sign follows OpenCV: a texture moving 2 px to
the right gives ``flow_x ≈ +2``.

Extraction is resumable and safe to run concurrently. A video is written into a hidden temporary folder
beside its final one, named per process (``.<name>.<pid>-<random>.offnet-tmp``), and renamed when complete,
so a final folder always holds a finished video and is skipped on the next run. While a process extracts a
video it holds a lock on ``.<name>.offnet-lock``; another process skips that video (the holder finishes it),
and only temporary folders whose lock nobody holds (left by a killed run) are removed. ``OUT/.offnet-flow.json``
records the extraction settings (algorithm, size, bound, RGB): a run with other settings into the same
``OUT`` is refused, so that one output never mixes frames of two sizes. A truncated video (its container
declares more frames than decode) is a bad video like any other: per ``on_bad_video`` the run stops
(``fail``) or reports it and goes on (``skip``).
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

from offnet.data.decode import VideoDecodeError
from offnet.data.listfile import VIDEO_EXTENSIONS
from offnet.interrupts import stop_process_pool

__all__ = [
    "ALGORITHMS",
    "FRAMES_ONLY",
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
    "VideoBusy",
]

log = logging.getLogger(__name__)

ALGORITHMS: tuple[str, ...] = ("tvl1", "farneback")
#: ``algorithm`` value that writes the RGB frames only (decode once, then train from JPEG frame folders)
FRAMES_ONLY = "none"
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
    busy: int = 0  # videos being extracted by another live process, left to it
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
    if algorithm == FRAMES_ONLY:
        return None
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


LOCK_SUFFIX = ".offnet-lock"
SETTINGS_FILE = ".offnet-flow.json"


class VideoBusy(RuntimeError):
    """Another live process is extracting this video."""


def _tmp_dir(final: Path) -> Path:
    """A temporary folder beside ``final``, unique to this process and call."""
    return final.parent / f".{final.name}.{os.getpid()}-{os.urandom(4).hex()}{TMP_SUFFIX}"


def _lock_path(final: Path) -> Path:
    return final.parent / f".{final.name}{LOCK_SUFFIX}"


class _VideoLock:
    """An exclusive, non-blocking ``flock`` on a video's lock file; the OS drops it if the process dies."""

    def __init__(self, final: Path) -> None:
        self.path = _lock_path(final)
        self.fd: int | None = None

    def acquire(self) -> bool:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


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
    video, out_dir = Path(video), Path(out_dir)
    engine = _make_engine(algorithm)
    lock = _VideoLock(out_dir)
    if not lock.acquire():
        raise VideoBusy(f"{video}: being extracted by another process")
    try:
        if out_dir.is_dir():  # finished by another process since this run listed it
            return -1
        return _extract_locked(video, out_dir, engine=engine, algorithm=algorithm, rgb=rgb, size=size, bound=bound)
    finally:
        lock.release()


def _extract_locked(video: Path, out_dir: Path, *, engine: object, algorithm: str, rgb: bool, size: FrameSize,
                    bound: float) -> int:
    from offnet.data.decode import declared_frames, iter_frames, truncation

    tmp = _tmp_dir(out_dir)
    tmp.mkdir(parents=True)
    try:
        prev_gray = None
        n = 0
        for frame in iter_frames(video):
            frame = resize_frame(frame, size)  # (H, W, 3) RGB
            n += 1
            if rgb:
                _write_jpeg(tmp / f"img_{n:05d}.jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            if algorithm == FRAMES_ONLY:
                continue
            gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            if prev_gray is not None:
                q = quantize_flow(compute_flow(prev_gray, gray, algorithm=algorithm, engine=engine), bound)
                _write_jpeg(tmp / f"flow_x_{n - 1:05d}.jpg", q[..., 0])
                _write_jpeg(tmp / f"flow_y_{n - 1:05d}.jpg", q[..., 1])
            prev_gray = gray
        if n < (1 if algorithm == FRAMES_ONLY else 2):
            raise ValueError(f"{video}: {n} decodable frame(s); optical flow needs at least 2")
        if video.is_file():
            why = truncation(declared_frames(video), n)
            if why:
                raise VideoDecodeError(f"{video}: {why}")
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return n


def _worker(video: Path, out_dir: Path, algorithm: str, rgb: bool, size: FrameSize, bound: float) -> int:
    cv2.setNumThreads(1)  # parallelism comes from processes; one OpenCV thread each avoids oversubscription
    return extract_video(video, out_dir, algorithm=algorithm, rgb=rgb, size=size, bound=bound)


def _clean_leftovers(out: Path) -> int:
    """Remove temporary folders whose video nobody is extracting (left by a killed run)."""
    removed = 0
    for dirpath, dirnames, _ in os.walk(out):
        for d in list(dirnames):
            if not (d.startswith(".") and d.endswith(TMP_SUFFIX)):
                continue
            dirnames.remove(d)
            stem = d[1:-len(TMP_SUFFIX)]
            name = stem.rsplit(".", 1)[0] if "." in stem else stem  # drop the ".<pid>-<random>" tag
            lock = _VideoLock(Path(dirpath) / name)
            if not lock.acquire():
                continue  # a live process is writing it
            try:
                shutil.rmtree(Path(dirpath) / d, ignore_errors=True)
                removed += 1
            finally:
                lock.release()
    return removed


def _check_settings(out: Path, settings: dict) -> None:
    """Record the extraction settings in ``OUT/.offnet-flow.json``, or refuse others than those recorded."""
    import json
    import tempfile

    path = out / SETTINGS_FILE
    if not path.exists():
        # created complete and only if absent (a hard link of a finished file): of two runs starting at
        # once with different settings, exactly one records its own and the other is refused below
        fd, tmp = tempfile.mkstemp(prefix=f"{SETTINGS_FILE}.", dir=out)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(settings, sort_keys=True) + "\n")
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    try:
        before = json.loads(path.read_text())
    except ValueError:
        before = None
    if before != settings:
        raise ValueError(
            f"{out} holds frames extracted with other settings ({before}) than this run ({settings}); "
            "mixing them would give folders of different sizes or flow scales. Use another --out, or the "
            "same --size/--algorithm/--bound/--rgb"
        )


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
    on_bad_video: str = "skip",
) -> ExtractSummary:
    """Extract every video under ``root`` (or the given ``videos``, which must lie under it) into ``out``.

    Finished videos (their final folder exists) are skipped, and so are videos another process is
    extracting; unclaimed temporary folders are removed first. ``workers > 1`` runs videos in that many
    processes. A video that fails (unreadable, truncated, too short) is collected in the summary; with
    ``on_bad_video="fail"`` no new video starts after the first failure. A root without videos is an error.
    """
    if on_bad_video not in ("fail", "skip"):
        raise ValueError(f"on_bad_video must be 'fail' or 'skip', got {on_bad_video!r}")
    if algorithm not in (*ALGORITHMS, FRAMES_ONLY):
        raise ValueError(f"unknown flow algorithm {algorithm!r}; choose one of {list(ALGORITHMS)} "
                         f"(or {FRAMES_ONLY!r} for RGB frames only)")
    if algorithm == FRAMES_ONLY and not rgb:
        raise ValueError(f"algorithm {FRAMES_ONLY!r} writes only the RGB frames: it needs rgb=True")
    if bound <= 0:
        raise ValueError(f"bound must be positive (pixels), got {bound}")
    root, out = Path(os.path.abspath(root)), Path(os.path.abspath(out))
    if not root.is_dir():
        raise FileNotFoundError(f"video root not found: {root}; pass the folder holding the class folders")
    if out == root or root in out.parents:
        raise ValueError(f"--out {out} lies inside --root {root}; write frames outside the video folder")
    all_videos = [Path(os.path.abspath(v)) for v in videos] if videos is not None else find_videos(root)
    if not all_videos:
        raise ValueError(f"no videos under {root} (looked for {', '.join(sorted(VIDEO_EXTENSIONS))}); "
                         "pass the folder holding the class folders")
    from offnet.fileio import check_writable

    check_writable(out, is_dir=True)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, {"algorithm": algorithm, "size": list(size) if isinstance(size, tuple) else size,
                          "bound": float(bound), "rgb": bool(rgb)})
    start = time.perf_counter()
    summary = ExtractSummary(cleaned=_clean_leftovers(out))
    if summary.cleaned:
        log.info("removed %d unfinished folder(s) of an earlier run", summary.cleaned)
    todo: list[tuple[Path, Path]] = []
    for v in all_videos:
        final = out / v.relative_to(root).with_suffix("")
        if final.is_dir():
            summary.skipped += 1
        else:
            todo.append((v, final))
    log.info("%d videos: %d to extract, %d already done", len(all_videos), len(todo), summary.skipped)

    from offnet.progress import progress_bar

    bar = progress_bar(total=len(todo), desc=f"extract-flow ({algorithm})", unit="video", disable=not progress)

    def finish(video: Path, result: int | None, error: BaseException | None) -> None:
        if isinstance(error, VideoBusy):
            summary.busy += 1
            log.info("%s is being extracted by another process; left to it", video)
        elif error is None and result == -1:
            summary.skipped += 1  # finished by another process meanwhile
        elif error is None:
            summary.done += 1
            summary.frames += int(result or 0)
        else:
            summary.failed.append(FlowFailure(video=video, error=f"{type(error).__name__}: {error}"))
            log.error("failed: %s: %s", video, error)
        bar.update()

    def stop() -> bool:
        return on_bad_video == "fail" and bool(summary.failed)

    args = (algorithm, rgb, size, bound)
    if workers <= 1:
        for video, final in todo:
            if stop():
                break
            try:
                finish(video, _worker(video, final, *args), None)
            except Exception as exc:
                finish(video, None, exc)
    else:
        # spawn, not fork: the parent may hold threads (tqdm, torch) that fork would copy mid-state.
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        try:
            futures: dict[Future[int], Path] = {pool.submit(_worker, v, f, *args): v for v, f in todo}
            for fut in as_completed(futures):
                if fut.cancelled():
                    continue
                exc = fut.exception()
                finish(futures[fut], None if exc else fut.result(), exc)
                if stop():
                    for other in futures:
                        other.cancel()  # videos not started yet; running ones finish
        except BaseException:
            stop_process_pool(pool)  # Ctrl-C: no more videos, and the ones being extracted stop now
            raise
        pool.shutdown()
    bar.close()
    summary.seconds = time.perf_counter() - start
    return summary
