"""offnet predict / visualize on a checkpoint built in the test and a generated video."""

import json

import numpy as np
import pytest
import torch
from predict_fixtures import tiny_model, write_clip

import offnet
from offnet.cli import main
from offnet.engine.checkpoint import save_checkpoint
from offnet.tools.predict import Predictor

CLASSES = ["Left", "Right", "Still"]


def _video(path, frames=20, size=64):
    return write_clip(path, frames=frames, size=size)


@pytest.fixture()
def checkpoint(tmp_path):
    torch.manual_seed(0)
    model = offnet.create_model("off", num_classes=3, backbone="tiny")
    path = tmp_path / "run" / "stage2" / "best.pt"
    save_checkpoint(path, {
        "model_config": model.config, "model": model.state_dict(), "class_names": CLASSES, "stage": 2,
        "step": 1, "config": {"data": {"sampler": "off", "test_segments": 4, "size": 64, "flip": False}},
    })
    return path


def test_predictor_scores_every_level_and_ranks_classes(checkpoint, tmp_path):
    video = _video(tmp_path / "clip.avi")
    predictor = Predictor(tmp_path / "run")
    assert predictor.checkpoint == checkpoint and predictor.segments == 4
    (pred,) = predictor.predict([video])
    assert set(pred.levels) == {"rgb", "off28", "off14", "off7"}
    assert np.isclose(pred.probabilities.sum(), 1.0, atol=1e-5)
    top = pred.top(3)
    assert sorted(name for name, _ in top) == sorted(CLASSES)
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    clip = predictor.clip(video)
    assert clip.shape == (4, 3, 64, 64)  # the run's 4 test segments


def test_predictor_scores_with_one_optimised_copy_and_matches_the_plain_forward(checkpoint, tmp_path):
    from offnet.engine.evaluate import score_clips

    video = _video(tmp_path / "clip.avi")
    predictor = Predictor(tmp_path / "run")
    (first,) = predictor.predict([video])
    fast = predictor.inference_model("cpu")
    (second,) = predictor.predict([video])
    assert predictor.inference_model("cpu") is fast  # made once, reused by later calls
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())  # folded
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in predictor.model.modules())  # the model is untouched
    np.testing.assert_array_equal(first.probabilities, second.probabilities)
    with torch.inference_mode():  # the plain eval-mode forward of the same clip gives the same scores
        plain = score_clips(predictor.model.eval(), predictor.clip(video)[None, None])
    for level, logits in plain.items():
        np.testing.assert_allclose(first.levels[level], logits[0].numpy(), rtol=1e-4, atol=1e-5)
    unoptimised = Predictor(tmp_path / "run", optimize=False)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in unoptimised.inference_model("cpu").modules())
    (third,) = unoptimised.predict([video])
    np.testing.assert_allclose(third.probabilities, first.probabilities, rtol=1e-4, atol=1e-6)


def test_predict_and_visualize_cli(checkpoint, tmp_path, capsys):
    video = _video(tmp_path / "clip.avi")
    out = tmp_path / "pred.json"
    assert main(["predict", str(checkpoint), str(video), "--top", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "clip.avi" in printed and printed.count("%") == 2
    saved = json.loads(out.read_text())
    assert saved["class_names"] == CLASSES and len(saved["predictions"][0]["top"]) == 2
    png = tmp_path / "vis.png"
    assert main(["visualize", str(checkpoint), str(video), "--out", str(png), "--pairs", "2"]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_predict_names_missing_and_broken_videos(checkpoint, tmp_path, capsys):
    assert main(["predict", str(checkpoint), str(tmp_path / "nope.avi")]) == 1
    assert "nope.avi" in capsys.readouterr().err
    broken = tmp_path / "broken.avi"
    broken.write_text("not a video")
    assert main(["predict", str(checkpoint), str(broken)]) == 1
    assert "broken.avi" in capsys.readouterr().err


def test_probabilities_are_the_softmax_of_the_fused_score(tmp_path):
    """The paper's fusion: backbone level + final level, summed; not the final level alone."""
    torch.manual_seed(0)
    model = offnet.create_model("off", num_classes=3, backbone="tiny")
    with torch.no_grad():  # levels that disagree: the rgb head leans to class 0, off7 to class 2
        model.heads["rgb"].fc.bias.copy_(torch.tensor([2.0, 0.0, -2.0]))
        model.subnet.heads["7"].fc.bias.copy_(torch.tensor([-1.0, 0.0, 1.0]))
    save_checkpoint(tmp_path / "best.pt", {
        "model_config": model.config, "model": model.state_dict(), "class_names": CLASSES, "stage": 2,
        "step": 1, "config": {"data": {"sampler": "off", "test_segments": 4, "size": 64, "flip": False}},
    })
    (pred,) = Predictor(tmp_path / "best.pt").predict([_video(tmp_path / "clip.avi")])
    fused = torch.from_numpy(pred.levels["rgb"] + pred.levels["off7"]).double().softmax(0).numpy()
    final_only = torch.from_numpy(pred.levels["off7"]).double().softmax(0).numpy()
    assert not np.allclose(fused, final_only, atol=1e-3)
    assert np.allclose(pred.probabilities, fused, atol=1e-5)


def test_predictor_scores_mirrored_crops_under_the_runs_flip_map(tmp_path, capsys):
    """--crops 2 / 10 of a run trained with data.flip_map: the mirrored crops' Left and Right scores swap back
    (same weights with plain flips score differently); a run trained without flips refuses mirrored crops."""
    video = _video(tmp_path / "clip.avi")
    model = tiny_model("off", classes=3)  # spread heads: mirrored and unmirrored scores differ visibly
    runs = {}
    for name, data in {"mapped": {"flip": True, "flip_map": "auto"}, "plain": {"flip": True},
                       "noflip": {"flip": False}}.items():
        runs[name] = tmp_path / name / "best.pt"
        save_checkpoint(runs[name], {
            "model_config": model.config, "model": model.state_dict(), "class_names": CLASSES, "stage": 2,
            "step": 1, "config": {"data": {"sampler": "off", "test_segments": 4, "size": 64, **data}},
        })
    mapped, plain = Predictor(runs["mapped"], crops=2), Predictor(runs["plain"], crops=2)
    assert mapped.flip_labels == (1, 0, 2) and plain.flip_labels is None
    assert Predictor(runs["mapped"], crops=1).flip_labels is None
    (a,), (b,) = mapped.predict([video]), plain.predict([video])
    assert not np.allclose(a.levels["off7"], b.levels["off7"], atol=1e-4)
    np.testing.assert_allclose(a.levels["off7"][2], b.levels["off7"][2], atol=1e-6)  # "Still" is its own mirror
    with pytest.raises(ValueError, match="2-crop testing includes mirrored crops"):
        Predictor(runs["noflip"], crops=2).predict([video])
    assert main(["predict", str(runs["mapped"]), str(video), "--crops", "2", "--device", "cpu"]) == 0
    assert "Left" in capsys.readouterr().out
