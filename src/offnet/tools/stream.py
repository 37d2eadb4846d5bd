"""Rolling prediction on a live source (camera, stream URL, file), and the video with the label drawn on it.

Frames arrive one at a time. Every ``interval`` frames a new segment is cut (the modality's
``frames_per_segment`` most recent frames: 1 for RGB, 5 for Raw OFF, 6 for RGB-diff), transformed as at test
time (resize, centre crop, normalise) and pushed into a :class:`~offnet.models.live.LiveScorer`, which keeps
the last ``segments`` segments: one backbone pass and one OFF pair per new segment. The interval follows
from ``window`` seconds: ``interval = round(window · fps / segments)`` frames, so the sliding window spans
about ``window`` seconds, like a test clip of that length; without ``window``, a run trained with a fixed
interval (``data.interval``) keeps it, others take a 2-second window.

Sources (:func:`open_source`): a camera index (``0``) through OpenCV; a URL (``rtsp://``, ``http://`` …) or a
file through PyAV.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from offnet import interrupts

if TYPE_CHECKING:
    from offnet.tools.predict import Predictor

__all__ = ["FrameSource", "open_source", "StreamEvent", "stream_predictions", "draw_label", "OverlayWriter"]

log = logging.getLogger(__name__)


class FrameSource:
    """Frames of a source as ``(H, W, 3)`` uint8 RGB, with the source's frame rate (``fps``)."""

    def __init__(self, name: str, frames: Iterator[np.ndarray], fps: float | None, close: Any = None) -> None:
        self.name = name
        self.fps = fps
        self._frames = frames
        self._close = close

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._frames

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _camera(index: int) -> FrameSource:
    import cv2

    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        capture.release()
        raise ValueError(f"cannot open camera {index}: no such device, or it is busy; list cameras with "
                         "`v4l2-ctl --list-devices` (Linux) or pass a file or URL")
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0) or None

    def frames() -> Iterator[np.ndarray]:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    return FrameSource(f"camera {index}", frames(), fps, capture.release)


def _pyav(source: str) -> FrameSource:
    import av

    is_url = "://" in source
    if not is_url and not Path(source).expanduser().exists():
        raise FileNotFoundError(f"video not found: {source}")
    try:
        container = av.open(source if is_url else str(Path(source).expanduser()), mode="r",
                            options={"rtsp_transport": "tcp"} if source.startswith("rtsp") else None)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"cannot open {source} as a video ({exc}); check the path or URL") from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"{source} has no video stream")
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else None

    def frames() -> Iterator[np.ndarray]:
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as exc:
            log.warning("%s: decoding stopped (%s)", source, exc)

    return FrameSource(source, frames(), fps, container.close)


def open_source(source: str) -> FrameSource:
    """A camera index (``"0"``), a URL or a file; errors name the source and what to try."""
    if source.isdigit():
        return _camera(int(source))
    return _pyav(source)


@dataclass(frozen=True)
class StreamEvent:
    """The rolling prediction after a new segment: ``frame`` index (0-based) and ``time`` (s) of the segment's
    last frame, the window's segment end frames, and the fused probabilities ``(K,)`` (``None`` until the
    window can be scored)."""

    frame: int
    time: float
    segment_frames: tuple[int, ...]
    probabilities: np.ndarray | None
    class_names: tuple[str, ...]

    def top(self, k: int = 1) -> list[tuple[str, float]]:
        if self.probabilities is None:
            return []
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [(self.class_names[i], float(self.probabilities[i])) for i in order]


def segment_transform(predictor: Predictor) -> Any:
    """The test transform of ``predictor``'s run for one segment: ``(n, H, W, 3)`` uint8 → ``(n, 3, s, s)``."""
    from offnet.data.transforms import build_transform

    model = predictor.model
    if model.modality.kind == "flow":
        raise ValueError("stream reads RGB frames: a flow model needs optical flow extracted first (offnet "
                         "extract-flow); use an rgb, rawoff or rgbdiff model")
    mean, std = model.input_spec.mean_std("rgb")
    return build_transform(train=False, size=predictor.size, modality=model.modality.name, mean=mean, std=std,
                           bgr=model.input_spec.bgr, scale255=model.input_spec.scale255, flip=False, crops=1,
                           resize_to=predictor.data_config.get("resize_to"))


def segment_interval(predictor: Predictor, *, fps: float, window: float | None) -> int:
    """Frames between segments: ``window`` seconds over the segments, else the run's fixed ``data.interval``,
    else a 2-second window."""
    if fps <= 0 or (window is not None and window <= 0):
        raise ValueError(f"fps and --window must be positive, got {fps} and {window}")
    fixed = predictor.data_config.get("interval")
    if window is None and fixed:
        return int(fixed)
    return max(1, round((window or 2.0) * fps / predictor.segments))


