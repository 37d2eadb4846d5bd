"""A motion-only benchmark from real photographs: only the order of frames tells the classes apart.

Every class has a **time-reversed twin** and no class differs from the others by appearance:

==========================  =====================================================================
``MoveRight`` / ``MoveLeft``  a disc cut from one photograph glides across another photograph
``MoveDown`` / ``MoveUp``     the same, vertically (not in the default class set)
``TurnClockwise`` / …         the disc stays in place and its content turns (3–6° per frame)
``ZoomIn`` / ``ZoomOut``      the disc and its content grow (1.2–2 % per frame) as if approached
==========================  =====================================================================

Photographs come from files that installed dependencies ship (:mod:`offnet.data.textures`): they are not
periodic, so a wrong frame interval cannot alias into motion the other way, and they have the cluttered
statistics of real scenes. The camera shakes on a bounded random walk (everything moves with it), the
sensor adds noise, and videos are stored with ordinary inter-frame coding (MPEG-4 Part 2 in AVI,
a keyframe every 12 frames, P-frames between).

The twin of a class is literally the forward rendering played backwards (drawn with its own
randomness), so for every frame index ``t`` the frame of one class is distributed exactly as frame
``N−1−t`` of its twin: a model that scores frames independently and pools them without order (TSN,
Hyp-Net) cannot beat chance, while a model that sees the ordered difference of two segments (OFF) can.
Frame size, length and speeds are parameters; speeds are in pixels per frame at the generated size, and
default to 1.5–3 px per frame per 160 px of frame width.

The layout and caching are those of :mod:`offnet.data.synth` (UCF-101 layout, groups of clips that share
a background photograph, ``synth.json`` as the cache key, written atomically).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .synth import write_ucf_layout
from .textures import TEXTURE_NAMES, texture_bank

__all__ = ["MOTION_PAIRS", "MOTION_CLASSES", "MOTION_DEFAULT_CLASSES", "MOTION_FORMAT_VERSION",
           "render_motion_clip", "write_motion_dataset"]

MOTION_FORMAT_VERSION = 1
MOTION_PAIRS: tuple[tuple[str, str], ...] = (
    ("MoveRight", "MoveLeft"),
    ("TurnClockwise", "TurnCounterclockwise"),
    ("ZoomIn", "ZoomOut"),
    ("MoveDown", "MoveUp"),
)
MOTION_CLASSES: tuple[str, ...] = tuple(c for pair in MOTION_PAIRS for c in pair)
#: three pairs, one per kind of motion: translation, rotation, scaling
MOTION_DEFAULT_CLASSES: tuple[str, ...] = MOTION_CLASSES[:6]
_REVERSED = {rev: fwd for fwd, rev in MOTION_PAIRS}
_SHAKE_RHO = 0.95  # camera shake: AR(1) close to a random walk, but bounded


def _shake(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """A stationary AR(1) camera path ``(n,)`` with stationary std ``sigma`` (random-walk-like steps)."""
    out = np.empty(n)
    out[0] = rng.normal(0.0, sigma)
    step = sigma * math.sqrt(1.0 - _SHAKE_RHO**2)
    for t in range(1, n):
        out[t] = _SHAKE_RHO * out[t - 1] + rng.normal(0.0, step)
    return np.clip(out, -3.0 * sigma, 3.0 * sigma)


def _pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    import cv2

    out = [image]
    for _ in range(levels):
        if min(out[-1].shape[:2]) < 8:
            break
        out.append(cv2.pyrDown(out[-1]))
    return out


def _forward_clip(kind: str, *, rng: np.random.Generator, bg_rng: np.random.Generator, width: int, height: int,
                  num_frames: int, speed: tuple[float, float], turn: tuple[float, float],
                  zoom: tuple[float, float]) -> np.ndarray:
    """Render the forward process of ``kind`` (``right``, ``down``, ``turn``, ``zoom``) → ``(N, H, W, 3)`` uint8."""
    import cv2

    bank = texture_bank()
    n, w, h = num_frames, width, height
    side = min(w, h)
    sigma = 0.012 * side  # camera shake, px (about 1.4 px at 120 px)
    margin = int(math.ceil(3.0 * sigma)) + 2
    background, bg_index = bank.view(bg_rng, height=h + 2 * margin, width=w + 2 * margin)
    sx, sy = _shake(rng, n, sigma), _shake(rng, n, sigma)
    t = np.arange(n, dtype=np.float64)

    # Object: centre path (world coordinates), radius and content angle / magnification per frame.
    if kind in ("right", "down"):
        radius = np.full(n, rng.uniform(0.2, 0.3) * side)
        v = rng.uniform(*speed)
        heading = rng.uniform(-0.25, 0.25) + (0.0 if kind == "right" else math.pi / 2)  # ±14° off the axis
        path = v * (t - (n - 1) / 2)
        along_len, across_len = (w, h) if kind == "right" else (h, w)
        slack_along = max(0.0, (along_len - 2 * radius[0] - v * (n - 1)) / 2)
        mid_along = along_len / 2 + rng.uniform(-slack_along, slack_along)
        mid_across = rng.uniform(radius[0], across_len - radius[0])
        mid = (mid_along, mid_across) if kind == "right" else (mid_across, mid_along)
        cx = mid[0] + path * math.cos(heading)
        cy = mid[1] + path * math.sin(heading)
        angle = np.zeros(n)
        mag = np.ones(n)
    else:
        if kind == "turn":
            radius = np.full(n, rng.uniform(0.25, 0.38) * side)
            angle = np.deg2rad(rng.uniform(*turn)) * t + rng.uniform(0, 2 * math.pi)
            mag = np.ones(n)
        else:  # zoom: radius and content grow together
            growth = 1.0 + rng.uniform(*zoom) / 100.0
            r_end = rng.uniform(0.36, 0.46) * side
            mag = growth ** (t - (n - 1))  # 1 at the last frame
            radius = r_end * mag
            angle = np.zeros(n)
        reach = radius.max() * 0.85
        cx = np.full(n, rng.uniform(min(reach, w / 2), max(w - reach, w / 2)))
        cy = np.full(n, rng.uniform(min(reach, h / 2), max(h - reach, h / 2)))

    r_max = float(radius.max())
    tex_side = 2 * int(math.ceil(r_max)) + 6
    texture, _ = bank.view(rng, height=tex_side, width=tex_side, exclude=bg_index)
    levels = _pyramid(texture, 4)
    gain = rng.uniform(0.85, 1.15, size=3)  # the disc's own colour balance
    noise = rng.uniform(1.0, 3.0) / 255.0

    xs = np.arange(w, dtype=np.float32)[None, :] + 0.5
    ys = np.arange(h, dtype=np.float32)[:, None] + 0.5
    frames = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        # camera: screen pixel p sees world point p + shake
        wx = xs + np.float32(sx[i])
        wy = ys + np.float32(sy[i])
        bg = cv2.remap(background, np.broadcast_to(wx + margin - 0.5, (h, w)).astype(np.float32),
                       np.broadcast_to(wy + margin - 0.5, (h, w)).astype(np.float32), cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REFLECT)
        dx = wx - np.float32(cx[i])
        dy = wy - np.float32(cy[i])
        # content at time i = initial content rotated by +angle and magnified by mag: look up R(-angle) p / mag
        scale = r_max / radius[i] if kind == "zoom" else 1.0
        level = min(len(levels) - 1, max(0, int(math.floor(math.log2(max(scale, 1.0))))))
        sub = 2.0**level
        c, s = math.cos(angle[i]), math.sin(angle[i])
        u = (c * dx + s * dy) * np.float32(scale) + tex_side / 2
        v = (-s * dx + c * dy) * np.float32(scale) + tex_side / 2
        obj = cv2.remap(levels[level], (u / sub - 0.5).astype(np.float32), (v / sub - 0.5).astype(np.float32),
                        cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        alpha = np.clip(radius[i] - np.hypot(dx, dy) + 0.5, 0.0, 1.0)[..., None]
        frame = bg * (1.0 - alpha) + np.clip(obj * gain, 0.0, 1.0) * alpha
        frame = frame + rng.normal(0.0, noise, size=frame.shape)
        frames[i] = np.clip(np.round(frame * 255.0), 0, 255).astype(np.uint8)
    return frames


_KINDS = {"MoveRight": "right", "MoveDown": "down", "TurnClockwise": "turn", "ZoomIn": "zoom"}


def default_speed(width: int) -> tuple[float, float]:
    """The default translation speed range, px per frame: 1.5–3 per 160 px of frame width."""
    return (1.5 * width / 160.0, 3.0 * width / 160.0)


def render_motion_clip(name: str, *, rng: np.random.Generator, width: int = 160, height: int = 120,
                       num_frames: int = 40, speed: tuple[float, float] | None = None,
                       turn: tuple[float, float] = (3.0, 6.0), zoom: tuple[float, float] = (1.2, 2.0),
                       background_rng: np.random.Generator | None = None) -> np.ndarray:
    """Render one clip of class ``name`` as ``(N, H, W, 3)`` uint8 RGB frames.

    ``speed`` is the translation speed range in px/frame (default :func:`default_speed`), ``turn`` the
    rotation range in degrees per frame, ``zoom`` the growth range in percent per frame. A reversed class
    (``MoveLeft``) is its twin's forward rendering played backwards. ``background_rng`` draws the
    background photograph (clips of one group share it); by default it is ``rng``.
    """
    if name not in MOTION_CLASSES:
        raise ValueError(f"unknown motion class {name!r}; choose from {list(MOTION_CLASSES)}")
    forward = _REVERSED.get(name, name)
    frames = _forward_clip(
        _KINDS[forward], rng=rng, bg_rng=background_rng if background_rng is not None else rng, width=width,
        height=height, num_frames=num_frames, speed=speed or default_speed(width), turn=turn, zoom=zoom)
    return np.ascontiguousarray(frames[::-1]) if name in _REVERSED else frames


def _check(classes: Sequence[str], width: int, height: int, num_frames: int, ranges: dict) -> None:
    unknown = [c for c in classes if c not in MOTION_CLASSES]
    if unknown or not classes:
        raise ValueError(f"unknown or no motion classes {unknown or list(classes)}; choose from "
                         f"{list(MOTION_CLASSES)}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must not repeat, got {list(classes)}")
    if min(width, height) < 48 or width % 2 or height % 2:
        raise ValueError(f"frame size must be even and at least 48 px per side (e.g. 160x120), got {width}x{height}")
    if num_frames < 8:
        raise ValueError(f"num_frames must be >= 8, got {num_frames}")
    for key, (lo, hi) in ranges.items():
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise ValueError(f"{key} range must be two positive numbers, low <= high; got {lo}, {hi}")


def write_motion_dataset(root: str | Path, *, classes: Sequence[str] | None = None, videos_per_class: int = 60,
                         seed: int = 0, width: int = 160, height: int = 120, num_frames: int = 40,
                         speed: tuple[float, float] | None = None, turn: tuple[float, float] = (3.0, 6.0),
                         zoom: tuple[float, float] = (1.2, 2.0), test_fraction: float = 1 / 3,
                         paired: bool = False, progress: bool = True) -> Path:
    """Write the motion-only benchmark into ``root`` (UCF-101 layout) and return ``root``.

    ``classes`` is a subset of :data:`MOTION_CLASSES` (default :data:`MOTION_DEFAULT_CLASSES`); see
    :func:`render_motion_clip` for the ranges. Same caching and atomic writing as
    :func:`offnet.data.synth.write_synthetic_dataset`.

    ``paired=True`` renders clip ``(group, clip)`` of a reversed class as the exact time reversal of the
    same clip of its twin (same photographs, path and noise), so every video has its reversal in the
    same split: frame-level models then score a video and its twin alike by construction, which makes
    "cannot beat chance" a sharp check on small sets. By default every clip draws its own randomness.
    """
    from .synth import _check_split  # the group split rules are shared

    root = Path(root)
    chosen = list(MOTION_DEFAULT_CLASSES if classes is None else classes)
    speed = tuple(speed) if speed is not None else default_speed(width)
    _check(chosen, width, height, num_frames, {"speed": speed, "turn": turn, "zoom": zoom})
    _check_split(videos_per_class, test_fraction)
    params = {
        "preset": "motion", "format_version": MOTION_FORMAT_VERSION, "classes": chosen,
        "videos_per_class": videos_per_class, "seed": seed, "width": width, "height": height,
        "num_frames": num_frames, "speed": [float(x) for x in speed], "turn": [float(x) for x in turn],
        "zoom": [float(x) for x in zoom], "test_fraction": test_fraction,
    }
    if paired:  # only then, so that existing datasets keep their cache key
        params["paired"] = True

    def render(name: str, group: int, clip: int) -> np.ndarray:
        # paired: a reversed class draws the randomness of its forward twin
        class_id = MOTION_CLASSES.index(_REVERSED.get(name, name) if paired else name)
        rng = np.random.default_rng([seed, class_id, group, clip, 11])
        bg_rng = np.random.default_rng([seed, class_id, group, 0, 12])
        return render_motion_clip(name, rng=rng, width=width, height=height, num_frames=num_frames,
                                  speed=speed, turn=turn, zoom=zoom, background_rng=bg_rng)

    meta = {"codec": "mpeg4 inter-frame (keyframe every 12 frames) in avi",
            "textures": list(TEXTURE_NAMES)}
    return write_ucf_layout(root, params=params, classes=chosen, videos_per_class=videos_per_class,
                            test_fraction=test_fraction, render=render, coding="inter", meta=meta,
                            progress=progress)
