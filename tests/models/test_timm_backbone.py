"""``backbone="timm:NAME"`` against a stand-in for timm's ``features_only`` interface.

timm cannot be installed beside the CPU PyTorch build used here, so a fake ``timm`` module goes into
``sys.modules``. It implements what timm documents for ``timm.create_model(name, pretrained=…,
features_only=True, in_chans=…, out_indices=…)``: a module whose forward returns a list of feature maps,
with ``feature_info.channels()`` / ``.reduction()`` / ``.module_name()`` describing the maps selected by
``out_indices`` (``feature_info.out_indices``), ``pretrained_cfg`` with ``mean``/``std``/``input_size``,
and ``RuntimeError("Unknown model (NAME)")`` for a name it does not know.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn

import offnet
from offnet._optional import MissingDependency
from offnet.models.timm_backbone import TimmBackbone, choose_feature_maps

torch.set_num_threads(1)


class FakeFeatureInfo:
    """timm's FeatureInfo: per-map dicts; accessors return the values at ``out_indices``."""

    def __init__(self, info: list[dict], out_indices: tuple[int, ...]) -> None:
        self.info = info
        self.out_indices = out_indices

    def get(self, key: str, idx=None):
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        return [self.info[i][key] for i in idx] if isinstance(idx, list | tuple) else self.info[idx][key]

    def channels(self, idx=None):
        return self.get("num_chs", idx)

    def reduction(self, idx=None):
        return self.get("reduction", idx)

    def module_name(self, idx=None):
        return self.get("module", idx)


class FakeFeatureNet(nn.Module):
    """A stack of stride-s convs; forward returns the maps at ``out_indices`` (NCHW, or NHWC if asked)."""

    def __init__(self, stages: list[tuple[str, int, int]], *, in_chans: int, out_indices: tuple[int, ...],
                 nhwc: bool = False, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), size: int = 96) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        info, prev_c, prev_r = [], in_chans, 1
        for module, channels, reduction in stages:
            stride = reduction // prev_r
            self.convs.append(nn.Conv2d(prev_c, channels, 3, stride=stride, padding=1))
            info.append({"module": module, "num_chs": channels, "reduction": reduction})
            prev_c, prev_r = channels, reduction
        self.out_indices = out_indices
        self.nhwc = nhwc
        self.feature_info = FakeFeatureInfo(info, out_indices)
        self.pretrained_cfg = {"mean": mean, "std": std, "input_size": (3, size, size), "first_conv": "convs.0"}
        self.calls: list[tuple] = []

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, conv in enumerate(self.convs[: max(self.out_indices) + 1]):
            x = torch.relu(conv(x))
            if i in self.out_indices:
                out.append(x.permute(0, 2, 3, 1) if self.nhwc else x)
        return out


MODELS = {
    "fake_resnet": dict(stages=[("act1", 8, 2), ("layer1", 12, 4), ("layer2", 16, 8), ("layer3", 20, 16),
                                ("layer4", 24, 32)]),
    "fake_convnext": dict(stages=[("stages.0", 8, 4), ("stages.1", 12, 8), ("stages.2", 16, 16),
                                  ("stages.3", 20, 32)], nhwc=True),
    "fake_vit": dict(stages=[(f"blocks.{i}", 16, 16) for i in range(4)]),
    "fake_deep": dict(stages=[("s1", 8, 2), ("s2", 8, 4), ("s3", 12, 8), ("s4", 16, 16), ("s5", 20, 32),
                              ("s6", 24, 64)]),
    "fake_two": dict(stages=[("s1", 8, 8), ("s2", 8, 16)]),
}


def make_fake_timm(calls: list[dict]) -> types.ModuleType:
    timm = types.ModuleType("timm")

    def create_model(model_name: str, pretrained: bool = False, *, features_only: bool = False, in_chans: int = 3,
                     out_indices: tuple[int, ...] | None = None, **kwargs) -> nn.Module:
        calls.append(dict(name=model_name, pretrained=pretrained, features_only=features_only, in_chans=in_chans,
                          out_indices=out_indices))
        if model_name not in MODELS:
            raise RuntimeError(f"Unknown model ({model_name})")
        assert features_only
        spec = MODELS[model_name]
        indices = tuple(out_indices) if out_indices is not None else tuple(range(len(spec["stages"])))
        return FakeFeatureNet(spec["stages"], in_chans=in_chans, out_indices=indices, nhwc=spec.get("nhwc", False))

    timm.create_model = create_model
    return timm


@pytest.fixture
def timm_calls(monkeypatch) -> list[dict]:
    calls: list[dict] = []
    monkeypatch.setitem(sys.modules, "timm", make_fake_timm(calls))
    return calls


@pytest.mark.parametrize("reductions, expected", [
    ([2, 4, 8, 16, 32], (2, 3, 4)),
    ([4, 8, 16, 32], (1, 2, 3)),
    ([2, 4, 8, 16, 32, 64], (2, 3, 4)),
    ([16] * 12, (9, 10, 11)),           # ViT: nearest = 16 everywhere; deepest blocks
    ([4, 8, 16], (0, 1, 2)),             # one octave finer, as the tiny backbone
    ([2, 4, 8, 16, 16, 32], (2, 4, 5)),  # a tie between the two stride-16 maps goes to the deeper
    ([8, 8, 32, 32], (1, 2, 3)),
])
def test_feature_maps_nearest_to_strides_8_16_32(reductions, expected):
    assert choose_feature_maps(reductions) == expected


def test_too_few_feature_maps_are_refused(timm_calls):
    with pytest.raises(ValueError, match=r"timm:fake_two: 2 feature map\(s\) \(strides \[8, 16\]\).*three"):
        offnet.create_model("off", num_classes=2, backbone="timm:fake_two")


