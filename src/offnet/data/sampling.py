"""Which frames of a video a clip is made of: segment sampling for TSN and OFF.

Every scheme is a pure function of the frame count ``L`` (``num_frames``), its settings and, for training,
a ``numpy.random.Generator``. It returns **0-based start offsets**, one per segment; :func:`expand_offsets`
turns them into the ``new_length`` consecutive frame indices each segment reads (1 RGB frame, 5 flow
frames, 5 Raw-OFF frames, 6 RGB-diff frames: ``offnet.modalities``).

Short videos are padded by **clamping to the last frame**: a segment that would run past the end repeats
frame ``L - 1``. For example ``L = 3`` frames, ``T = 7`` segments and ``new_length = 5`` give seven
identical segments ``[0, 1, 2, 2, 2]`` with ``"tsn"`` and ``"off_code"``, and ``[0, 1, 2, 2, 2]``,
``[1, 2, 2, 2, 2]``, then five ``[2, 2, 2, 2, 2]`` with ``"off"`` (interval 1). ``L = 10``, ``T = 3``,
``new_length = 5`` (TSN test) gives the starts ``[1, 3, 5]`` (``avail = L - n + 1 = 6`` starts, tick 2:
``⌊1 + 2i⌋``) and segment 2 reads ``5 … 9``.

Schemes (``make_sampler`` name):

``"tsn"``
    TSN: split the ``avail = L - n + 1`` possible starts into ``T`` equal parts; train draws one start per
    part, test takes each part's centre ``⌊tick/2 + tick·i⌋``, ``tick = avail / T``.
``"off"`` (offnet's default for OFF / Hyp-Net, paper Sec. 4.2)
    One interval ``⌊L/β⌋`` (``β`` = test segments, 25) shared by all segments. Train: ``α`` segments at
    ``p + k·interval`` with ``p`` uniform in ``{0 … L - n - (α-1)·interval}``; test: ``β`` segments with the
    same interval, centred. A zero interval (``L < β``) would give ``α`` identical segments and a zero
    temporal difference, so the interval is at least 1. With ``interval`` set (frames), every video uses
    that interval instead of ``⌊L/β⌋``, shortened only where the clip's segments would not fit in the
    video: a fixed time step, for motion whose speed does not depend on the video's length.
``"off_code"`` (the authors' Caffe data layer)
    ``K = β`` slots of width ``d = ⌊(L - n)/(K-1)⌋``. Train: 7 (``α``) consecutive slots from a random slot
    ``s ∈ {0 … K-α-2}`` (the code's off-by-one is kept), each start jittered independently inside its slot
    (``rand() mod (d-n+1)`` when ``d > n``, else 1), capped at ``L - n``. Test: ``min(1 + i·d, L - n)``.
    ``d ≤ 0`` gives all starts 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "SAMPLERS",
    "Sampler",
    "make_sampler",
    "expand_offsets",
    "tsn_train_offsets",
    "tsn_test_offsets",
    "off_train_offsets",
    "off_test_offsets",
    "off_code_train_offsets",
    "off_code_test_offsets",
]

SamplerName = Literal["tsn", "off", "off_code"]
SAMPLERS: tuple[str, ...] = ("tsn", "off", "off_code")


def _check(num_frames: int, num_segments: int, new_length: int) -> None:
    if num_frames < 1:
        raise ValueError(f"a video needs at least 1 frame to sample from; got num_frames={num_frames}")
    if num_segments < 1 or new_length < 1:
        raise ValueError(
            f"num_segments and new_length must be >= 1; got num_segments={num_segments}, new_length={new_length}"
        )


def expand_offsets(offsets: np.ndarray, new_length: int, num_frames: int) -> np.ndarray:
    """``(T,)`` start offsets -> ``(T, new_length)`` frame indices, clamped to ``[0, num_frames - 1]``.

    ``expand_offsets([0], 5, 3)`` is ``[[0, 1, 2, 2, 2]]``: a segment longer than the video repeats the
    last frame.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    idx = offsets[:, None] + np.arange(new_length, dtype=np.int64)[None, :]  # (T, new_length)
    return np.clip(idx, 0, num_frames - 1)


# ---------------------------------------------------------------------------------------------- TSN


def tsn_train_offsets(num_frames: int, num_segments: int, new_length: int, rng: np.random.Generator) -> np.ndarray:
    """TSN training starts ``(T,)``: one uniform draw inside each of ``T`` equal parts.

    With ``avail = L - n + 1`` possible starts and ``avg = avail // T``: start ``i`` is
    ``i·avg + U{0 … avg-1}``. When ``avail < T`` (e.g. ``L = 8``, ``n = 5``, ``T = 7``: 4 starts) the
    starts are ``T`` sorted draws from ``{0 … avail-1}``; ``L < n`` gives all zeros.
    """
    _check(num_frames, num_segments, new_length)
    avail = max(num_frames - new_length + 1, 1)
    avg = avail // num_segments
    if avg > 0:
        return np.arange(num_segments, dtype=np.int64) * avg + rng.integers(0, avg, size=num_segments)
    return np.sort(rng.integers(0, avail, size=num_segments)).astype(np.int64)


