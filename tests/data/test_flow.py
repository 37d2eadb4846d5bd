"""Flow extraction: TV-L1 recovers motion, quantisation, resumability, failures, and the frame-folder rule."""

from __future__ import annotations

import os
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from offnet.data.check import check_dataset, count_frame_folder
from offnet.data.decode import clear_cache
from offnet.data.flow import (
    TMP_SUFFIX,
    compute_flow,
    dequantize_flow,
    extract_flow,
    extract_video,
    find_videos,
    parse_size,
    quantize_flow,
    resize_frame,
)

cv2.setNumThreads(1)


def texture(height: int = 48, width: int = 96, seed: int = 0) -> np.ndarray:
    """A smooth random grayscale texture, ``(H, W)`` uint8: TV-L1 needs gradients everywhere."""
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur((rng.random((height, width)) * 255).astype(np.uint8), (0, 0), 2)
    return cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX)


def shifted(tex: np.ndarray, k: int, step: int, width: int = 64) -> np.ndarray:
    """Frame ``k`` of the texture moving ``step`` px/frame to the right (+x), cropped to ``width``."""
    start = tex.shape[1] - width - 8 - k * step
    return tex[:, start : start + width]


def write_moving_video(path: Path, *, num_frames: int = 4, step: int = 2) -> Path:
    """A 64x48 near-lossless mpeg4 .avi of a texture moving ``step`` px per frame to the right."""
    tex = texture()
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=25, options={"qmin": "1", "qmax": "2"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for k in range(num_frames):
            rgb = np.repeat(shifted(tex, k, step)[..., None], 3, axis=2)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(autouse=True)
def _fresh_decode_cache():
    clear_cache()
    yield


@pytest.mark.parametrize("algorithm", ["tvl1", "farneback"])
@pytest.mark.parametrize("step", [2, -2])
def test_flow_recovers_direction_and_size(algorithm: str, step: int) -> None:
    tex = texture()
    flow = compute_flow(shifted(tex, 0, step), shifted(tex, 1, step), algorithm=algorithm)
    assert flow.shape == (48, 64, 2) and flow.dtype == np.float32
    inner = flow[8:-8, 8:-8]  # (32, 48, 2), away from the borders
    assert inner[..., 0].mean() == pytest.approx(step, abs=0.3)
    assert abs(inner[..., 1].mean()) < 0.3


@pytest.mark.parametrize(
    ("value", "q"),
    [(-20.0, 0), (-25.0, 0), (0.0, 128), (20.0, 255), (99.0, 255), (2.0, 140), (-2.0, 115)],
)
def test_quantize_flow(value: float, q: int) -> None:
    # round(255 * (v + 20) / 40); 0 -> 127.5 -> 128 (half to even happens to round up here)
    assert quantize_flow(np.array([value], dtype=np.float32), 20.0)[0] == q


def test_dequantize_inverts_within_one_step() -> None:
    v = np.linspace(-20, 20, 101, dtype=np.float32)
    half_step = 40 / 255 / 2
    assert np.abs(dequantize_flow(quantize_flow(v)) - v).max() <= half_step + 1e-4


@pytest.mark.parametrize(
    ("text", "size"),
    [(None, None), ("", None), ("256", 256), ("340x256", (340, 256)), ("340X256", (340, 256))],
)
def test_parse_size(text, size) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["0", "-5", "340x", "axb", "340x256x3"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_size(text)


@pytest.mark.parametrize(("size", "shape"), [(None, (48, 64)), (24, (24, 32)), ((40, 30), (30, 40))])
def test_resize_frame(size, shape) -> None:
    assert resize_frame(np.zeros((48, 64, 3), np.uint8), size).shape[:2] == shape


def test_extract_video_layout_and_motion(tmp_path: Path) -> None:
    video = write_moving_video(tmp_path / "v.avi", num_frames=4, step=2)
    n = extract_video(video, tmp_path / "out" / "v", algorithm="tvl1")
    folder = tmp_path / "out" / "v"
    assert n == 4
    counts = count_frame_folder(folder)
    assert (counts.rgb, counts.flow_x, counts.flow_y, counts.problems) == (4, 3, 3, ())
    fx = cv2.imread(str(folder / "flow_x_00002.jpg"), cv2.IMREAD_GRAYSCALE)
    fy = cv2.imread(str(folder / "flow_y_00002.jpg"), cv2.IMREAD_GRAYSCALE)
    assert fx.shape == (48, 64)
    assert dequantize_flow(fx[8:-8, 8:-8]).mean() == pytest.approx(2.0, abs=0.4)
    assert abs(dequantize_flow(fy[8:-8, 8:-8]).mean()) < 0.4
    assert not list((tmp_path / "out").glob(f".*{TMP_SUFFIX}"))


def test_extract_video_resize_and_no_rgb(tmp_path: Path) -> None:
    video = write_moving_video(tmp_path / "v.avi", num_frames=3)
    extract_video(video, tmp_path / "o", algorithm="farneback", rgb=False, size=(32, 24))
    names = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert names == ["flow_x_00001.jpg", "flow_x_00002.jpg", "flow_y_00001.jpg", "flow_y_00002.jpg"]
    assert cv2.imread(str(tmp_path / "o" / "flow_x_00001.jpg")).shape[:2] == (24, 32)


def test_frames_only_extraction_writes_rgb_and_no_flow(tmp_path: Path) -> None:
    """``algorithm="none"`` (``extract-flow --algorithm none``): decode once into RGB frame folders."""
    write_moving_video(tmp_path / "videos" / "A" / "v.avi", num_frames=5)
    summary = extract_flow(tmp_path / "videos", tmp_path / "frames", algorithm="none", size=(32, 24))
    assert (summary.done, summary.failed, summary.frames) == (1, [], 5)
    folder = tmp_path / "frames" / "A" / "v"
    assert sorted(p.name for p in folder.iterdir()) == [f"img_{i:05d}.jpg" for i in range(1, 6)]
    assert cv2.imread(str(folder / "img_00003.jpg")).shape == (24, 32, 3)
    counts = count_frame_folder(folder)
    assert (counts.rgb, counts.flow_x, counts.flow_y) == (5, 0, 0)
    with pytest.raises(ValueError, match="needs rgb=True"):
        extract_flow(tmp_path / "videos", tmp_path / "other", algorithm="none", rgb=False)
    assert not (tmp_path / "other").exists()


def _dataset(root: Path) -> Path:
    """Videos under ROOT/videos/<Class>/ (one non-ASCII name) and UCF-style split files."""
    write_moving_video(root / "videos" / "Right" / "v_Right_g01_c01.avi", num_frames=3, step=2)
    write_moving_video(root / "videos" / "Ünïcödé" / "v_Ünïcödé_g01_c01.avi", num_frames=3, step=-2)
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 Right\n2 Ünïcödé\n")
    (lists / "trainlist01.txt").write_text("Right/v_Right_g01_c01.avi 1\n")
    (lists / "testlist01.txt").write_text("Ünïcödé/v_Ünïcödé_g01_c01.avi\n")
    return root


def test_extract_flow_resumes_and_reports_failures(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ucf")
    videos, out = root / "videos", tmp_path / "frames"
    (videos / "Right" / "v_Right_g02_c01.avi").write_text("not a video\n")
    # a killed run left an unfinished folder: it must not count as done, and is cleaned up
    leftover = out / "Right" / f".v_Right_g01_c01{TMP_SUFFIX}"
    leftover.mkdir(parents=True)
    (leftover / "img_00001.jpg").write_bytes(b"partial")

    first = extract_flow(videos, out, algorithm="farneback")
    assert (first.done, first.skipped, first.cleaned, first.frames) == (2, 0, 1, 6)
    assert [f.video.name for f in first.failed] == ["v_Right_g02_c01.avi"]
    assert "v_Right_g02_c01.avi" in first.failed[0].error
    assert not first.ok and first.seconds > 0
    assert not leftover.exists()
    assert not (out / "Right" / "v_Right_g02_c01").exists()  # a failed video leaves no folder
    assert (out / "Ünïcödé" / "v_Ünïcödé_g01_c01" / "flow_y_00002.jpg").is_file()

    mtime = os.stat(out / "Right" / "v_Right_g01_c01" / "img_00001.jpg").st_mtime_ns
    second = extract_flow(videos, out, algorithm="farneback")
    assert (second.done, second.skipped, len(second.failed)) == (0, 2, 1)
    assert os.stat(out / "Right" / "v_Right_g01_c01" / "img_00001.jpg").st_mtime_ns == mtime


def test_extract_flow_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="video root not found"):
        extract_flow(tmp_path / "absent", tmp_path / "out")
    with pytest.raises(ValueError, match="lies inside --root"):
        extract_flow(tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="unknown flow algorithm"):
        extract_flow(tmp_path, tmp_path / "out", algorithm="brox")


def test_find_videos_skips_hidden_and_non_videos(tmp_path: Path) -> None:
    for rel in ["b/x.AVI", "a/y.mp4", "a/notes.txt", ".hidden/z.avi", "a/.w.avi"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in find_videos(tmp_path)] == ["a/y.mp4", "b/x.AVI"]


def test_check_accepts_extraction_and_catches_deleted_flow(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ucf")
    out = tmp_path / "frames"
    assert extract_flow(root / "videos", out, algorithm="tvl1").ok
    report = check_dataset("ucf101", root, frames_root=out, min_frames=2)
    assert report.bad == [] and report.ok("fail")
    assert [r.num_frames for s in report.subsets.values() for r in s.good] == [2, 2]

    (out / "Ünïcödé" / "v_Ünïcödé_g01_c01" / "flow_x_00002.jpg").unlink()
    report = check_dataset("ucf101", root, frames_root=out, min_frames=2)
    assert [(b.kind, b.record.path.name) for b in report.bad] == [("frame_mismatch", "v_Ünïcödé_g01_c01")]
    assert "1 flow_x but 2 flow_y" in report.bad[0].message
    assert not report.ok("fail")


@pytest.mark.slow
def test_extract_flow_in_worker_processes(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ucf")
    summary = extract_flow(root / "videos", tmp_path / "frames", algorithm="farneback", workers=2)
    assert (summary.done, summary.failed) == (2, [])
    assert count_frame_folder(tmp_path / "frames" / "Right" / "v_Right_g01_c01").problems == ()


@pytest.mark.slow
def test_ctrl_c_stops_extraction_in_worker_processes(tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C after the first finished video: the queued videos are not extracted (leaving the pool used to
    wait for all of them) and a new run resumes the rest."""
    import offnet.progress

    for i in range(16):
        write_moving_video(tmp_path / "videos" / "A" / f"v{i:02d}.avi", num_frames=24, step=1)

    class CtrlCBar:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def update(self, n: int = 1) -> None:
            raise KeyboardInterrupt

        def close(self) -> None:
            pass

    monkeypatch.setattr(offnet.progress, "progress_bar", CtrlCBar)
    out = tmp_path / "frames"
    with pytest.raises(KeyboardInterrupt):
        extract_flow(tmp_path / "videos", out, algorithm="tvl1", workers=2)
    done = [p for p in (out / "A").iterdir() if not p.name.startswith(".")]
    # the first, the ones running or already handed to a worker, and the few finished meanwhile; not all 16
    assert 1 <= len(done) <= 8
    monkeypatch.undo()
    summary = extract_flow(tmp_path / "videos", out, algorithm="tvl1", workers=2, progress=False)
    assert summary.ok and summary.done + summary.skipped == 16
