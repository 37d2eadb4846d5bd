"""``offnet.register_backbone``: a backbone of one's own in create_model, configs, checkpoints and the CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

import offnet
from offnet.cli import main
from offnet.config import load_config
from offnet.models import BACKBONES
from offnet.models.backbone import IMAGENET_SPEC, Backbone

sys.path.insert(0, str(Path(__file__).parent / "engine"))  # tests/engine is not a package
from eval_fixtures import write_ucf_mini  # noqa: E402

torch.set_num_threads(1)

NAME = "test_pyramid"


class Pyramid(Backbone):
    """Four stride-2 convs: taps ``p4`` (stride 4), ``p8`` (8), ``p16`` (16); final map = ``p16``."""

    subnet_defaults = (8, 0.125)

    def __init__(self, *, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 8, 3, stride=2, padding=1)
        self.blocks = nn.ModuleDict({
            name: nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())
            for name, c_in, c_out in (("p4", 8, 12), ("p8", 12, 16), ("p16", 16, 20))
        })
        self.tap_names = {28: ("p4",), 14: ("p8",), 7: ("p16",)}
        self.tap_channels = {"p4": 12, "p8": 16, "p16": 20}
        self.feature_dim = 20
        self.input_spec = IMAGENET_SPEC
        self.first_conv = "stem"

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        x = self.stem(x)  # (N, 8, H/2, W/2)
        taps = {}
        for name, block in self.blocks.items():
            x = block(x)
            taps[name] = x
        return taps, x


def pyramid(*, in_channels: int = 3) -> Pyramid:
    return Pyramid(in_channels=in_channels)


@pytest.fixture
def registered():
    offnet.register_backbone(NAME, pyramid, 64)
    yield NAME
    BACKBONES.pop(NAME, None)


def test_registered_backbone_builds_every_architecture_and_modality(registered):
    assert registered in offnet.list_backbones()
    for arch in offnet.list_models():
        for modality, c in (("rgb", 3), ("flow", 10)):
            model = offnet.create_model(arch, num_classes=4, modality=modality, backbone=registered, dropout=0.0)
            scores = model(torch.randn(2, 3, c, 64, 64))  # (B, T, C, H, W)
            assert all(v.shape == (2, 4) for v in scores.values())
            assert model.config["backbone"] == registered and model.input_spec.size == 64


def test_checkpoint_of_a_registered_backbone_rebuilds(registered, tmp_path):
    from offnet.engine.checkpoint import build_model_from_checkpoint, save_checkpoint

    model = offnet.create_model("off", num_classes=3, backbone=registered).eval()
    save_checkpoint(tmp_path / "best.pt", {"model_config": model.config, "model": model.state_dict(),
                                           "class_names": ["a", "b", "c"], "config": {}, "stage": 3, "step": 1})
    rebuilt, _ = build_model_from_checkpoint(tmp_path / "best.pt")
    x = torch.randn(1, 3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x)["off7"], model(x)["off7"])
    BACKBONES.pop(registered)
    with pytest.raises(ValueError, match="unknown backbone 'test_pyramid'.*register_backbone"):
        build_model_from_checkpoint(tmp_path / "best.pt")


def test_registered_backbone_trains_and_tests_through_the_cli(registered, tmp_path, capsys):
    data = write_ucf_mini(tmp_path / "data", videos_per_class=3, num_frames=12)
    config = {
        "name": "pyramid", "stages": [3],
        "model": {"name": "off", "backbone": registered, "dropout": 0.0, "partial_bn": False},
        "data": {"dataset": "ucf101", "root": str(data), "num_segments": 3, "test_segments": 3, "size": 56,
                 "scales": [0.875], "num_workers": 0, "val_fraction": 0.0, "on_bad_video": "fail"},
        "optim": {"name": "adamw"},
        "train": {"batch_size": 2, "device": "cpu", "tensorboard": False, "checkpoint_every": 2, "val_every": 2},
        "stage3": {"lr": 0.001, "iterations": 2, "schedule": "constant"},
    }
    path = tmp_path / "pyramid.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["train", str(path), "--run-dir", str(run), "--no-progress"]) == 0
    assert (run / "stage3" / "last.pt").is_file()
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["backbone"] == registered
    out = tmp_path / "test"
    assert main(["test", str(run), "--out", str(out), "--workers", "0", "--device", "cpu", "--no-progress"]) == 0
    assert "off7" in capsys.readouterr().out
    assert (out / "metrics.json").is_file() and (out / "scores.npz").is_file()


def test_unknown_backbone_is_refused_before_training(tmp_path, capsys):
    config = str(Path(__file__).resolve().parents[1] / "configs" / "off_tiny_synth_rgb.yaml")
    assert main(["train", config, "--print-config", "model.backbone=pyramidd"]) == 0  # registered later, maybe
    capsys.readouterr()
    code = main(["train", config, "model.backbone=pyramidd", f"data.root={tmp_path / 'd'}", "--run-dir",
                 str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1 and "model.backbone: unknown backbone 'pyramidd'" in err
    assert "bninception, resnet18, resnet50, tiny" in err and "register_backbone" in err
    assert not (tmp_path / "r").exists() and not (tmp_path / "d").exists()
    with pytest.raises(ValueError, match="model.backbone is empty"):
        load_config(None, ['model.backbone=" "'])


class _NoScale14(Pyramid):
    def __init__(self, *, in_channels: int = 3) -> None:
        super().__init__(in_channels=in_channels)
        self.tap_names = {28: ("p4",), 7: ("p16",)}


class _BadFirstConv(Pyramid):
    def __init__(self, *, in_channels: int = 3) -> None:
        super().__init__(in_channels=in_channels)
        self.first_conv = "conv1"


class _MissingChannels(Pyramid):
    def __init__(self, *, in_channels: int = 3) -> None:
        super().__init__(in_channels=in_channels)
        self.tap_channels = {"p4": 12, "p8": 16}


@pytest.mark.parametrize("factory, message", [
    (lambda *, in_channels: nn.Conv2d(in_channels, 4, 3), "returned Conv2d, not an offnet.models.Backbone"),
    (_NoScale14, r"tap_names must map each OFF scale \[28, 14, 7\]"),
    (_BadFirstConv, "first_conv='conv1' names no parameter 'conv1.weight'"),
    (_MissingChannels, r"tap_channels\['p16'\] must be a positive integer"),
    (lambda *, in_channels: Pyramid(in_channels=3), r"asked for in_channels=10"),
])
def test_a_factory_that_breaks_the_interface_is_named(factory, message):
    offnet.register_backbone("broken", factory, 64)
    try:
        with pytest.raises(ValueError, match=f"backbone 'broken': .*{message}"):
            offnet.create_model("off", num_classes=2, modality="flow", backbone="broken")
    finally:
        BACKBONES.pop("broken")


@pytest.mark.parametrize("name, factory, size, message", [
    ("resnet50", pyramid, 224, "built-in backbone and cannot be replaced"),
    ("timm:mine", pyramid, 224, "reserved for timm models"),
    ("", pyramid, 224, "non-empty string without spaces"),
    ("my net", pyramid, 224, "non-empty string without spaces"),
    ("mine", "pyramid", 224, "factory must be callable"),
    ("mine", pyramid, 16, "default_size must be an integer >= 32"),
    ("mine", pyramid, 64.0, "default_size must be an integer >= 32"),
])
def test_register_backbone_refuses_bad_arguments(name, factory, size, message):
    with pytest.raises(ValueError, match=message):
        offnet.register_backbone(name, factory, size)
    assert name not in BACKBONES or name == "resnet50"


def test_registering_again_needs_overwrite(registered):
    offnet.register_backbone(registered, pyramid, 64)  # the same factory again: harmless
    with pytest.raises(ValueError, match="already registered with .*pyramid; pass overwrite=True"):
        offnet.register_backbone(registered, _NoScale14, 64)
    offnet.register_backbone(registered, _BadFirstConv, 96, overwrite=True)
    assert BACKBONES[registered] == (_BadFirstConv, 96)