def tsn_test_offsets(num_frames: int, num_segments: int, new_length: int) -> np.ndarray:
    """TSN test starts ``(T,)``: the centre of each part, ``⌊tick/2 + tick·i⌋`` with ``tick = avail/T``.

    ``L = 250``, ``T = 25``, ``n = 1``: ``[5, 15, …, 245]``. ``L = 3``, ``T = 7``, ``n = 1``:
    ``[0, 0, 1, 1, 1, 2, 2]``.
    """
    _check(num_frames, num_segments, new_length)
    avail = max(num_frames - new_length + 1, 1)
    tick = avail / num_segments
    return np.floor(tick / 2 + tick * np.arange(num_segments)).astype(np.int64)


# ------------------------------------------------------------------------------------- OFF (paper)


def _off_interval(num_frames: int, test_segments: int, interval: int | None = None, *, num_segments: int = 1,
                  new_length: int = 1) -> int:
    """``⌊L/β⌋`` (at least 1), or the fixed ``interval``, shortened so that ``num_segments`` segments of
    ``new_length`` frames fit in the video (at least 1)."""
    if test_segments < 1:
        raise ValueError(f"test_segments (β) must be >= 1; got {test_segments}")
    if interval is None:
        return max(num_frames // test_segments, 1)
    if interval < 1:
        raise ValueError(f"the OFF interval must be >= 1 frame; got {interval}")
    if num_segments > 1:
        interval = min(interval, (num_frames - new_length) // (num_segments - 1))
    return max(interval, 1)


def _check_interval_range(interval: int | None, interval_max: int) -> None:
    """An interval range needs a fixed ``interval`` no larger than ``interval_max``."""
    if interval is None or interval_max < interval:
        raise ValueError(f"interval_max ({interval_max}) must be at least a fixed interval; got interval={interval!r}")


def off_train_offsets(
    num_frames: int,
    num_segments: int,
    new_length: int,
    rng: np.random.Generator,
    *,
    test_segments: int = 25,
    interval: int | None = None,
    interval_max: int | None = None,
) -> np.ndarray:
    """OFF paper training starts ``(α,)``: ``p + k·⌊L/β⌋`` for ``k = 0 … α-1`` (Sec. 4.2).

    ``p`` is uniform in ``{0 … L - n - (α-1)·interval}`` (0 when that is negative: the last segments
    then clamp to the last frame). ``L = 250``, ``α = 7``, ``β = 25``, ``n = 1``: interval 10,
    ``p ∈ {0 … 189}``. A fixed ``interval`` replaces ``⌊L/β⌋`` (shortened to fit the video). With
    ``interval_max`` as well, each clip draws its interval uniformly from ``{interval … interval_max}``
    (before the shortening): clips of one video then show its motion at several magnitudes.
    """
    _check(num_frames, num_segments, new_length)
    if interval_max is not None:
        _check_interval_range(interval, interval_max)
        interval = int(rng.integers(interval, interval_max + 1))
    interval = _off_interval(num_frames, test_segments, interval, num_segments=num_segments, new_length=new_length)
    p_max = max(num_frames - new_length - (num_segments - 1) * interval, 0)
    p = int(rng.integers(0, p_max + 1))
    return p + interval * np.arange(num_segments, dtype=np.int64)


def off_test_offsets(num_frames: int, num_segments: int, new_length: int, *, test_segments: int = 25,
                     interval: int | None = None) -> np.ndarray:
    """OFF test starts ``(T,)``: the training interval ``⌊L/β⌋``, the span centred in the video.

    ``L = 250``, ``T = β = 25``, ``n = 1``: interval 10, span 241 frames, starts ``4, 14, …, 244``. A fixed
    ``interval`` replaces ``⌊L/β⌋`` (shortened to fit the video): ``L = 250``, ``T = 8``, ``interval = 5``:
    starts ``107, 112, …, 142``.
    """
    _check(num_frames, num_segments, new_length)
    interval = _off_interval(num_frames, test_segments, interval, num_segments=num_segments, new_length=new_length)
    p = max((num_frames - new_length - (num_segments - 1) * interval) // 2, 0)
    return p + interval * np.arange(num_segments, dtype=np.int64)


# ------------------------------------------------------------------------------ OFF (authors' code)


def _slot_width(num_frames: int, new_length: int, num_offsets: int) -> int:
    if num_offsets < 2:
        raise ValueError(f"the slot grid needs at least 2 slots (test_segments); got {num_offsets}")
    return (num_frames - new_length) // (num_offsets - 1)


def off_code_train_offsets(
    num_frames: int,
    num_segments: int,
    new_length: int,
    rng: np.random.Generator,
    *,
    test_segments: int = 25,
) -> np.ndarray:
    """The authors' training starts ``(T,)``: ``T`` consecutive slots of a ``K``-slot grid, each jittered.

    ``L = 250``, ``n = 1``, ``K = 25``, ``T = 7``: ``d = 10``, first slot ``s ∈ {0 … 16}``, start
    ``i`` in ``[i·d, i·d + 9]`` for ``i = s … s+6``. ``L = 20``, ``n = 5``: ``d = 0``, all zeros.
    """
    _check(num_frames, num_segments, new_length)
    d = _slot_width(num_frames, new_length, test_segments)
    if d <= 0:
        return np.zeros(num_segments, dtype=np.int64)
    span = test_segments - num_segments - 1
    s = int(rng.integers(0, span)) if span > 0 else 0
    slots = s + np.arange(num_segments, dtype=np.int64)
    if d - new_length > 0:
        jitter = rng.integers(0, d - new_length + 1, size=num_segments)
    else:
        jitter = np.ones(num_segments, dtype=np.int64)
    return np.minimum(jitter + slots * d, max(num_frames - new_length, 0))


def off_code_test_offsets(
    num_frames: int, num_segments: int, new_length: int, *, test_segments: int = 25
) -> np.ndarray:
    """The authors' test starts ``(T,)``: ``min(1 + i·d, L - n)`` on the ``K``-slot grid.

    ``L = 250``, ``n = 1``, ``K = T = 25``: ``d = 10``, starts ``1, 11, …, 241``.
    """
    _check(num_frames, num_segments, new_length)
    d = _slot_width(num_frames, new_length, test_segments)
    if d <= 0:
        return np.zeros(num_segments, dtype=np.int64)
    return np.minimum(1 + d * np.arange(num_segments, dtype=np.int64), max(num_frames - new_length, 0))


# ------------------------------------------------------------------------------------------ sampler


@dataclass(frozen=True, kw_only=True)
class Sampler:
    """A configured sampling scheme: ``sampler(num_frames, rng)`` -> ``(T, new_length)`` frame indices.

    ``T`` is ``num_segments`` (α) for training and ``test_segments`` (β) when ``test`` is set. Test
    samplers are deterministic and ignore ``rng``.
    """

    name: SamplerName
    num_segments: int
    new_length: int
    test: bool
    test_segments: int = 25
    interval: int | None = None  # "off": a fixed interval in frames instead of L // test_segments
    interval_max: int | None = None  # "off" training: each clip's interval drawn from interval … interval_max

    def __post_init__(self) -> None:
        if self.name not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.name!r}; choose one of {list(SAMPLERS)}")
        if self.interval is not None and (self.name != "off" or self.interval < 1):
            raise ValueError(f"a fixed interval (got {self.interval!r}) needs the 'off' sampler and >= 1 frame; "
                             f"the {self.name!r} sampler spaces its segments itself")
        if self.interval_max is not None:
            _check_interval_range(self.interval, self.interval_max)
        if self.num_segments < 1 or self.new_length < 1 or self.test_segments < 1:
            raise ValueError(
                f"sampler needs num_segments, new_length, test_segments >= 1; got {self.num_segments}, "
                f"{self.new_length}, {self.test_segments}"
            )
        if self.name == "off_code" and self.test_segments < 2:
            raise ValueError("the 'off_code' sampler needs test_segments (grid slots) >= 2")

    @property
    def segments(self) -> int:
        """``T`` of the clips this sampler produces."""
        return self.test_segments if self.test else self.num_segments

    def offsets(self, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """``(T,)`` 0-based start offsets."""
        n, t, beta = self.new_length, self.segments, self.test_segments
        if self.test:
            if self.name == "tsn":
                return tsn_test_offsets(num_frames, t, n)
            if self.name == "off":
                return off_test_offsets(num_frames, t, n, test_segments=beta, interval=self.interval)
            return off_code_test_offsets(num_frames, t, n, test_segments=beta)
        if rng is None:
            raise ValueError("a training sampler needs a numpy.random.Generator (rng)")
        if self.name == "tsn":
            return tsn_train_offsets(num_frames, t, n, rng)
        if self.name == "off":
            return off_train_offsets(num_frames, t, n, rng, test_segments=beta, interval=self.interval,
                                     interval_max=self.interval_max)
        return off_code_train_offsets(num_frames, t, n, rng, test_segments=beta)

    def __call__(self, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """``(T, new_length)`` 0-based frame indices, all in ``[0, num_frames)``."""
        return expand_offsets(self.offsets(num_frames, rng), self.new_length, num_frames)


def make_sampler(
    name: str,
    *,
    num_segments: int,
    new_length: int,
    test: bool,
    test_segments: int = 25,
    interval: int | None = None,
    interval_max: int | None = None,
) -> Sampler:
    """Build a :class:`Sampler` by name: ``"tsn"``, ``"off"`` (paper) or ``"off_code"`` (authors' code).

    ``interval`` (frames) fixes the ``"off"`` sampler's interval; it is ignored by the other schemes, which
    space their segments over the whole video. ``interval_max`` (training only) draws each clip's interval from
    ``interval … interval_max``."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {list(SAMPLERS)}")
    return Sampler(
        name=name,  # type: ignore[arg-type]
        num_segments=num_segments,
        new_length=new_length,
        test=test,
        test_segments=test_segments,
        interval=interval if name == "off" else None,
        interval_max=interval_max if name == "off" and not test else None,
    )
