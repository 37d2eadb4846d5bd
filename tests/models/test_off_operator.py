"""The OFF operator: kernels, signs and axes, modes, pairing."""

import math

import pytest
import torch

from offnet.models.off import OFFOperator, central_difference, sobel_xy, temporal_difference
from offnet.models.stems import RawOFFStem, RGBDiffStem


def _ramp(h=9, w=9):
    rows = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1).expand(1, 1, h, w)
    cols = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w).expand(1, 1, h, w)
    return rows, cols


def test_sobel_responses_on_ramps():
    rows, cols = _ramp()
    gx, gy = sobel_xy(cols)
    assert torch.allclose(gx[..., 1:-1, 1:-1], torch.full_like(gx[..., 1:-1, 1:-1], 8.0))
    assert torch.allclose(gy[..., 1:-1, 1:-1], torch.zeros_like(gy[..., 1:-1, 1:-1]))
    gx, gy = sobel_xy(rows)
    # The paper's y kernel points up: intensity growing downwards gives a negative response.
    assert torch.allclose(gy[..., 1:-1, 1:-1], torch.full_like(gy[..., 1:-1, 1:-1], -8.0))
    assert torch.allclose(gx[..., 1:-1, 1:-1], torch.zeros_like(gx[..., 1:-1, 1:-1]))


def test_official_kernel_matches_the_spec_check():
    rows, cols = _ramp()
    assert torch.allclose(central_difference(cols)[..., 1:-1, 1:-1], torch.tensor(2.0))
    assert torch.allclose(central_difference(rows)[..., 1:-1, 1:-1], torch.tensor(-2.0))


def test_temporal_difference_is_later_minus_earlier():
    x = torch.arange(4.0).view(1, 4, 1, 1, 1).expand(2, 4, 3, 2, 2)
    d = temporal_difference(x)
    assert d.shape == (2, 3, 3, 2, 2)
    assert torch.all(d == 1.0)


def _texture(h, w, dx, dy, phase):
    """Smooth texture translated by (dx right, dy up) pixels, evaluated analytically."""
    r = torch.arange(h, dtype=torch.float64).view(h, 1)
    c = torch.arange(w, dtype=torch.float64).view(1, w)
    x = c - dx
    y = -(r) - dy  # y axis up
    return (torch.sin(2 * math.pi * x / 23 + phase) + 0.7 * torch.cos(2 * math.pi * y / 19 - phase)
            + 0.5 * torch.sin(2 * math.pi * (x + y) / 29 + 2 * phase))


@pytest.mark.parametrize("vx,vy", [(0.4, 0.0), (0.0, 0.4), (-0.3, 0.3), (0.25, -0.35), (-0.2, -0.2)])
def test_raw_off_satisfies_brightness_constancy(vx, vy):
    """Fitting F_t ≈ −(v_x F_x + v_y F_y) on Raw OFF of a translated texture recovers (v_x, v_y)."""
    h = w = 48
    frames = []
    for k in range(5):
        chans = [_texture(h, w, k * vx, k * vy, phase) for phase in (0.0, 1.0, 2.0)]
        frames.append(torch.stack(chans))  # (3, H, W)
    x = torch.cat(frames).unsqueeze(0).float()  # (1, 15, H, W)
    out = RawOFFStem()(x)  # (1, 36, H, W): 4 pairs x [gx/8 (3), gy/8 (3), dt (3)]
    assert out.shape == (1, 36, h, w)
    pairs = out.view(4, 9, h, w)[..., 4:-4, 4:-4]
    fx, fy, ft = pairs[:, 0:3].reshape(-1), pairs[:, 3:6].reshape(-1), pairs[:, 6:9].reshape(-1)
    a = torch.stack([fx, fy], dim=1).double()
    sol = torch.linalg.lstsq(a, -ft.double().unsqueeze(1)).solution.squeeze(1)
    est = sol.tolist()
    norm = math.hypot(vx, vy)
    assert math.hypot(est[0] - vx, est[1] - vy) < 0.10 * norm, (est, (vx, vy))


@pytest.mark.parametrize("frames", [2, 5])
def test_raw_off_stem_equals_per_channel_sobel_and_frame_differences(frames):
    """The stem's one fixed convolution computes the documented layout: per pair, Sobel x / 8, Sobel y / 8 of
    the earlier frame (zero padding) and the difference, per colour; also in channels-last."""
    from offnet.models.off import sobel_xy

    torch.manual_seed(0)
    x = torch.randn(2, 3 * frames, 11, 13) * 40
    v = x.view(2, frames, 3, 11, 13)
    gx, gy = sobel_xy(v[:, :-1].flatten(0, 1))  # (2*(F-1), 3, H, W)
    dt = (v[:, 1:] - v[:, :-1]).flatten(0, 1)
    expected = torch.cat([gx / 8, gy / 8, dt], dim=1).view(2, 9 * (frames - 1), 11, 13)
    stem = RawOFFStem(frames=frames)
    torch.testing.assert_close(stem(x), expected, atol=1e-4, rtol=1e-5)
    assert "weight" not in stem.state_dict()  # a fixed function: checkpoints are unchanged
    stem.to(memory_format=torch.channels_last)
    out = stem(x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-5)
    with pytest.raises(ValueError, match=f"expects {3 * frames} channels"):
        stem(x[:, :3])


