"""Backbones: tap names, channels and scales; torchvision key names."""

import pytest
import torch

from offnet.models import SCALES
from offnet.models.bninception import bninception
from offnet.models.resnet import resnet18, resnet50
from offnet.models.tiny import tiny

BNINCEPTION_TAPS = {  # spec §1.3
    "inception_3a": (256, 28), "inception_3b": (320, 28), "inception_3c": (576, 14), "inception_4a": (576, 14),
    "inception_4b": (576, 14), "inception_4c": (608, 14), "inception_4d": (608, 14),
    "inception_5a": (1024, 7), "inception_5b": (1024, 7),
}


@pytest.mark.slow
def test_bninception_taps_at_224():
    net = bninception().eval()
    with torch.no_grad():
        taps, final = net(torch.randn(1, 3, 224, 224))
    assert {k: (v.shape[1], v.shape[2]) for k, v in taps.items()} == BNINCEPTION_TAPS
    assert final.shape == (1, 1024, 7, 7)
    for scale in SCALES:
        assert all(BNINCEPTION_TAPS[t][1] == scale for t in net.tap_names[scale])
    assert net.tap_channels == {k: c for k, (c, _) in BNINCEPTION_TAPS.items()}


def test_bninception_uses_caffe_layer_names():
    keys = set(bninception().state_dict())
    for key in ("conv1_7x7_s2.weight", "conv1_7x7_s2_bn.running_var", "inception_3a_double_3x3_1.weight",
                "inception_3c_double_3x3_2_bn.bias", "inception_5b_pool_proj.weight"):
        assert key in keys
    assert not any(k.startswith("inception_3c_1x1") or k.startswith("inception_3c_pool_proj") for k in keys)


@pytest.mark.parametrize("factory,channels", [(resnet18, (128, 256, 512)), (resnet50, (512, 1024, 2048))])
def test_resnet_taps_follow_strides_8_16_32(factory, channels):
    net = factory().eval()
    with torch.no_grad():
        taps, final = net(torch.randn(1, 3, 96, 96))
    for scale, c, size in zip(SCALES, channels, (12, 6, 3)):
        for name in net.tap_names[scale]:
            assert taps[name].shape == (1, c, size, size)
    assert final.shape[1] == net.feature_dim == channels[-1]


def test_resnet_state_dict_has_torchvision_keys():
    keys = set(resnet50().state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.downsample.0.weight", "layer4.2.conv3.weight",
            "layer3.5.bn3.num_batches_tracked"} <= keys
    assert {"layer2.1.conv2.weight", "layer1.0.bn2.bias"} <= set(resnet18().state_dict())


def test_tiny_backbone_scales_and_first_conv_width():
    net = tiny(in_channels=10).eval()
    taps, final = net(torch.randn(2, 10, 64, 64))
    assert [taps[t].shape[-1] for s in SCALES for t in net.tap_names[s]] == [16, 16, 8, 8, 4, 4]
    assert net.state_dict()[f"{net.first_conv}.weight"].shape[1] == 10


def test_input_spec_gives_the_normalisation_of_each_frame_kind():
    from offnet.models.backbone import CAFFE_BGR_SPEC, IMAGENET_SPEC

    assert CAFFE_BGR_SPEC.mean_std("rgb") == ((104.0, 117.0, 123.0), (1.0, 1.0, 1.0))
    assert CAFFE_BGR_SPEC.mean_std("flow") == ((128.0,), (1.0,))
    assert IMAGENET_SPEC.mean_std("flow") == ((0.5,), (0.226,))
