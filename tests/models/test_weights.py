"""Loading weights from local files: round trips, torchvision files, cross-modality init, bad files."""

import json
import logging

import pytest
import torch

import offnet
from offnet.models import load_state_dict_checked, read_state_dict
from offnet.models.resnet import resnet18


def test_state_dict_round_trip(tmp_path):
    torch.manual_seed(0)
    model = offnet.create_model("off", num_classes=4, backbone="tiny").eval()
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    other = offnet.create_model("off", num_classes=4, backbone="tiny").eval()
    missing, unexpected = load_state_dict_checked(other, read_state_dict(path))
    assert missing == [] and unexpected == []
    x = torch.randn(1, 3, 3, 64, 64)
    a, b = model(x), other(x)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_torchvision_resnet_checkpoint_loads_and_reports_head_keys(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="offnet")
    sd = resnet18().state_dict()
    sd["fc.weight"] = torch.zeros(1000, 512)
    sd["fc.bias"] = torch.zeros(1000)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(sd, path)
    model = offnet.create_model("tsn", num_classes=4, backbone="resnet18", pretrained=path)
    assert torch.equal(model.backbone.conv1.weight, sd["conv1.weight"])
    assert "fc.weight" in caplog.text


def test_cross_modality_init_averages_rgb_first_conv(tmp_path):
    sd = resnet18().state_dict()
    path = tmp_path / "rgb.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    model = offnet.create_model("tsn", num_classes=4, backbone="resnet18", modality="flow", pretrained=path)
    w = model.backbone.conv1.weight
    assert w.shape[1] == 10
    assert torch.allclose(w[:, 3], sd["conv1.weight"].mean(dim=1))


def test_missing_and_corrupt_and_mismatched_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        offnet.create_model("tsn", num_classes=4, backbone="tiny", pretrained=tmp_path / "nothere.pth")
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth"):
        offnet.create_model("tsn", num_classes=4, backbone="tiny", pretrained=bad)
    truncated = tmp_path / "truncated.pth"
    torch.save(resnet18().state_dict(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated.pth"):
        read_state_dict(truncated)
    not_sd = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_sd)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        read_state_dict(not_sd)
    wrong = tmp_path / "wrong.pth"
    sd = resnet18().state_dict()
    sd["layer1.0.conv1.weight"] = torch.zeros(32, 64, 3, 3)
    torch.save(sd, wrong)
    with pytest.raises(ValueError, match=r"layer1\.0\.conv1\.weight.*\(64, 64, 3, 3\).*\(32, 64, 3, 3\)"):
        offnet.create_model("tsn", num_classes=4, backbone="resnet18", pretrained=wrong)


class Evil:
    """Any class: unpickling it would run arbitrary code paths."""


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, path)
    with pytest.raises(ValueError, match="evil.pth"):
        read_state_dict(path)


def test_head_mismatch_can_be_skipped_for_finetuning():
    src = offnet.create_model("tsn", num_classes=4, backbone="tiny")
    dst = offnet.create_model("tsn", num_classes=9, backbone="tiny")
    with pytest.raises(ValueError, match="shape mismatch"):
        load_state_dict_checked(dst, src.state_dict())
    missing, _ = load_state_dict_checked(dst, src.state_dict(), strict_shapes=False)
    assert missing == ["heads.rgb.fc.bias", "heads.rgb.fc.weight"]


def _pretrainedmodels_bninception_keys() -> list[str]:
    """The key names of the ``pretrainedmodels`` BN-Inception ImageNet file (tsn-pytorch, TSM and forks):
    Caffe layer names, ``<conv>.weight/bias`` and ``<conv>_bn.weight/bias/running_mean/running_var`` (no
    ``num_batches_tracked``: the file predates it), and ``last_linear`` for the ImageNet classifier."""
    convs = ["conv1_7x7_s2", "conv2_3x3_reduce", "conv2_3x3"]
    for block in ("3a", "3b", "3c", "4a", "4b", "4c", "4d", "4e", "5a", "5b"):
        reducing = block in ("3c", "4e")  # stride-2 modules: no 1x1 branch, max-pool without projection
        branches = ([] if reducing else ["1x1"]) + ["3x3_reduce", "3x3", "double_3x3_reduce", "double_3x3_1",
                                                    "double_3x3_2"] + ([] if reducing else ["pool_proj"])
        convs += [f"inception_{block}_{b}" for b in branches]
    keys = []
    for conv in convs:
        keys += [f"{conv}.weight", f"{conv}.bias"]
        keys += [f"{conv}_bn.{p}" for p in ("weight", "bias", "running_mean", "running_var")]
    return keys + ["last_linear.weight", "last_linear.bias"]


def test_pretrainedmodels_bninception_file_loads_as_it_is(tmp_path, caplog):
    from offnet.models.bninception import bninception

    net = bninception()
    own = net.state_dict()
    keys = _pretrainedmodels_bninception_keys()
    assert len(keys) == 6 * 69 + 2
    torch.manual_seed(0)
    sd = {k: torch.randn(own[k].shape) for k in keys if k in own}
    assert len(sd) == len(keys) - 2, sorted(set(keys) - set(own))  # every layer name exists in offnet
    sd["last_linear.weight"], sd["last_linear.bias"] = torch.randn(1000, 1024), torch.randn(1000)
    path = tmp_path / "bn_inception-239d2248.pth"
    torch.save(sd, path)
    caplog.set_level(logging.INFO, logger="offnet")
    model = offnet.create_model("off", num_classes=5, backbone="bninception", pretrained=path)
    assert torch.equal(model.backbone.inception_5b_pool_proj.weight, sd["inception_5b_pool_proj.weight"])
    assert torch.equal(model.backbone.conv1_7x7_s2_bn.running_var, sd["conv1_7x7_s2_bn.running_var"])
    assert "missing" not in caplog.text  # num_batches_tracked is not a weight: its absence is no loss
    assert "last_linear.weight" in caplog.text  # reported as not used by the backbone


