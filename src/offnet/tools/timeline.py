"""Classify a long video over time: one score per window of ``window`` seconds, every ``stride`` seconds.

Each window is treated as a short video of its own: the run's test sampler picks ``segments`` segments inside
it (for OFF, at the interval ``⌊window frames / segments⌋``), the frames get the test transform, and the model's
fused score (backbone + final level) gives the class probabilities. Windows start at 0, stride, 2·stride …;
when the grid leaves a tail shorter than a stride at the end, one more window is aligned with the video's end,
so every frame is covered. A video shorter than one window is one window.

Results: :func:`save_timeline` writes CSV (``video,start,end,class_1,probability_1,…``), JSON Lines (one
window per line) or JSON (one document), and :func:`plot_timeline` a PNG strip of the top classes over time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from offnet import interrupts
from offnet.fileio import atomic_write_text, save_figure

if TYPE_CHECKING:
    from offnet.tools.predict import Predictor

__all__ = ["TimelineWindow", "Timeline", "window_starts", "video_fps", "video_timeline", "save_timeline",
           "plot_timeline", "TIMELINE_SUFFIXES"]

TIMELINE_SUFFIXES = (".csv", ".jsonl", ".json")


@dataclass(frozen=True)
class TimelineWindow:
    """One window: ``[start, end)`` in seconds, fused class probabilities ``(K,)`` and raw logits per level."""

    start: float
    end: float
    probabilities: np.ndarray
    levels: dict[str, np.ndarray] = field(default_factory=dict)

    def top(self, class_names: Sequence[str], k: int) -> list[tuple[str, float]]:
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [(str(class_names[i]), float(self.probabilities[i])) for i in order]


@dataclass(frozen=True)
class Timeline:
    """The windows of one video, with its frame rate and frame count."""

    video: str
    fps: float
    num_frames: int
    window: float
    stride: float
    class_names: tuple[str, ...]
    windows: list[TimelineWindow]

    def records(self, top: int) -> list[dict[str, Any]]:
        return [{"video": self.video, "start": round(w.start, 4), "end": round(w.end, 4),
                 "top": [[n, round(p, 6)] for n, p in w.top(self.class_names, top)]} for w in self.windows]


def window_starts(num_frames: int, window: int, stride: int) -> list[int]:
    """First frames of the windows of ``window`` frames every ``stride`` frames over ``num_frames`` frames.

    >>> window_starts(100, 50, 25)    # 0-49, 25-74, 50-99
    [0, 25, 50]
    >>> window_starts(110, 50, 25)    # the tail 100-109 gets a window aligned with the end
    [0, 25, 50, 60]
    >>> window_starts(30, 50, 25)     # shorter than one window: the whole video
    [0]
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be at least 1 frame, got {window} and {stride}")
    if num_frames <= window:
        return [0]
    starts = list(range(0, num_frames - window + 1, stride))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    return starts


def video_fps(path: str | Path) -> float | None:
    """The frame rate a video file declares (``None`` for a frame folder or a file without one)."""
    import av

    path = Path(path)
    if path.is_dir():
        return None
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            return float(rate) if rate else None
    except (av.error.FFmpegError, IndexError, OSError):
        return None


class _WindowClips(Dataset):
    """Item ``j``: the test clip ``([crops,] T, C, H, W)`` of window ``j`` (frames ``start … start+length-1``)."""

    def __init__(self, path: Path, starts: list[int], length: int, num_frames: int, *, sampler: Any,
                 transform: Any, kind: str, crops: int) -> None:
        self.path, self.starts, self.length, self.num_frames = path, starts, length, num_frames
        self.sampler, self.transform, self.kind, self.crops = sampler, transform, kind, crops

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, j: int) -> torch.Tensor:
        from offnet.data.decode import read_flow_frames, read_frames

        length = min(self.length, self.num_frames - self.starts[j])
        idx = self.sampler(length, np.random.default_rng(0)) + self.starts[j]  # (T, n) frames inside the window
        t, n = idx.shape
        read = read_flow_frames if self.kind == "flow" else read_frames
        x = self.transform(read(self.path, idx.reshape(-1).tolist()), np.random.default_rng(0))  # (T*n, c, h, w)
        if self.crops == 1:
            return x.reshape(t, n * x.shape[1], *x.shape[-2:])  # (T, C, H, W)
        return x.reshape(x.shape[0], t, n * x.shape[2], *x.shape[-2:])  # (crops, T, C, H, W)


