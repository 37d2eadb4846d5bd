"""BatchNorm folded into the convolution that feeds it: the arithmetic, which pairs qualify, and the models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from offnet.models import create_model
from offnet.models.folding import fold_batchnorm, fold_conv_bn


def _random_stats(module: nn.Module) -> None:
    """BatchNorm statistics and affine parameters far from the identity."""
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)


def _count_bn(module: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in module.modules())


@pytest.mark.parametrize("bias", [True, False])
def test_fold_conv_bn_equals_conv_then_eval_batchnorm(bias):
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 6, 3, padding=1, bias=bias), nn.BatchNorm2d(6, eps=1e-3)
    _random_stats(bn)
    bn.eval()
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        expected = bn(conv(x))
        fold_conv_bn(conv, bn)
        assert conv.bias is not None
        torch.testing.assert_close(conv(x), expected, atol=1e-5, rtol=1e-5)


class _Pairs(nn.Module):
    """conv→bn (foldable); relu→bn (not fed by a conv); one conv feeding two BatchNorms (neither foldable)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a, self.bn_a = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.bn_after_relu = nn.BatchNorm2d(4)
        self.conv_b, self.bn_b1, self.bn_b2 = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.BatchNorm2d(4)
        self.outside = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn_after_relu(torch.relu(self.bn_a(self.conv_a(x))))
        z = self.conv_b(y)
        return self.outside(self.bn_b1(z) + self.bn_b2(z))


def test_fold_batchnorm_folds_only_batchnorm_fed_by_one_conv_within_scope():
    torch.manual_seed(0)
    net = _Pairs()
    _random_stats(net)
    net.eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = net(x)
    scope = [net.conv_a, net.bn_a, net.bn_after_relu, net.conv_b, net.bn_b1, net.bn_b2]
    assert fold_batchnorm(net, lambda: net(x), scope=scope) == 1
    assert isinstance(net.bn_a, nn.Identity)
    assert isinstance(net.bn_after_relu, nn.BatchNorm2d)  # its input comes from a ReLU
    assert isinstance(net.bn_b1, nn.BatchNorm2d) and isinstance(net.bn_b2, nn.BatchNorm2d)  # one conv, two norms
    assert isinstance(net.outside[1], nn.BatchNorm2d)  # out of scope
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected, atol=1e-5, rtol=1e-5)


def test_fold_batchnorm_refuses_a_model_in_training_mode():
    net = _Pairs().train()
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(net, lambda: None, scope=[net])


@pytest.mark.parametrize("backbone,size,bns", [("tiny", 64, 7), ("resnet18", 64, 20)])
def test_model_fold_batchnorm_folds_every_backbone_batchnorm_and_keeps_the_scores(backbone, size, bns):
    torch.manual_seed(0)
    model = create_model("off", num_classes=5, backbone=backbone, spatial_mode="official")
    _random_stats(model)
    model.eval()
    x = torch.randn(2, 3, 3, size, size)
    with torch.no_grad():
        expected = model(x)
        assert model.fold_batchnorm() == bns
        assert _count_bn(model) == 0
        got = model(x)
    for level in expected:
        torch.testing.assert_close(got[level], expected[level], atol=1e-4, rtol=1e-4)


def test_model_fold_batchnorm_folds_the_subnet_norm_and_leaves_a_backbone_of_unknown_structure():
    torch.manual_seed(0)
    model = create_model("off", num_classes=3, backbone="tiny", subnet_norm=True)
    _random_stats(model)
    model.backbone.foldable_batchnorm = False  # as a registered or timm backbone
    model.eval()
    x = torch.randn(1, 3, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        assert model.fold_batchnorm() == 3  # one BatchNorm after each unit's transition conv
        got = model(x)
    assert _count_bn(model.backbone) == 7 and _count_bn(model.subnet) == 0
    for level in expected:
        torch.testing.assert_close(got[level], expected[level], atol=1e-4, rtol=1e-4)