def _pretrainedmodels_file(path):
    from offnet.models.bninception import bninception

    own = bninception().state_dict()
    torch.manual_seed(0)
    sd = {k: torch.randn(own[k].shape) for k in _pretrainedmodels_bninception_keys() if k in own}
    sd["last_linear.weight"], sd["last_linear.bias"] = torch.randn(1000, 1024), torch.randn(1000)
    torch.save(sd, path)
    return sd


def test_weights_bring_their_preprocessing_and_checkpoints_keep_it(tmp_path):
    """The pretrainedmodels BN-Inception file expects mean [104, 117, 128], not the Caffe models' [104, 117, 123]."""
    from offnet.engine.checkpoint import build_model_from_checkpoint, save_checkpoint

    path = tmp_path / "bn_inception-52deb4733.pth"
    _pretrainedmodels_file(path)
    model = offnet.create_model("tsn", num_classes=3, backbone="bninception", pretrained=path)
    assert model.input_spec.mean == (104.0, 117.0, 128.0) and model.input_spec.bgr and model.input_spec.scale255
    assert offnet.create_model("tsn", num_classes=3, backbone="bninception").input_spec.mean == (104.0, 117.0, 123.0)
    # a checkpoint rebuilds the model with the preprocessing it was trained with, without the weights file
    save_checkpoint(tmp_path / "run" / "stage1" / "last.pt",
                    {"model_config": model.config, "model": model.state_dict(), "stage": 1})
    rebuilt, _ = build_model_from_checkpoint(tmp_path / "run" / "stage1" / "last.pt")
    assert rebuilt.input_spec == model.input_spec


def test_preprocessing_stored_in_the_file_or_a_sidecar_wins(tmp_path):
    from offnet.models.weights import weights_preprocessing

    net = offnet.create_model("tsn", num_classes=2, backbone="tiny")
    sd = {k.removeprefix("backbone."): v for k, v in net.state_dict().items() if k.startswith("backbone.")}
    stored = tmp_path / "stored.pth"
    torch.save({"state_dict": sd, "preprocessing": {"input_space": "BGR", "input_range": [0, 255],
                                                    "mean": [1, 2, 3], "std": [4, 5, 6]}}, stored)
    model = offnet.create_model("tsn", num_classes=2, backbone="tiny", pretrained=stored)
    assert (model.input_spec.mean, model.input_spec.std, model.input_spec.bgr) == ((1, 2, 3), (4, 5, 6), True)
    plain = tmp_path / "plain.pth"
    torch.save(sd, plain)
    base = offnet.create_model("tsn", num_classes=2, backbone="tiny").input_spec
    assert weights_preprocessing(plain, base)[0] == base  # nothing said: the backbone's default
    (tmp_path / "plain.pth.json").write_text('{"input_space": "RGB", "input_range": [0, 1], "mean": [0.5, 0.5, 0.5]}')
    spec, where = weights_preprocessing(plain, base)
    assert spec.mean == (0.5, 0.5, 0.5) and not spec.bgr and not spec.scale255 and "sidecar" in where
    (tmp_path / "plain.pth.json").write_text('{"mean": [1, 2]}')
    with pytest.raises(ValueError, match="mean must be three finite numbers"):
        weights_preprocessing(plain, base)
    (tmp_path / "plain.pth.json").write_text('{"input_space": "HSV"}')
    with pytest.raises(ValueError, match="input_space must be RGB or BGR"):
        offnet.create_model("tsn", num_classes=2, backbone="tiny", pretrained=plain)


def test_weights_check_lists_missing_unexpected_and_misshaped_keys(tmp_path, capsys):
    from offnet.cli import main

    path = tmp_path / "bn_inception-52deb4733.pth"
    sd = _pretrainedmodels_file(path)
    code = main(["weights", "check", str(path), "--backbone", "bninception", "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "missing from the file (left at random initialisation): 0" in out
    assert "not used by the backbone (e.g. the ImageNet classifier): 2" in out and "last_linear.weight" in out
    assert "mean [104.0, 117.0, 128.0]" in out and "pretrainedmodels" in out and "OK:" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ok"] and report["spec"]["mean"] == [104.0, 117.0, 128.0]
    # flow: the RGB first conv is adapted, not refused
    assert main(["weights", "check", str(path), "--backbone", "bninception", "--modality", "flow"]) == 0
    assert "conv1_7x7_s2.weight: (64, 3, 7, 7) -> (64, 10, 7, 7) (cross-modality init)" in capsys.readouterr().out
    # a broken file: one tensor missing, one of the wrong shape
    del sd["inception_5b_pool_proj.bias"]
    sd["inception_3a_1x1.weight"] = torch.zeros(1, 1, 1, 1)
    torch.save(sd, path)
    assert main(["weights", "check", str(path), "--backbone", "bninception"]) == 1
    out = capsys.readouterr().out
    assert "missing from the file (left at random initialisation): 1" in out and "inception_5b_pool_proj.bias" in out
    assert "inception_3a_1x1.weight: file (1, 1, 1, 1) vs backbone (64, 192, 1, 1)" in out and "NOT OK" in out
    assert main(["weights", "check", str(tmp_path / "none.pth"), "--backbone", "bninception"]) == 1
    assert "weights file not found" in capsys.readouterr().err
