"""The OFF sub-network's heads and options (offnet.models.subnet)."""

import pytest
import torch

from offnet.models.subnet import OFFSubnet


def _subnet(**kwargs) -> OFFSubnet:
    return OFFSubnet(tap_counts={28: 1, 14: 1, 7: 1}, tap_channels=4, num_classes=3, dropout=0.0, width=0.0625,
                     **kwargs)


def test_unit28_head_max_pools_before_averaging_the_others_do_not():
    """Spec §3: the 28 head max-pools 3x3/2 (ceil) 14x14 -> 7x7 first; a lone peak then counts 1/49, not 1/196."""
    net = _subnet()
    for level, expected in (("28", 1 / 49), ("14", 1 / 196)):
        head = net.heads[level]
        x = torch.zeros(1, head.fc.in_features, 14, 14)
        x[0, :, 5, 5] = 1.0
        with torch.no_grad():
            head.fc.weight.zero_()
            head.fc.weight[0, 0] = 1.0
            head.fc.bias.zero_()
        assert head(x)[0, 0].item() == pytest.approx(expected)


@pytest.mark.parametrize("kernel", [1, 3])
def test_block14b_kernel_option(kernel):
    net = _subnet(block14b_kernel=kernel)
    assert net.units["14"].blocks[1].conv3.kernel_size == (kernel, kernel)
    assert net.units["14"].blocks[0].conv3.kernel_size == (1, 1)


def test_block14b_kernel_must_be_1_or_3():
    with pytest.raises(ValueError, match="block14b_kernel"):
        _subnet(block14b_kernel=5)


def test_subnet_norm_adds_a_batchnorm_after_each_transition():
    plain, normed = _subnet(), _subnet(norm=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert [isinstance(u.norm, torch.nn.BatchNorm2d) for u in normed.units.values()] == [True] * 3
    inputs = {28: [torch.randn(2, 4, 16, 16)], 14: [torch.randn(2, 4, 8, 8)], 7: [torch.randn(2, 4, 4, 4)]}
    assert {k: v.shape for k, v in normed(inputs).items()} == {f"off{s}": (2, 3) for s in (28, 14, 7)}
