"""A synthetic action benchmark that only an order-aware model can solve, written in the UCF-101 layout.

Most classes come in **time-reversal pairs** (``SlideLeft``/``SlideRight``, ``SlideUp``/``SlideDown``,
``TurnClockwise``/``TurnCounterclockwise``, ``Expand``/``Shrink``): a textured pattern moves inside a static
window (a rectangle for slides, a disc for turns and rings) over a random textured background, with camera
shake and sensor noise. The second class of a pair is rendered *literally* as a time-reversed video of the
first class's process, drawn with independent randomness. Every random process involved is stationary
(uniform pattern phase, stationary Gaussian AR(1) camera shake, i.i.d. noise) and videos are intra-only
coded, so every single frame, at every index, is identically distributed in both classes: a model that
scores frames independently and averages them (TSN) or pools segment features without order (Hyp-Net)
cannot beat chance within a pair, while a model that sees the ordered difference of two segments (OFF)
can. Two more classes (``StillBlock``, ``WanderingBall``) differ by appearance alone, so frame-level models
have something they *can* learn.

Layout (identical to UCF-101, so every dataset command treats it like UCF-101)::

    root/videos/<Class>/v_<Class>_gXX_cYY.avi       mpeg4 (intra-only, near-lossless) in AVI, 25 fps
    root/ucfTrainTestlist/classInd.txt              "1 SlideLeft"
    root/ucfTrainTestlist/trainlist01.txt           "SlideLeft/v_SlideLeft_g05_c01.avi 1"
    root/ucfTrainTestlist/testlist01.txt            "SlideLeft/v_SlideLeft_g01_c01.avi"
    root/synth.json                                 the parameters, the reversal pairs, the counts

Groups work as in UCF-101: at most 25 groups per class, clips of one group share their background, and
the first ``round(groups * test_fraction)`` groups form the test split, so train and test never share a
group. The dataset is written into a temporary sibling folder and renamed into place, so an interrupted
run never leaves a folder that looks complete. Calling again with the same parameters returns at once
(``synth.json`` is the cache key); a folder made with other parameters raises ``ValueError`` instead of
being overwritten.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from offnet.data.classnames import name_words

__all__ = [
    "SYNTH_CLASSES",
    "SYNTH_DEMO_CLASSES",
    "SYNTH_PAIRS",
    "SYNTH_FORMAT_VERSION",
    "render_clip",
    "reversal_pairs",
    "write_synthetic_dataset",
]

log = logging.getLogger(__name__)

SYNTH_FORMAT_VERSION = 1

# (forward class, its time reversal). The forward class is rendered; the reversed one is a forward
# rendering played backwards.
SYNTH_PAIRS: tuple[tuple[str, str], ...] = (
    ("SlideRight", "SlideLeft"),
    ("SlideDown", "SlideUp"),
    ("TurnClockwise", "TurnCounterclockwise"),
    ("Expand", "Shrink"),
)
_APPEARANCE_CLASSES = ("StillBlock", "WanderingBall")
SYNTH_CLASSES: tuple[str, ...] = tuple(c for pair in SYNTH_PAIRS for c in pair) + _APPEARANCE_CLASSES
#: The subset the CPU demo was tuned on (2 reversal pairs + 2 appearance classes); see the report in
#: the module's git history: 64 videos/class, 64 px, 32 frames, T=3, random 56 px crops.
SYNTH_DEMO_CLASSES: tuple[str, ...] = (
    "SlideRight", "SlideLeft", "TurnClockwise", "TurnCounterclockwise", "StillBlock", "WanderingBall",
)

_FPS = 25
_SPEED_PX = (1.5, 3.0)  # pattern speed range, px / frame at 64 px (scaled with the frame size)
_FEATURE_PX = (8.0, 14.0)  # pattern blob size range, px at 64 px
_PATTERN_PERIOD = 32  # pattern tile period, px at 64 px
_WINDOW_SCALE = 1.15  # multiplies the window size ranges below
_BG_CONTRAST = 0.1
_MAX_GROUPS = 25  # as UCF-101


# --------------------------------------------------------------------------------------------------
# Random textures and sampling
# --------------------------------------------------------------------------------------------------
def _periodic_texture(
    rng: np.random.Generator, period: int, feature_px: float, contrast: float
) -> np.ndarray:
    """A smooth random colour texture that tiles with ``period`` px, shape ``(P, P, 3)``, values ~[0, 1].

    Low-pass filtered white noise (Gaussian spectrum) is periodic by construction, so sampling it at
    wrapped coordinates shows no seam however far the pattern travels.
    """
    freqs = np.fft.fftfreq(period)
    k2 = freqs[:, None] ** 2 + freqs[None, :] ** 2
    sigma_k = 1.0 / (2.0 * math.pi * feature_px / 2.0)
    spectrum_filter = np.exp(-k2 / (2.0 * sigma_k**2))
    fields = []
    for _ in range(2):
        noise = rng.standard_normal((period, period))
        field = np.fft.ifft2(np.fft.fft2(noise) * spectrum_filter).real
        field = (field - field.mean()) / (field.std() + 1e-8)
        fields.append(field)
    base = rng.uniform(0.3, 0.7, size=3)
    # The first field carries luminance (grey plus a tint), the second colour: a texture must never be
    # isoluminant, since chroma is subsampled by the codec and blurred.
    dirs = np.stack([np.ones(3) + 0.4 * rng.standard_normal(3), rng.standard_normal(3)])
    dirs *= np.array([[contrast], [0.5 * contrast]]) / np.linalg.norm(dirs, axis=1, keepdims=True)
    tex = base + fields[0][..., None] * dirs[0] + fields[1][..., None] * dirs[1]  # (P, P, 3)
    return np.clip(tex, 0.0, 1.0)


def _sample_wrapped(tile: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear sample of ``tile`` ``(P, Q, 3)`` at column ``u`` / row ``v`` (any shape, wrapped)."""
    rows, cols = tile.shape[:2]
    u0 = np.floor(u)
    v0 = np.floor(v)
    fu = (u - u0)[..., None]
    fv = (v - v0)[..., None]
    c0 = u0.astype(np.int64) % cols
    r0 = v0.astype(np.int64) % rows
    c1 = (c0 + 1) % cols
    r1 = (r0 + 1) % rows
    top = tile[r0, c0] * (1 - fu) + tile[r0, c1] * fu
    bottom = tile[r1, c0] * (1 - fu) + tile[r1, c1] * fu
    return top * (1 - fv) + bottom * fv


