"""Data-pipeline throughput: clips/s of the training loader (decode + sample + transform).

:func:`bench_data` times one pass of :func:`offnet.data.clips.make_loader` over video files (per container:
``.avi``, ``.mp4``, ``.webm``) and over frame folders holding the same frames, for each requested worker count.
Without a ``root`` it generates a small UCF-101-like set first: the same 320x240 frames encoded as MPEG-4
``.avi`` (UCF-101, HMDB-51), H.264 ``.mp4`` (Kinetics) and VP9 ``.webm`` (Something-Something v2), when this
PyAV build has the encoder, and their JPEG frame folders.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import av
import cv2
import numpy as np

from offnet.data.clips import ClipDataset, make_loader
from offnet.data.decode import count_frames, iter_frames
from offnet.data.records import VideoRecord
from offnet.data.sampling import make_sampler
from offnet.data.transforms import build_transform

__all__ = ["DataBenchResult", "CONTAINERS", "available_encoder", "generate_bench_data", "find_bench_data", "bench_data",
           "format_results"]

log = logging.getLogger(__name__)

_VIDEO_SUFFIXES = {".avi", ".mp4", ".mkv", ".webm", ".mov"}
#: container -> encoders to try in order, and their options (fast settings: the decoder is what is timed)
CONTAINERS: dict[str, tuple[tuple[str, dict[str, str]], ...]] = {
    ".avi": (("mpeg4", {}),),
    ".mp4": (("libx264", {"preset": "veryfast"}), ("mpeg4", {})),
    ".webm": (("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8"}), ("libvpx", {"deadline": "realtime"})),
}


@dataclass(frozen=True)
class DataBenchResult:
    """One timed loader pass."""

    source: str  # a video container ("avi", "mp4", "webm", …) or "frames"
    workers: int
    segments: int
    size: int
    clips: int
    seconds: float

    @property
    def clips_per_s(self) -> float:
        return self.clips / self.seconds if self.seconds > 0 else float("inf")


def _synthetic_frames(rng: np.random.Generator, num_frames: int, height: int, width: int) -> np.ndarray:
    """``(L, H, W, 3)`` uint8: a smooth random background with a few moving blobs (codec-realistic)."""
    small = rng.integers(0, 256, size=(height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8)
    background = cv2.resize(small, (width + 64, height), interpolation=cv2.INTER_CUBIC)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    for t in range(num_frames):
        frame = background[:, t % 64 : t % 64 + width].copy()
        for k in range(3):
            cy = (height // 4 * (k + 1) + 3 * t * (k + 1)) % height
            cx = (width // 4 * (k + 1) + 5 * t) % width
            frame[(yy - cy) ** 2 + (xx - cx) ** 2 < 15**2] = (255 * (k % 2), 128, 255 * ((k + 1) % 2))
        frames[t] = frame
    return frames


def available_encoder(suffix: str) -> tuple[str, dict[str, str]] | None:
    """``(encoder, options)`` this PyAV build has for the container ``suffix`` (``.webm`` …), or None."""
    if suffix not in CONTAINERS:
        raise ValueError(f"unknown container {suffix!r}; choose from {', '.join(CONTAINERS)}")
    for name, options in CONTAINERS[suffix]:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001 - PyAV raises different errors for a codec it lacks
            continue
        return name, options
    return None


def _encode(path: Path, frames: np.ndarray, codec: str, options: dict[str, str]) -> None:
    """Write ``frames (L, H, W, 3)`` uint8 RGB to ``path`` at 25 fps, a keyframe every 12 frames."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.bit_rate = 1_500_000
        stream.codec_context.gop_size = 12
        stream.options = dict(options)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def generate_bench_data(
    root: Path, *, num_videos: int = 4, num_frames: int = 60, height: int = 240, width: int = 320, seed: int = 0,
    containers: Sequence[str] = (".avi",),
) -> tuple[list[VideoRecord], list[VideoRecord]]:
    """Write ``num_videos`` videos in each of ``containers`` (the same frames) and a JPEG frame folder of each.

    A container whose encoders this PyAV build lacks (VP9/VP8 for ``.webm``) is skipped with a warning.
    Returns ``(video_records, folder_records)`` with labels ``0 … num_videos-1``.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    encoders = {suffix: available_encoder(suffix) for suffix in containers}
    for suffix, encoder in encoders.items():
        if encoder is None:
            log.warning("this PyAV build has no encoder for %s (tried %s): no %s videos to time", suffix,
                        ", ".join(name for name, _ in CONTAINERS[suffix]), suffix)
    videos, folders = [], []
    for v in range(num_videos):
        frames = _synthetic_frames(rng, num_frames, height, width)
        written = []
        for suffix, encoder in encoders.items():
            if encoder is not None:
                path = root / f"v_Bench_g01_c{v + 1:02d}{suffix}"
                _encode(path, frames, *encoder)
                videos.append(VideoRecord(path=path, label=v, num_frames=num_frames))
                written.append(path)
        if not written:
            continue
        folder = root / "frames" / written[0].stem
        folder.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(iter_frames(written[0])):
            cv2.imwrite(str(folder / f"img_{i + 1:05d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        folders.append(VideoRecord(path=folder, label=v, num_frames=num_frames))
    return videos, folders


def find_bench_data(root: Path) -> tuple[list[VideoRecord], list[VideoRecord]]:
    """Video files and frame folders (folders with ``img_00001.jpg``) found anywhere under ``root``."""
    if not root.is_dir():
        raise FileNotFoundError(f"--root {root} is not a folder; give a folder of videos and/or frame folders")
    videos = [VideoRecord(path=p, label=0) for p in sorted(root.rglob("*")) if p.suffix.lower() in _VIDEO_SUFFIXES]
    folders = [VideoRecord(path=p.parent, label=0) for p in sorted(root.rglob("img_00001.jpg"))]
    if not videos and not folders:
        raise FileNotFoundError(
            f"no video files ({', '.join(sorted(_VIDEO_SUFFIXES))}) or frame folders (img_00001.jpg …) under {root}"
        )
    return videos, folders


def _time_loader(
    records: Sequence[VideoRecord], *, workers: int, segments: int, size: int, clips: int, batch_size: int, seed: int
) -> tuple[int, float]:
    repeated = [records[i % len(records)] for i in range(clips)]
    sampler = make_sampler("off", num_segments=segments, new_length=1, test=False, test_segments=25)
    transform = build_transform(
        train=True,
        size=size,
        modality="rgb",
        mean=(104.0, 117.0, 123.0),
        std=(1.0,),
        bgr=True,
        scale255=True,
        flip=True,
    )
    dataset = ClipDataset(repeated, modality="rgb", sampler=sampler, transform=transform, seed=seed)
    loader = make_loader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, seed=seed)
    count = 0
    start = time.perf_counter()
    for batch, _ in loader:
        count += batch.shape[0]
    return count, time.perf_counter() - start


def bench_data(
    *,
    root: Path | None = None,
    workers: Sequence[int] = (0, 2),
    segments: int = 3,
    size: int = 112,
    clips: int = 64,
    batch_size: int = 8,
    num_videos: int = 4,
    seed: int = 0,
    containers: Sequence[str] = tuple(CONTAINERS),
) -> list[DataBenchResult]:
    """Time the RGB training loader on video files (per container) and on frame folders, per worker count.

    The clock covers one full pass of ``clips`` clips (worker start-up included), using the OFF sampler
    with ``segments`` segments and the multi-scale crop to ``size``. The video index (frame count) is
    counted before timing, as a training run counts once. ``containers`` are generated without a ``root``
    (``.avi``, ``.mp4``, ``.webm``: those this PyAV build can encode); under a ``root`` every container found is
    timed separately.
    """
    with tempfile.TemporaryDirectory(prefix="offnet-bench-") as tmp:
        if root is None:
            videos, folders = generate_bench_data(Path(tmp), num_videos=num_videos, seed=seed, containers=containers)
        else:
            videos, folders = find_bench_data(Path(root))
        by_container: dict[str, list[VideoRecord]] = {}
        for record in videos:
            by_container.setdefault(record.path.suffix.lower().lstrip("."), []).append(record)
        results = []
        for source, records in (*by_container.items(), ("frames", folders)):
            if not records:
                log.info("no %s inputs; skipping", source)
                continue
            records = [r if r.num_frames is not None else replace(r, num_frames=count_frames(r.path)) for r in records]
            for w in workers:
                n, seconds = _time_loader(
                    records, workers=w, segments=segments, size=size, clips=clips, batch_size=batch_size, seed=seed
                )
                results.append(DataBenchResult(source, w, segments, size, n, seconds))
                log.info("%s, %d workers: %d clips in %.2fs", source, w, n, seconds)
    return results


def format_results(results: Sequence[DataBenchResult]) -> str:
    """A plain-text table of the results."""
    header = f"{'source':<8} {'workers':>7} {'T':>3} {'size':>5} {'clips':>6} {'seconds':>8} {'clips/s':>8}"
    # source: the video container (decoded with PyAV) or "frames" (JPEG folders, OpenCV)
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.source:<8} {r.workers:>7} {r.segments:>3} {r.size:>5} {r.clips:>6} {r.seconds:>8.2f} "
            f"{r.clips_per_s:>8.1f}"
        )
    return "\n".join(lines)