def test_rgbdiff_stem_layout():
    frames = torch.arange(6.0).view(1, 6, 1, 1, 1).expand(1, 6, 3, 4, 4).reshape(1, 18, 4, 4)
    out = RGBDiffStem()(frames)
    assert out.shape == (1, 15, 4, 4)
    assert torch.all(out == 1.0)


@pytest.mark.parametrize("mode,spatial,expected", [("paper", True, 3 * 16), ("official", True, 32 + 16),
                                                   ("paper", False, 16), ("official", False, 16)])
def test_operator_output_channels(mode, spatial, expected):
    op = OFFOperator(in_channels=8, reduce_channels=16, mode=mode, spatial=spatial)
    out = op(torch.randn(2, 4, 8, 6, 6))
    assert op.out_channels == expected
    assert out.shape == (2, 3, expected, 6, 6)


def test_operator_paper_mode_parts_are_gradients_of_the_earlier_frame_and_the_difference():
    op = OFFOperator(in_channels=4, reduce_channels=4, mode="paper")
    feat = torch.randn(1, 3, 4, 5, 5)
    out = op(feat)  # (1, 2, 12, 5, 5)
    g = torch.relu(op.reduce(feat.flatten(0, 1))).view(1, 3, 4, 5, 5)
    gx, gy = sobel_xy(g[0, :2], padding="replicate")
    assert torch.allclose(out[0, :, 0:4], gx / 8, atol=1e-6)
    assert torch.allclose(out[0, :, 4:8], gy / 8, atol=1e-6)
    assert torch.allclose(out[0, :, 8:12], g[0, 1:] - g[0, :-1], atol=1e-6)


def test_paper_mode_gradients_are_derivatives_without_border_artefacts():
    """A constant map has no gradient anywhere (replicate padding); a ramp of slope 1 reads 1 (Sobel / 8)."""
    op = OFFOperator(in_channels=1, reduce_channels=1, mode="paper")
    with torch.no_grad():
        op.reduce.weight.fill_(1.0)
        op.reduce.bias.fill_(0.2)
    flat = torch.full((1, 2, 1, 4, 4), 0.5)
    assert op(flat)[0, 0, :2].abs().max() < 1e-6
    ramp = torch.arange(4.0).expand(4, 4).expand(1, 2, 1, 4, 4)
    gx = op(ramp)[0, 0, 0]
    assert torch.allclose(gx[:, 1:-1], torch.tensor(1.0))
    # zero padding would instead report an edge of height ~0.2 + the ramp at the border
    zero_padded = sobel_xy(torch.relu(ramp[0, :1] + 0.2))[0][0, 0] / 8
    assert zero_padded[:, 0].abs().min() > 0.1


def _aligned_and_buggy(*, training: bool) -> tuple[OFFOperator, OFFOperator]:
    """Two official-mode operators with the same weights, the second replicating the pairing bug."""
    torch.manual_seed(0)
    kwargs = dict(in_channels=4, reduce_channels=4, mode="official", official_spatial_dropout=0.0)
    aligned = OFFOperator(**kwargs).train(training)
    buggy = OFFOperator(**kwargs, replicate_official_misalignment=True).train(training)
    buggy.load_state_dict(aligned.state_dict())
    return aligned, buggy


def test_official_misalignment_only_changes_other_videos_pairs():
    aligned, buggy = _aligned_and_buggy(training=True)
    feat = torch.randn(2, 3, 4, 5, 5)
    a, b = aligned(feat), buggy(feat)
    assert torch.allclose(a[0, 0], b[0, 0])  # video 0, pair 0: same frame either way
    assert not torch.allclose(a[1, 0, :32], b[1, 0, :32])  # video 1 reads video 0's frame 2
    assert torch.allclose(a[:, :, 32:], b[:, :, 32:])  # temporal part is unaffected


def test_official_misalignment_is_a_training_time_bug_only():
    """The authors' test is aligned: in eval mode (crops of one video share a pass) nothing is mixed."""
    aligned, buggy = _aligned_and_buggy(training=False)
    feat = torch.randn(3, 3, 4, 5, 5)
    assert torch.equal(aligned(feat), buggy(feat))


def test_operator_rejects_single_segment():
    with pytest.raises(ValueError, match="at least 2 segments"):
        OFFOperator(in_channels=4, reduce_channels=4)(torch.randn(1, 1, 4, 5, 5))


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="'paper' or 'official'"):
        OFFOperator(in_channels=4, mode="sobel")