def _ar1(rng: np.random.Generator, n: int, sigma: float, rho: float) -> np.ndarray:
    """A stationary Gaussian AR(1) sequence (started from its stationary law, hence time-reversible)."""
    out = np.empty(n)
    out[0] = rng.normal(0.0, sigma)
    innovation = sigma * math.sqrt(1.0 - rho**2)
    for t in range(1, n):
        out[t] = rho * out[t - 1] + rng.normal(0.0, innovation)
    return out


class _Scene:
    """Per-video background, camera shake and pixel grid shared by every renderer; ``scale = size / 64``."""

    def __init__(self, *, rng: np.random.Generator, bg_rng: np.random.Generator, size: int, num_frames: int):
        self.size = size
        self.num_frames = num_frames
        self.scale = size / 64.0
        self.background = _periodic_texture(
            bg_rng, period=2 * size, feature_px=bg_rng.uniform(3.0, 10.0) * self.scale, contrast=_BG_CONTRAST
        )
        shake = 0.6 * self.scale
        self.shake_x = _ar1(rng, num_frames, shake, 0.6)  # (N,)
        self.shake_y = _ar1(rng, num_frames, shake, 0.6)
        self.noise_std = rng.uniform(1.0, 4.0) / 255.0
        grid = np.arange(size, dtype=np.float64) + 0.5
        # Camera-shaken pixel coordinates per frame, (N, H, W) each.
        self.x = grid[None, None, :] + self.shake_x[:, None, None] + np.zeros((num_frames, size, size))
        self.y = grid[None, :, None] + self.shake_y[:, None, None] + np.zeros((num_frames, size, size))

    def compose(self, rng: np.random.Generator, layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Paint ``(colour (N, H, W, 3), alpha (N, H, W))`` layers over the background, add noise → uint8."""
        frames = _sample_wrapped(self.background, self.x, self.y)  # (N, H, W, 3)
        for colour, alpha in layers:
            a = alpha[..., None]
            frames = frames * (1.0 - a) + colour * a
        frames = frames + rng.normal(0.0, self.noise_std, size=frames.shape)
        return np.clip(np.round(frames * 255.0), 0, 255).astype(np.uint8)

    def window(self, rng: np.random.Generator, half_range: tuple[float, float]) -> tuple[float, float, float]:
        """A random window half-size and centre that keep the window inside the frame despite shake."""
        half = rng.uniform(*half_range) * _WINDOW_SCALE * self.size
        margin = half + 3.0 * 0.6 * self.scale + 1.0
        cx = rng.uniform(margin, self.size - margin)
        cy = rng.uniform(margin, self.size - margin)
        return half, cx, cy


def _speed(rng: np.random.Generator, scale: float) -> float:
    return rng.uniform(*_SPEED_PX) * scale


def _pattern(rng: np.random.Generator, scale: float) -> np.ndarray:
    feature_px = rng.uniform(*_FEATURE_PX) * scale
    return _periodic_texture(rng, period=int(round(_PATTERN_PERIOD * scale)), feature_px=feature_px, contrast=0.35)


# --------------------------------------------------------------------------------------------------
# Forward renderers: each returns layers for _Scene.compose; stationary in time by construction.
# --------------------------------------------------------------------------------------------------
def _slide(scene: _Scene, rng: np.random.Generator, *, axis: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pattern moving right (axis 0) or down (axis 1) inside a static rectangular window."""
    tile = _pattern(rng, scene.scale)
    half, cx, cy = scene.window(rng, (0.22, 0.36))
    aspect = rng.uniform(0.7, 1.0)
    half_x, half_y = (half, half * aspect) if axis == 0 else (half * aspect, half)
    t = np.arange(scene.num_frames, dtype=np.float64)[:, None, None]
    shift = _speed(rng, scene.scale) * t + rng.uniform(0, tile.shape[0])  # random phase
    u = scene.x - cx - (shift if axis == 0 else 0.0)
    v = scene.y - cy - (shift if axis == 1 else 0.0)
    colour = _sample_wrapped(tile, u, v)
    dist = np.minimum(half_x - np.abs(scene.x - cx), half_y - np.abs(scene.y - cy))
    return [(colour, np.clip(dist + 0.5, 0.0, 1.0))]


def _disc(scene: _Scene, rng: np.random.Generator) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    radius, cx, cy = scene.window(rng, (0.24, 0.38))
    dx = scene.x - cx
    dy = scene.y - cy
    return radius, dx, dy, np.clip(radius - np.hypot(dx, dy) + 0.5, 0.0, 1.0)


def _turn(scene: _Scene, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Textured disc turning clockwise on screen (y points down, so a growing angle is clockwise)."""
    tile = _pattern(rng, scene.scale)
    radius, dx, dy, alpha = _disc(scene, rng)
    omega = _speed(rng, scene.scale) / (0.8 * radius)  # rad / frame: the outer ring moves 1.5–3 px/frame
    t = np.arange(scene.num_frames, dtype=np.float64)[:, None, None]
    angle = omega * t + rng.uniform(0.0, 2.0 * math.pi)
    cos, sin = np.cos(angle), np.sin(angle)
    # Content at time t is the initial content rotated by +angle: look it up at R(-angle) · p.
    u = cos * dx + sin * dy
    v = -sin * dx + cos * dy
    return [(_sample_wrapped(tile, u, v), alpha)]


def _expand(scene: _Scene, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Textured rings inside a disc travelling outwards at a constant radial speed."""
    tile = _pattern(rng, scene.scale)
    period = tile.shape[0]
    _, dx, dy, alpha = _disc(scene, rng)
    t = np.arange(scene.num_frames, dtype=np.float64)[:, None, None]
    r = np.hypot(dx, dy)
    theta = np.arctan2(dy, dx) + rng.uniform(0.0, 2.0 * math.pi)
    u = theta / (2.0 * math.pi) * period * 3  # three tile periods around the circle: seamless
    v = r - _speed(rng, scene.scale) * t + rng.uniform(0.0, period)
    return [(_sample_wrapped(tile, u, v), alpha)]


def _still_block(scene: _Scene, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """A static, nearly flat coloured square with a dark frame."""
    half, cx, cy = scene.window(rng, (0.15, 0.25))
    dist = np.minimum(half - np.abs(scene.x - cx), half - np.abs(scene.y - cy))
    fill = np.array([rng.uniform(0.75, 0.95), rng.uniform(0.1, 0.3), rng.uniform(0.1, 0.3)])
    inner = np.clip(dist - 0.2 * half + 0.5, 0.0, 1.0)[..., None]
    colour = fill * inner + np.array([0.05, 0.05, 0.05]) * (1.0 - inner)  # (N, H, W, 3)
    return [(colour, np.clip(dist + 0.5, 0.0, 1.0))]


def _wandering_ball(scene: _Scene, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """A flat bright disc on a stationary (hence reversible) random walk around the frame centre."""
    radius = rng.uniform(0.1, 0.16) * scene.size
    reach = scene.size / 2 - radius - 3.0 * scene.scale
    cx = scene.size / 2 + np.clip(_ar1(rng, scene.num_frames, reach / 2, 0.9), -reach, reach)
    cy = scene.size / 2 + np.clip(_ar1(rng, scene.num_frames, reach / 2, 0.9), -reach, reach)
    dist = radius - np.hypot(scene.x - cx[:, None, None], scene.y - cy[:, None, None])
    fill = np.array([rng.uniform(0.1, 0.3), rng.uniform(0.6, 0.9), rng.uniform(0.8, 1.0)])
    colour = np.broadcast_to(fill, (*dist.shape, 3))
    return [(colour, np.clip(dist + 0.5, 0.0, 1.0))]


_Renderer = Callable[[_Scene, np.random.Generator], list[tuple[np.ndarray, np.ndarray]]]
_FORWARD: dict[str, _Renderer] = {
    "SlideRight": lambda s, r: _slide(s, r, axis=0),
    "SlideDown": lambda s, r: _slide(s, r, axis=1),
    "TurnClockwise": _turn,
    "Expand": _expand,
    "StillBlock": _still_block,
    "WanderingBall": _wandering_ball,
}
_REVERSED: dict[str, str] = {rev: fwd for fwd, rev in SYNTH_PAIRS}


def render_clip(
    name: str, *, rng: np.random.Generator, size: int = 64, num_frames: int = 32,
    background_rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Render one clip of class ``name`` as ``(N, H, W, 3)`` uint8 RGB frames, ``N = num_frames``.

    A class that is the reversal of another (``SlideLeft``) is that class's rendering played backwards,
    so both classes share every per-frame distribution. ``background_rng`` draws the background texture
    (videos of one group share it); by default it is ``rng``.
    """
    if name not in SYNTH_CLASSES:
        raise ValueError(f"unknown synthetic class {name!r}; choose from {list(SYNTH_CLASSES)}")
    if size < 32 or num_frames < 2:
        raise ValueError(f"size must be >= 32 and num_frames >= 2, got size={size}, num_frames={num_frames}")
    forward = _REVERSED.get(name, name)
    scene = _Scene(rng=rng, bg_rng=background_rng if background_rng is not None else rng, size=size,
                   num_frames=num_frames)
    frames = scene.compose(rng, _FORWARD[forward](scene, rng))
    return np.ascontiguousarray(frames[::-1]) if name in _REVERSED else frames


#: word pairs that name a motion and its time reversal (lower case), for :func:`reversal_pairs`
_OPPOSITES: tuple[tuple[str, str], ...] = (
    ("right", "left"), ("down", "up"), ("clockwise", "counterclockwise"), ("clockwise", "anticlockwise"),
    ("cw", "ccw"), ("in", "out"), ("expand", "shrink"), ("open", "close"), ("push", "pull"),
    ("forward", "backward"), ("forwards", "backwards"), ("towards", "away"), ("grow", "shrink"),
)


def reversal_pairs(classes: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs of ``classes`` that are each other's time reversal, in the order of ``classes``.

    The built-in benchmarks' pairs are known; other names are paired when they differ in exactly one word
    and that word has its opposite in the other name (``SlideLeft``/``SlideRight``,
    ``zoom_in``/``zoom_out``, ``RotateClockwise``/``RotateCounterClockwise``).
    """
    opposite = {(a, b) for a, b in _OPPOSITES} | {(b, a) for a, b in _OPPOSITES}
    words = {c: name_words(c) for c in classes}
    pairs: list[tuple[str, str]] = []
    used: set[str] = set()
    for i, a in enumerate(classes):
        for b in classes[i + 1:]:
            if a in used or b in used or len(words[a]) != len(words[b]):
                continue
            diff = [(x, y) for x, y in zip(words[a], words[b]) if x != y]
            if len(diff) == 1 and diff[0] in opposite:
                pairs.append((a, b))
                used.update((a, b))
    return pairs


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
#: encoder settings: near-lossless intra-only (every frame a keyframe) or ordinary inter-frame coding
_CODECS: dict[str, dict[str, str]] = {
    "intra": {"qmin": "1", "qmax": "2", "g": "1", "bf": "0"},
    "inter": {"qmin": "2", "qmax": "6", "g": "12", "bf": "0"},
}


def _write_video(path: Path, frames: np.ndarray, *, coding: str = "intra") -> None:
    """Encode ``(N, H, W, 3)`` uint8 as MPEG-4 Part 2 in AVI (like UCF's xvid).

    ``coding="intra"``: near-lossless, every frame a keyframe, so no frame's artefacts depend on its
    neighbours (i.e. on the direction of motion). ``"inter"``: ordinary inter-frame coding (keyframe every
    12 frames, P-frames between), as real videos are stored.
    """
    import av  # imported here so that `import offnet.data` does not require PyAV

    with av.open(str(path), mode="w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=_FPS, options=dict(_CODECS[coding]))
        stream.width = frames.shape[2]
        stream.height = frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 8_000_000
        stream.codec_context.thread_count = 1  # deterministic bytes
        for image in frames:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _split(videos_per_class: int, test_fraction: float) -> tuple[int, list[tuple[int, int]], int]:
    """``(groups, [(group, clip) per video], test_groups)``; groups and clips are 1-based as in UCF."""
    clips_per_group = math.ceil(videos_per_class / _MAX_GROUPS)
    groups = math.ceil(videos_per_class / clips_per_group)
    ids = [(i // clips_per_group + 1, i % clips_per_group + 1) for i in range(videos_per_class)]
    test_groups = round(groups * test_fraction)
    return groups, ids, test_groups


def _check_args(classes: Sequence[str], videos_per_class: int, size: int, num_frames: int,
                test_fraction: float) -> None:
    unknown = [c for c in classes if c not in SYNTH_CLASSES]
    if unknown or not classes:
        raise ValueError(f"unknown or no synthetic classes {unknown or list(classes)}; "
                         f"choose from {list(SYNTH_CLASSES)}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must not repeat, got {list(classes)}")
    if size < 32 or size % 16:
        raise ValueError(f"size must be a multiple of 16 and >= 32 (e.g. 64, 96, 112), got {size}")
    if num_frames < 8:
        raise ValueError(f"num_frames must be >= 8, got {num_frames}")
    _check_split(videos_per_class, test_fraction)


def _check_split(videos_per_class: int, test_fraction: float) -> None:
    if videos_per_class < 2:
        raise ValueError(f"videos per class must be at least 2 (training and test videos), got {videos_per_class}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    groups, _, test_groups = _split(videos_per_class, test_fraction)
    if test_groups < 1 or test_groups >= groups:
        raise ValueError(
            f"videos_per_class={videos_per_class} with test_fraction={test_fraction} gives {test_groups} "
            f"test group(s) of {groups}; both splits need at least one group: use more videos (>= 3) or change "
            "test_fraction")


def write_synthetic_dataset(
    root: Path,
    *,
    classes: Sequence[str] | None = None,
    videos_per_class: int = 64,
    seed: int = 0,
    size: int = 64,
    num_frames: int = 32,
    test_fraction: float = 1 / 3,
    progress: bool = True,
) -> Path:
    """Write the synthetic benchmark into ``root`` in the UCF-101 layout and return ``root``.

    ``classes`` picks a subset of :data:`SYNTH_CLASSES` (default: all, in that order; ``classInd.txt``
    follows the order given). A video's content depends only on ``(seed, class, group, clip, size,
    num_frames)``, never on which other classes are chosen, and the same seed gives byte-identical frames.
    If ``root/synth.json`` exists with the same parameters, nothing is written; with other parameters,
    or if ``root`` is a non-empty folder without it, ``ValueError`` is raised (delete it or pick another
    root). ``progress`` shows a progress bar on stderr.
    """
    root = Path(root)
    chosen = list(SYNTH_CLASSES if classes is None else classes)
    _check_args(chosen, videos_per_class, size, num_frames, test_fraction)
    params = {
        "format_version": SYNTH_FORMAT_VERSION, "classes": chosen, "videos_per_class": videos_per_class,
        "seed": seed, "size": size, "num_frames": num_frames, "test_fraction": test_fraction,
    }
    def render(name: str, group: int, clip: int) -> np.ndarray:
        class_id = SYNTH_CLASSES.index(name)
        rng = np.random.default_rng([seed, class_id, group, clip, 1])
        bg_rng = np.random.default_rng([seed, class_id, group, 0, 2])
        return render_clip(name, rng=rng, size=size, num_frames=num_frames, background_rng=bg_rng)

    return write_ucf_layout(root, params=params, classes=chosen, videos_per_class=videos_per_class,
                            test_fraction=test_fraction, render=render, coding="intra",
                            meta={"codec": "mpeg4 intra-only in avi"}, progress=progress)


def check_cached(root: Path, params: dict) -> bool:
    """True if ``root`` already holds a synthetic dataset made with ``params``; ``ValueError`` if ``root``
    holds anything else (another synthetic dataset, or files without ``synth.json``)."""
    marker = root / "synth.json"
    if marker.is_file():
        existing = json.loads(marker.read_text())
        if existing.get("params") == params:
            log.info("synthetic dataset already present at %s", root)
            return True
        raise ValueError(
            f"{root} holds a synthetic dataset made with other parameters ({existing.get('params')}); "
            f"wanted {params}. Delete the folder or choose another root.")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ValueError(f"{root} exists and is not a synthetic dataset (no synth.json); "
                         "delete it or choose another root")
    return False


def write_ucf_layout(root: Path, *, params: dict, classes: list[str], videos_per_class: int, test_fraction: float,
                     render: Callable[[str, int, int], np.ndarray], coding: str, meta: dict,
                     progress: bool) -> Path:
    """Render every ``(class, group, clip)`` with ``render`` and write the UCF-101 layout atomically.

    The dataset is written into a temporary sibling folder and renamed into place, so an interrupted run
    never leaves a folder that looks complete; ``synth.json`` holds ``params`` (the cache key), the
    reversal pairs, the counts and ``meta``.
    """
    root = Path(root)
    if check_cached(root, params):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        counts = _write_all(tmp, classes, videos_per_class, test_fraction, render, coding, progress)
        info = {"params": params, "pairs": reversal_pairs(classes), "counts": counts, "fps": _FPS, **meta}
        (tmp / "synth.json").write_text(json.dumps(info, indent=2) + "\n")
        if root.exists():
            root.rmdir()  # empty, checked above
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote synthetic dataset to %s: %s", root, counts)
    return root


def _write_all(tmp: Path, chosen: list[str], videos_per_class: int, test_fraction: float,
               render: Callable[[str, int, int], np.ndarray], coding: str, progress: bool) -> dict[str, int]:
    from offnet.progress import progress_bar

    _, ids, test_groups = _split(videos_per_class, test_fraction)
    lists = tmp / "ucfTrainTestlist"
    lists.mkdir()
    train_lines: list[str] = []
    test_lines: list[str] = []
    bar = progress_bar(total=len(chosen) * videos_per_class, desc="synth videos", unit="video",
                       disable=not progress, leave=False)
    jobs = []
    for label, name in enumerate(chosen, start=1):
        (tmp / "videos" / name).mkdir(parents=True)
        for group, clip in ids:
            rel = f"{name}/v_{name}_g{group:02d}_c{clip:02d}.avi"
            jobs.append((name, group, clip, rel))
            if group <= test_groups:
                test_lines.append(rel)
            else:
                train_lines.append(f"{rel} {label}")

    def write(job: tuple[str, int, int, str]) -> None:
        name, group, clip, rel = job
        _write_video(tmp / "videos" / rel, render(name, group, clip), coding=coding)

    # every clip draws its own randomness from its ids, so the order of rendering does not change the data;
    # rendering (OpenCV, numpy) and encoding (PyAV) release the GIL, so threads use the cores
    if jobs:
        render(*jobs[0][:3])  # builds shared caches (the texture bank) once, before the threads start
    pool = concurrent.futures.ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)))
    try:
        with bar:
            for _ in pool.map(write, jobs):
                bar.update(1)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # a failed clip or Ctrl-C: start no more, let running ones end
        raise
    pool.shutdown()
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(chosen, start=1)))
    (lists / "trainlist01.txt").write_text("".join(line + "\n" for line in train_lines))
    (lists / "testlist01.txt").write_text("".join(line + "\n" for line in test_lines))
    return {"classes": len(chosen), "train": len(train_lines), "test": len(test_lines)}