def stream_predictions(predictor: Predictor, frames: Iterator[np.ndarray], *, fps: float,
                       window: float | None = None, on_frame: Any = None,
                       max_frames: int | None = None) -> Iterator[StreamEvent]:
    """One :class:`StreamEvent` per new segment of ``frames`` (module docstring).

    ``on_frame(index, frame, event)`` is called for every frame with the latest event (``None`` before the
    first segment), e.g. to draw it. ``max_frames`` stops after that many frames.
    """
    from offnet.engine.evaluate import _resolve_device
    from offnet.models.live import LiveScorer

    model = predictor.model
    segments = predictor.segments
    per_segment = model.modality.frames_per_segment
    interval = segment_interval(predictor, fps=fps, window=window)
    transform = segment_transform(predictor)
    device = _resolve_device(predictor.device)
    model = predictor.inference_model(device)
    scorer = LiveScorer(model, window=segments)
    recent: deque[np.ndarray] = deque(maxlen=per_segment)
    ends: deque[int] = deque(maxlen=segments)
    event: StreamEvent | None = None
    names = tuple(str(c) for c in predictor.class_names)
    for index, frame in enumerate(frames):
        if max_frames is not None and index >= max_frames:
            break
        interrupts.check()
        recent.append(frame)
        # a segment ends every `interval` frames, once enough frames have arrived for its first one
        if (index + 1) % interval == 0 and len(recent) == per_segment:
            clip = np.stack(list(recent))  # (n, H, W, 3)
            x = transform(clip, None)  # (n, 3, s, s)
            segment = x.reshape(1, per_segment * x.shape[1], *x.shape[-2:]).to(device)  # (1, C, s, s)
            scores = scorer.push(segment)
            ends.append(index)
            probs = None
            if scores is not None:
                fused = scores[model.backbone_level].double()
                if model.final_level != model.backbone_level:
                    fused = fused + scores[model.final_level]  # the paper's RGB + OFF(RGB)
                probs = torch.softmax(fused, dim=1)[0].float().cpu().numpy()
            event = StreamEvent(frame=index, time=index / fps, segment_frames=tuple(ends), probabilities=probs,
                                class_names=names)
            yield event
        if on_frame is not None:
            on_frame(index, frame, event)


def draw_label(frame: np.ndarray, event: StreamEvent | None) -> np.ndarray:
    """``frame`` (H, W, 3 RGB) with a dark band at the top holding the current top class and its probability."""
    import cv2

    out = frame.copy()
    h, w = out.shape[:2]
    band = max(16, h // 12)
    out[:band] = (out[:band].astype(np.uint16) * 3 // 10).astype(np.uint8)  # darken for contrast
    top = event.top(1) if event is not None else []
    text = f"{top[0][0]}  {top[0][1]:.0%}" if top else "warming up ..."
    scale = band / 28
    cv2.putText(out, text, (max(4, w // 80), int(band * 0.75)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                max(1, round(scale * 1.5)), cv2.LINE_AA)
    if top:
        cv2.rectangle(out, (0, band - 3), (int(w * top[0][1]), band - 1), (80, 220, 80), -1)  # probability bar
    return out


class OverlayWriter:
    """Encodes frames into ``path`` (.mp4/.mkv/.avi; H.264 when available, else MPEG-4) atomically: the file
    appears complete when the writer closes, and not at all after an error."""

    _FORMATS = {".mp4": "mp4", ".mkv": "matroska", ".avi": "avi", ".mov": "mov"}

    def __init__(self, path: str | Path, *, fps: float) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in self._FORMATS:
            raise ValueError(f"--overlay {path}: write .mp4, .mkv, .avi or .mov")
        self.fps = fps
        self.frames = 0
        self._context: Any = None
        self._container: Any = None
        self._stream: Any = None

    def __enter__(self) -> OverlayWriter:
        from offnet.fileio import atomic_writer

        self._context = atomic_writer(self.path, "wb")
        handle = self._context.__enter__()
        import av

        self._container = av.open(handle, mode="w", format=self._FORMATS[self.path.suffix.lower()])
        return self

    def write(self, frame: np.ndarray) -> None:
        from fractions import Fraction

        import av

        h, w = (s - s % 2 for s in frame.shape[:2])  # yuv420p needs even sides
        if self._stream is None:
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
            self._stream = self._container.add_stream(codec, rate=Fraction(self.fps).limit_denominator(1001))
            self._stream.width, self._stream.height = w, h
            self._stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                self._stream.options = {"crf": "20", "preset": "veryfast"}
        image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:h, :w]), format="rgb24")
        for packet in self._stream.encode(image):
            self._container.mux(packet)
        self.frames += 1

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None and self._stream is None:
                raise ValueError("the source gave no frame: nothing to write to --overlay")
            if self._stream is not None and exc_type is None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
            self._container.close()
        except BaseException as error:
            self._context.__exit__(type(error), error, error.__traceback__)
            raise
        self._context.__exit__(exc_type, exc, tb)
