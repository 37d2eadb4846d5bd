"""Group transforms (offnet.data.functional / offnet.data.transforms)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from offnet.data import functional as TF
from offnet.data.transforms import RandomHorizontalFlip, build_transform

CAFFE = {"mean": (104.0, 117.0, 123.0), "std": (1.0,), "bgr": True, "scale255": True}
IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "bgr": False, "scale255": False}


def _ramp_clip(n=3, h=64, w=80, c=3) -> np.ndarray:
    """Frame k: value = column index + 10 k in every channel (+ channel offset)."""
    cols = np.arange(w)[None, None, :, None]
    frames = np.arange(n)[:, None, None, None] * 10
    chans = np.arange(c)[None, None, None, :] * 50
    return np.broadcast_to(cols + frames + chans, (n, h, w, c)).astype(np.uint8).copy()


def test_clip_to_tensor_layout():
    clip = _ramp_clip()
    x = TF.clip_to_tensor(clip)
    assert x.shape == (3, 3, 64, 80) and x.dtype == torch.uint8
    assert x[2, 1, 5, 7] == clip[2, 5, 7, 1]


@pytest.mark.parametrize(
    ("scales", "pairs"),
    [((1, 0.875, 0.75, 0.66), 10), ((1, 0.875, 0.75), 7)],
)
def test_multi_scale_crop_matches_the_authors_sizes(scales, pairs):
    rng = np.random.default_rng(0)
    seen_sizes, seen_pos = set(), set()
    for _ in range(3000):
        top, left, h, w = TF.multi_scale_crop_params(256, 340, output_size=224, scales=scales, rng=rng)
        assert 0 <= top and top + h <= 256 and 0 <= left and left + w <= 340
        seen_sizes.add((h, w))
        seen_pos.add((top, left, h, w))
    sides = {256, 224, 192, 168}
    assert {s for hw in seen_sizes for s in hw} <= sides
    assert len(seen_sizes) == pairs  # |i - j| <= 1 pairs
    assert (256, 168) not in seen_sizes
    per_size = {}
    for top, left, h, w in seen_pos:
        per_size.setdefault((h, w), set()).add((top, left))
    assert all(len(p) <= 13 for p in per_size.values()) and max(len(p) for p in per_size.values()) == 13


def test_fixed_crop_offsets_13_positions():
    offs = TF.fixed_crop_offsets(256, 340, 224, 224)
    assert len(offs) == 13 and len(set(offs)) == 13
    assert (0, 0) in offs and (32, 116) in offs and (16, 58) in offs
    assert len(TF.fixed_crop_offsets(256, 340, 224, 224, more_fix_crop=False)) == 5


def test_flip_rgb_and_flow():
    clip = TF.clip_to_tensor(_ramp_clip(c=2))
    rgb = TF.hflip(clip, flow=False)
    assert torch.equal(rgb[..., 0], clip[..., -1])
    flow = TF.hflip(clip.float(), flow=True)
    assert torch.equal(flow[:, 0, :, 0], 255 - clip[:, 0, :, -1].float())  # x negated
    assert torch.equal(flow[:, 1, :, 0], clip[:, 1, :, -1].float())  # y kept
    # 128 (zero motion) stays zero motion after the flip and normalisation
    zero = torch.full((1, 2, 4, 4), 128.0)
    flipped = TF.normalize(TF.hflip(zero, flow=True), [128], [1])
    assert torch.equal(flipped[:, 1], torch.zeros(1, 4, 4))
    assert torch.equal(flipped[:, 0], torch.full((1, 4, 4), -1.0))  # 255 - 128 = 127: quantisation


def test_ten_crop_positions_and_mirrors():
    clip = TF.clip_to_tensor(_ramp_clip(n=2, h=256, w=340, c=2)).float()
    crops = TF.ten_crop(clip, 224, flow=True)
    assert crops.shape == (10, 2, 2, 224, 224)
    lefts = [0, 116, 0, 116, 58]
    for k, left in enumerate(lefts):
        assert crops[k, 0, 1, 0, 0] == 50 + left  # channel 1 (y) value = column + 50
        mirrored = crops[5 + k]
        assert torch.equal(mirrored[:, 1], crops[k, :, 1].flip(-1))
        assert torch.equal(mirrored[:, 0], 255 - crops[k, :, 0].flip(-1))


def test_three_crop_covers_longer_side():
    x = TF.clip_to_tensor(_ramp_clip(n=1, h=64, w=112))
    crops = TF.three_crop(x, 64)
    assert crops.shape == (3, 1, 3, 64, 64)
    assert [int(c[0, 0, 0, 0]) for c in crops] == [0, 24, 48]
    assert int(crops[2, 0, 0, 0, -1]) == 111


def test_resize_matches_opencv_bilinear():
    import cv2

    img = np.random.default_rng(0).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    ours = TF.resize(TF.clip_to_tensor(img[None]), (96, 128))[0].permute(1, 2, 0).numpy()
    ref = cv2.resize(img.astype(np.float32), (128, 96), interpolation=cv2.INTER_LINEAR)
    assert np.abs(ours - ref).max() < 1e-3
    assert TF.resize_shorter(TF.clip_to_tensor(img[None]), 24).shape == (1, 3, 24, 32)


@pytest.mark.parametrize(
    ("cfg", "pixel_rgb", "expected"),
    [
        (CAFFE, (10, 20, 30), (30 - 104, 20 - 117, 10 - 123)),  # BGR order, 0–255, mean only
        (IMAGENET, (255, 0, 0), ((1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225)),
    ],
)
def test_normalize_modes(cfg, pixel_rgb, expected):
    x = torch.tensor(pixel_rgb, dtype=torch.float32).view(1, 3, 1, 1)
    out = TF.normalize(x, cfg["mean"], cfg["std"], bgr=cfg["bgr"], scale255=cfg["scale255"])
    np.testing.assert_allclose(out.view(3).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_normalize_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match="mean has 2 values"):
        TF.normalize(torch.zeros(1, 3, 2, 2), [1, 2], [1])


def test_train_transform_one_draw_for_all_frames():
    clip = np.repeat(np.random.default_rng(1).integers(0, 256, (1, 80, 96, 3), dtype=np.uint8), 4, axis=0)
    t = build_transform(train=True, size=64, modality="rgb", flip=True, **CAFFE)
    for seed in range(10):
        out = t(clip, np.random.default_rng(seed))
        assert out.shape == (4, 3, 64, 64) and out.dtype == torch.float32
        assert all(torch.equal(out[0], out[k]) for k in range(1, 4))  # identical frames stay identical
    a = t(clip, np.random.default_rng(3))
    b = t(clip, np.random.default_rng(3))
    assert torch.equal(a, b)
    outs = {t(clip, np.random.default_rng(s)).sum().item() for s in range(10)}
    assert len(outs) > 1


def test_flip_can_be_disabled():
    clip = _ramp_clip(n=1, h=64, w=64)
    t = build_transform(train=True, size=64, modality="rgb", flip=False, scales=(1.0,), **IMAGENET)
    for seed in range(8):
        out = t(clip, np.random.default_rng(seed))
        assert out[0, 0, 0, -1] > out[0, 0, 0, 0]  # left-to-right ramp never mirrored
    x = TF.clip_to_tensor(clip)
    assert torch.equal(RandomHorizontalFlip(flow=False, p=1.0)(x, np.random.default_rng(0)), x.flip(-1))
    assert torch.equal(RandomHorizontalFlip(flow=False, p=0.0)(x, np.random.default_rng(0)), x)
    with pytest.raises(ValueError, match="crops=1 or 3"):
        build_transform(train=False, size=64, modality="rgb", flip=False, crops=10, **CAFFE)


@pytest.mark.parametrize(("crops", "shape"), [(1, (5, 2, 64, 64)), (3, (3, 5, 2, 64, 64)), (10, (10, 5, 2, 64, 64))])
def test_test_transform_shapes_flow(crops, shape):
    clip = np.full((5, 72, 96, 2), 128, dtype=np.uint8)
    t = build_transform(
        train=False,
        size=64,
        modality="flow",
        mean=(128.0,),
        std=(1.0,),
        bgr=True,
        scale255=True,
        flip=True,
        crops=crops,
        resize_to=64,
    )
    out = t(clip, None)
    assert out.shape == shape
    unmirrored = out[:5] if crops == 10 else out
    assert unmirrored.abs().max() == 0  # zero motion (128) -> 0
    if crops == 10:  # mirrored crops: x = 255 - 128 = 127 -> -1, y unchanged
        assert (out[5:, :, 0] == -1).all() and (out[5:, :, 1] == 0).all()


def test_build_transform_errors():
    with pytest.raises(ValueError, match="unknown modality"):
        build_transform(train=True, size=64, modality="depth", flip=True, **CAFFE)
    with pytest.raises(ValueError, match=r"test crops must be one of \[1, 2, 3, 10\]; got 5"):
        build_transform(train=False, size=64, modality="rgb", flip=True, crops=5, **CAFFE)
    with pytest.raises(ValueError, match="larger than"):
        build_transform(train=False, size=128, modality="rgb", flip=True, **CAFFE)(_ramp_clip(), None)


def test_mirror_crop_is_the_centre_crop_and_its_mirror():
    clip = torch.arange(2 * 2 * 6 * 8, dtype=torch.float32).reshape(2, 2, 6, 8)  # (N, C=2 flow, H, W)
    crops = TF.mirror_crop(clip, 4, flow=True)
    assert crops.shape == (2, 2, 2, 4, 4)
    centre = TF.center_crop(clip, 4)
    assert torch.equal(crops[0], centre)
    assert torch.equal(crops[1][:, 1], centre[:, 1].flip(-1))  # y: mirrored
    assert torch.equal(crops[1][:, 0], 255 - centre[:, 0].flip(-1))  # x: mirrored and inverted
    rgb = build_transform(train=False, size=4, modality="rgb", flip=True, crops=2, **CAFFE)(
        np.random.default_rng(0).integers(0, 255, (3, 6, 8, 3), dtype=np.uint8), None)
    assert rgb.shape == (2, 3, 3, 4, 4) and torch.equal(rgb[1], rgb[0].flip(-1))
    assert TF.MIRRORED_CROPS[2] == (1,) and TF.MIRRORED_CROPS[10] == (5, 6, 7, 8, 9)


def test_mirrored_test_crops_need_a_run_that_flipped():
    for crops in (2, 10):
        with pytest.raises(ValueError, match=f"{crops}-crop testing includes mirrored crops.*crops=1 or 3"):
            build_transform(train=False, size=64, modality="rgb", flip=False, crops=crops, **CAFFE)