def video_timeline(predictor: Predictor, video: str | Path, *, window: float, stride: float,
                   fps: float | None = None, batch_size: int = 4, workers: int = 0) -> Timeline:
    """Score ``video`` window by window (module docstring). ``fps`` overrides the declared frame rate and is
    required for frame folders. Raises ``ValueError`` naming the video or option when something is wrong."""
    from offnet.data.check import inspect_record
    from offnet.data.records import VideoRecord
    from offnet.data.sampling import make_sampler
    from offnet.data.transforms import build_transform
    from offnet.engine.evaluate import _resolve_device, score_clips
    from offnet.modalities import get_modality
    from offnet.tools.batch import _predictions

    if window <= 0 or stride <= 0:
        raise ValueError(f"--window and --stride must be positive seconds, got {window} and {stride}")
    path = Path(video).expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(f"video not found: {video}")
    rate = fps or video_fps(path)
    if not rate or rate <= 0:
        raise ValueError(f"{video}: no frame rate known (a frame folder, or a file that declares none); pass --fps")
    min_side = predictor.size if predictor.data_config.get("resize_to") is None else None
    record, bad = inspect_record(VideoRecord(path=path, label=0, source=str(video)), min_side=min_side)
    if bad is not None:
        raise ValueError(f"cannot use {bad}")
    num_frames = int(record.num_frames or 0)
    length = max(1, round(window * rate))
    step = max(1, round(stride * rate))
    starts = window_starts(num_frames, length, step)
    model = predictor.model
    mod = get_modality(model.modality.name)
    sampler = make_sampler(predictor.data_config.get("sampler", "off"), num_segments=predictor.segments,
                           new_length=mod.frames_per_segment, test=True, test_segments=predictor.segments,
                           interval=predictor.data_config.get("interval"))
    mean, std = model.input_spec.mean_std(mod.kind)
    transform = build_transform(train=False, size=predictor.size, modality=mod.name, mean=mean, std=std,
                                bgr=model.input_spec.bgr, scale255=model.input_spec.scale255,
                                flip=predictor.flip, crops=predictor.crops,
                                resize_to=predictor.data_config.get("resize_to"))
    clips = _WindowClips(path, starts, length, num_frames, sampler=sampler, transform=transform, kind=mod.kind,
                         crops=predictor.crops)
    loader = DataLoader(clips, batch_size=batch_size, shuffle=False, num_workers=workers)
    device = _resolve_device(predictor.device)
    model = predictor.inference_model(device)
    names = [f"{video} [{s / rate:.2f} s]" for s in starts]
    windows: list[TimelineWindow] = []
    for batch in loader:
        interrupts.check()
        first = len(windows)
        positions = list(range(first, first + len(batch)))
        scores = score_clips(model, batch.to(device), flip_labels=predictor.flip_labels)
        preds = _predictions(predictor, positions, names, scores)
        for j in positions:
            end = min(starts[j] + length, num_frames)
            windows.append(TimelineWindow(start=starts[j] / rate, end=end / rate, probabilities=preds[j].probabilities,
                                          levels=preds[j].levels))
    return Timeline(video=str(video), fps=float(rate), num_frames=num_frames, window=window, stride=stride,
                    class_names=tuple(str(c) for c in predictor.class_names), windows=windows)


def save_timeline(timelines: Sequence[Timeline], out: str | Path, *, top: int) -> Path:
    """Write the windows of ``timelines`` to ``out`` (.csv, .jsonl or .json, by suffix), atomically."""
    from offnet.tools.results import _csv_line

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in TIMELINE_SUFFIXES:
        raise ValueError(f"--out {out}: a timeline is written as {', '.join(TIMELINE_SUFFIXES)}, not {suffix!r}")
    if suffix == ".json":
        doc = {"videos": [{"video": t.video, "fps": t.fps, "frames": t.num_frames, "window": t.window,
                           "stride": t.stride, "windows": [{k: v for k, v in r.items() if k != "video"}
                                                           for r in t.records(top)]} for t in timelines]}
        return atomic_write_text(out, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    lines: list[str] = []
    if suffix == ".csv":
        header = ["video", "start", "end"]
        for k in range(1, top + 1):
            header += [f"class_{k}", f"probability_{k}"]
        lines.append(_csv_line(header))
    for timeline in timelines:
        for record in timeline.records(top):
            if suffix == ".jsonl":
                lines.append(json.dumps(record, allow_nan=False) + "\n")
                continue
            row = [record["video"], f"{record['start']:.3f}", f"{record['end']:.3f}"]
            for name, prob in record["top"]:
                row += [name, f"{prob:.6f}"]
            lines.append(_csv_line(row))
    return atomic_write_text(out, "".join(lines))


def plot_timeline(timelines: Sequence[Timeline], out: str | Path, *, max_classes: int = 8) -> Path:
    """A PNG strip per video: the probability of its most likely classes (rows) over time (x, seconds),
    each window drawn over its centre; the classes are those with the highest peak probability."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heights = []
    rows = []
    for t in timelines:
        probs = np.stack([w.probabilities for w in t.windows])  # (windows, K)
        keep = np.argsort(-probs.max(axis=0), kind="stable")[:max_classes]
        rows.append((t, probs[:, keep], [t.class_names[i] for i in keep]))
        heights.append(0.6 + 0.32 * len(keep))
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, sum(heights) + 0.6), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (t, probs, names) in zip(axes[:, 0], rows):
        centres = np.array([(w.start + w.end) / 2 for w in t.windows])
        if len(centres) > 1:
            mids = (centres[1:] + centres[:-1]) / 2
            edges = np.concatenate([[t.windows[0].start], mids, [t.windows[-1].end]])
        else:
            edges = np.array([t.windows[0].start, t.windows[0].end])
        mesh = ax.pcolormesh(edges, np.arange(len(names) + 1), probs.T, cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_yticks(np.arange(len(names)) + 0.5, labels=names)
        ax.invert_yaxis()
        ax.set_title(f"{Path(t.video).name}: {t.window:g} s windows every {t.stride:g} s", fontsize=10)
        ax.set_xlabel("time (s)")
        fig.colorbar(mesh, ax=ax, label="probability", pad=0.01)
    fig.tight_layout()
    try:
        return save_figure(fig, out, dpi=110)
    finally:
        plt.close(fig)