def test_timm_resnet_maps_to_the_three_off_scales(timm_calls):
    model = offnet.create_model("off", num_classes=5, backbone="timm:fake_resnet", dropout=0.0)
    net = model.backbone
    assert isinstance(net, TimmBackbone)
    assert net.tap_names == {28: ("layer2",), 14: ("layer3",), 7: ("layer4",)}
    assert net.tap_channels == {"layer2": 16, "layer3": 20, "layer4": 24} and net.feature_dim == 24
    assert net.strides == (8, 16, 32) and net.first_conv == "model.convs.0"
    spec = model.input_spec
    assert (spec.mean, spec.std, spec.size, spec.bgr, spec.scale255) == ((0.5,) * 3, (0.25,) * 3, 96, False, False)
    assert model.config["input_spec"]["mean"] == [0.5, 0.5, 0.5]
    taps, final = net(torch.randn(2, 3, 64, 64))
    assert [tuple(taps[t].shape) for t in ("layer2", "layer3", "layer4")] == [(2, 16, 8, 8), (2, 20, 4, 4),
                                                                               (2, 24, 2, 2)]
    assert final is taps["layer4"]
    scores = model(torch.randn(2, 3, 3, 64, 64))  # (B, T, C, H, W)
    assert set(scores) == {"rgb", "off28", "off14", "off7"} and all(v.shape == (2, 5) for v in scores.values())
    assert timm_calls == [dict(name="fake_resnet", pretrained=False, features_only=True, in_chans=3,
                               out_indices=None)]


def test_channels_last_maps_are_permuted_and_flow_sets_in_chans(timm_calls):
    model = offnet.create_model("off", num_classes=3, modality="flow", backbone="timm:fake_convnext")
    taps, final = model.backbone(torch.randn(1, 10, 64, 64))
    assert tuple(taps["stages.1"].shape) == (1, 12, 8, 8) and tuple(final.shape) == (1, 20, 2, 2)
    assert timm_calls[0]["in_chans"] == 10
    assert model(torch.randn(1, 3, 10, 64, 64))["off7"].shape == (1, 3)


def test_a_vit_uses_its_last_blocks(timm_calls):
    net = offnet.create_model("tsn", num_classes=3, backbone="timm:fake_vit").backbone
    assert net.tap_names == {28: ("blocks.1",), 14: ("blocks.2",), 7: ("blocks.3",)} and net.strides == (16, 16, 16)
    model = offnet.create_model("off", num_classes=3, backbone="timm:fake_vit")
    assert model(torch.randn(1, 2, 3, 64, 64))["off7"].shape == (1, 3)


def test_maps_deeper_than_stride_32_are_not_built(timm_calls):
    net = offnet.create_model("tsn", num_classes=3, backbone="timm:fake_deep").backbone
    assert [c["out_indices"] for c in timm_calls] == [None, (0, 1, 2, 3, 4)]
    assert net.tap_names[7] == ("s5",) and len(net.model(torch.randn(1, 3, 64, 64))) == 5


def test_timm_weights_are_asked_for_with_pretrained_timm(timm_calls):
    offnet.create_model("tsn", num_classes=3, backbone="timm:fake_resnet", pretrained="timm")
    assert timm_calls[-1]["pretrained"] is True
    with pytest.raises(ValueError, match="needs backbone='timm:NAME', not 'resnet18'"):
        offnet.create_model("tsn", num_classes=3, backbone="resnet18", pretrained="timm")


def test_checkpoint_of_a_timm_backbone_rebuilds_without_weights(timm_calls, tmp_path):
    from offnet.engine.checkpoint import build_model_from_checkpoint, save_checkpoint

    model = offnet.create_model("off", num_classes=2, backbone="timm:fake_resnet", pretrained="timm").eval()
    save_checkpoint(tmp_path / "c.pt", {"model_config": model.config, "model": model.state_dict(),
                                        "class_names": ["a", "b"], "config": {}, "stage": 3, "step": 1})
    rebuilt, _ = build_model_from_checkpoint(tmp_path / "c.pt")
    assert timm_calls[-1]["pretrained"] is False  # the checkpoint holds the weights
    x = torch.randn(1, 3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x)["off7"], model(x)["off7"])


def test_unknown_timm_model_and_empty_name(timm_calls):
    with pytest.raises(ValueError, match=r"timm has no model 'resnet5O' \(see timm.list_models\(\)\)"):
        offnet.create_model("tsn", num_classes=2, backbone="timm:resnet5O")
    with pytest.raises(ValueError, match="backbone 'timm:' names no model; write timm:NAME"):
        offnet.create_model("tsn", num_classes=2, backbone="timm:")


def test_missing_timm_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm -> ImportError, as when it is not installed
    with pytest.raises(MissingDependency, match=r"needs the optional package 'timm'.*pip install 'offnet\[timm\]'"):
        offnet.create_model("tsn", num_classes=2, backbone="timm:resnet50")
    from offnet.cli import main

    assert main(["models", "--backbone", "timm:resnet50"]) == 1
    assert "pip install 'offnet[timm]'" in capsys.readouterr().err


def test_a_timm_that_fails_to_import_is_named(monkeypatch):
    class Broken:
        def find_spec(self, name, path=None, target=None):
            if name == "timm":
                raise RuntimeError("operator torchvision::nms does not exist")
            return None

    monkeypatch.delitem(sys.modules, "timm", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    with pytest.raises(MissingDependency, match="installed but fails to import .*torchvision::nms"):
        offnet.create_model("tsn", num_classes=2, backbone="timm:resnet50")
