"""Tests for the synthetic time-reversal benchmark (offnet.data.synth)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ucf_layout_check import check_ucf_layout

from offnet.data.synth import (
    SYNTH_CLASSES,
    SYNTH_PAIRS,
    render_clip,
    reversal_pairs,
    write_synthetic_dataset,
)

av = pytest.importorskip("av")

SMALL = {"classes": ["SlideRight", "SlideLeft", "StillBlock"], "videos_per_class": 3, "size": 64,
         "num_frames": 8, "progress": False}


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack(frames)  # (N, H, W, 3)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("synth") / "ds", seed=5, **SMALL)


def _horizontal_motion(frames: np.ndarray) -> float:
    """Least-squares global horizontal velocity (px/frame) from brightness constancy, averaged over time."""
    gray = frames.astype(np.float64).mean(axis=-1)  # (N, H, W)
    ix = np.gradient(gray, axis=2)[:-1]
    it = gray[1:] - gray[:-1]
    return float(-(ix * it).sum() / (ix * ix).sum())


# ---------------------------------------------------------------------------------------------- layout
def test_layout_and_list_files(small_dataset: Path) -> None:
    train, test = check_ucf_layout(small_dataset, SMALL["classes"])
    assert len(train) + len(test) == 9 and len(test) == 3  # 3 groups per class, one of them test
    meta = json.loads((small_dataset / "synth.json").read_text())
    assert meta["params"]["seed"] == 5 and meta["pairs"] == [["SlideRight", "SlideLeft"]]


def test_every_video_decodes_with_the_right_frame_count(small_dataset: Path) -> None:
    for path in sorted((small_dataset / "videos").rglob("*.avi")):
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert stream.frames in (0, 8)  # 0 = container does not say
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert len(frames) == 8 and frames[0].shape == (64, 64, 3), path


def test_decoded_video_matches_rendering_closely(small_dataset: Path) -> None:
    decoded = _decode(small_dataset / "videos/StillBlock/v_StillBlock_g02_c01.avi").astype(np.float64)
    class_id = SYNTH_CLASSES.index("StillBlock")
    rendered = render_clip("StillBlock", rng=np.random.default_rng([5, class_id, 2, 1, 1]), size=64,
                           num_frames=8, background_rng=np.random.default_rng([5, class_id, 2, 0, 2]))
    psnr = 10 * np.log10(255.0**2 / np.mean((decoded - rendered) ** 2))
    assert psnr > 28.0


# ---------------------------------------------------------------------------------- determinism, cache
def test_same_seed_gives_identical_frames_other_seed_differs(small_dataset: Path, tmp_path: Path) -> None:
    again = write_synthetic_dataset(tmp_path / "again", seed=5, **SMALL)
    other = write_synthetic_dataset(tmp_path / "other", seed=6, **SMALL)
    rel = "SlideLeft/v_SlideLeft_g03_c01.avi"
    np.testing.assert_array_equal(_decode(small_dataset / "videos" / rel), _decode(again / "videos" / rel))
    assert not np.array_equal(_decode(small_dataset / "videos" / rel), _decode(other / "videos" / rel))
    # clips are written by several threads: every file is still byte for byte the same
    files = sorted(p.relative_to(again) for p in (again / "videos").rglob("*.avi"))
    assert files and all((again / f).read_bytes() == (small_dataset / f).read_bytes() for f in files)


def test_content_does_not_depend_on_other_classes(small_dataset: Path, tmp_path: Path) -> None:
    alone = write_synthetic_dataset(tmp_path / "alone", seed=5, **{**SMALL, "classes": ["StillBlock"]})
    rel = "StillBlock/v_StillBlock_g01_c01.avi"
    np.testing.assert_array_equal(_decode(small_dataset / "videos" / rel), _decode(alone / "videos" / rel))


def test_cache_hit_and_mismatch(small_dataset: Path, tmp_path: Path) -> None:
    video = small_dataset / "videos/SlideRight/v_SlideRight_g01_c01.avi"
    before = video.stat().st_mtime_ns
    assert write_synthetic_dataset(small_dataset, seed=5, **SMALL) == small_dataset
    assert video.stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="other parameters"):
        write_synthetic_dataset(small_dataset, seed=6, **SMALL)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="no synth.json"):
        write_synthetic_dataset(foreign, **SMALL)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": ["SlideRight", "Juggling"]}, "Juggling"),
        ({"classes": ["SlideRight", "SlideRight"]}, "repeat"),
        ({"videos_per_class": 1}, "at least 2"),
        ({"videos_per_class": 0}, "at least 2"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"size": 50}, "multiple of 16"),
        ({"num_frames": 4}, "num_frames"),
    ],
)
def test_bad_arguments_are_rejected(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_synthetic_dataset(tmp_path / "bad", **{**SMALL, **kwargs})
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("preset", ["actions", "motion"])
def test_interrupted_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, preset: str) -> None:
    import offnet.data.synth as synth
    from offnet.data.synth_motion import write_motion_dataset

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "_write_video", boom)  # both presets write through it
    with pytest.raises(KeyboardInterrupt):
        if preset == "actions":
            write_synthetic_dataset(tmp_path / "ds", **SMALL)
        else:
            write_motion_dataset(tmp_path / "ds", classes=["MoveRight", "MoveLeft"], videos_per_class=3, width=64,
                                 height=48, num_frames=12, progress=False)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------- the benchmark's point
def test_class_table() -> None:
    assert len(SYNTH_CLASSES) == len(set(SYNTH_CLASSES)) == 10
    assert reversal_pairs(SYNTH_CLASSES) == list(SYNTH_PAIRS)
    assert reversal_pairs(["SlideLeft", "Expand", "Shrink"]) == [("Expand", "Shrink")]


@pytest.mark.parametrize(("forward", "backward"), SYNTH_PAIRS)
def test_reversed_class_is_the_forward_process_played_backwards(forward: str, backward: str) -> None:
    a = render_clip(forward, rng=np.random.default_rng(11), size=64, num_frames=10)
    b = render_clip(backward, rng=np.random.default_rng(11), size=64, num_frames=10)
    np.testing.assert_array_equal(b, a[::-1])
    assert not np.array_equal(a[0], a[-1])  # it does move


def test_slides_move_visibly_in_opposite_directions() -> None:
    right = [_horizontal_motion(render_clip("SlideRight", rng=np.random.default_rng(s), num_frames=12))
             for s in range(6)]
    left = [_horizontal_motion(render_clip("SlideLeft", rng=np.random.default_rng(100 + s), num_frames=12))
            for s in range(6)]
    assert min(right) > 0.1 and max(left) < -0.1  # a linearised estimate: the sign is what counts


@pytest.mark.slow
@pytest.mark.parametrize(("forward", "backward"), [SYNTH_PAIRS[0], SYNTH_PAIRS[3]])
def test_frames_of_a_pair_are_identically_distributed(forward: str, backward: str) -> None:
    """Per frame index, frame statistics agree between the classes (within sampling error) — unlike motion."""
    n, frames = 60, 8

    def stats(name: str, offset: int) -> np.ndarray:
        out = []
        for s in range(n):
            clip = render_clip(name, rng=np.random.default_rng(offset + s), size=64, num_frames=frames)
            gray = clip.astype(np.float64).mean(axis=-1)  # (N, H, W)
            centre = gray[:, 16:48, 16:48]
            out.append(np.stack([gray.mean(axis=(1, 2)), centre.std(axis=(1, 2)),
                                 np.abs(np.diff(gray, axis=2)).mean(axis=(1, 2))], axis=1))  # (N, 3)
        return np.stack(out)  # (n, N, 3)

    a, b = stats(forward, 0), stats(backward, 10_000)
    se = np.sqrt(a.var(axis=0) / n + b.var(axis=0) / n)
    z = np.abs(a.mean(axis=0) - b.mean(axis=0)) / se  # (N, 3)
    assert z.max() < 4.5, z
    # The per-frame statistics are also stationary in time: first frame vs last frame agree.
    z_time = np.abs(a[:, 0].mean(axis=0) - a[:, -1].mean(axis=0)) / np.sqrt(2 * a[:, 0].var(axis=0) / n)
    assert z_time.max() < 4.5, z_time


def test_appearance_classes_differ_in_single_frames() -> None:
    block = render_clip("StillBlock", rng=np.random.default_rng(1)).astype(np.float64)
    ball = render_clip("WanderingBall", rng=np.random.default_rng(1)).astype(np.float64)
    # Red square vs blue-green disc: the frame colour balance alone tells them apart.
    assert (block[..., 0] - block[..., 2]).max() > 150 and (ball[..., 2] - ball[..., 0]).max() > 150


def test_objects_stay_inside_the_frame() -> None:
    from offnet.data.synth import _Scene

    rng = np.random.default_rng(0)
    scene = _Scene(rng=rng, bg_rng=rng, size=64, num_frames=16)
    shake = np.abs(np.concatenate([scene.shake_x, scene.shake_y])).max()
    for _ in range(200):
        half, cx, cy = scene.window(rng, (0.24, 0.38))
        assert shake + half < cx < 64 - half - shake and shake + half < cy < 64 - half - shake
