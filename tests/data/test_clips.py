"""Clip datasets and the loader factory (offnet.data.clips)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from offnet.data.clips import ClipDataset, ResumableSampler, make_loader, set_epoch
from offnet.data.decode import VideoDecodeError
from offnet.data.records import VideoRecord
from offnet.data.sampling import make_sampler
from offnet.data.transforms import build_transform
from offnet.modalities import MODALITIES

torch.set_num_threads(1)

IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "bgr": False, "scale255": False}
FLOW = {"mean": (128.0,), "std": (1.0,), "bgr": False, "scale255": True}


def _dataset(records, modality="rgb", *, train=True, crops=1, segments=3, size=32, seed=0, **kw):
    m = MODALITIES[modality]
    sampler = make_sampler(
        "off", num_segments=segments, new_length=m.frames_per_segment, test=not train, test_segments=segments
    )
    norm = FLOW if m.kind == "flow" else IMAGENET
    transform = build_transform(train=train, size=size, modality=modality, flip=True, crops=crops, **norm)
    return ClipDataset(
        records, modality=modality, sampler=sampler, transform=transform, seed=seed, test_crops=crops, **kw
    )


@pytest.mark.parametrize("modality", ["rgb", "rawoff", "rgbdiff"])
@pytest.mark.parametrize("source", ["synthetic_video", "frame_folder"])
def test_clip_shapes_per_modality(request, modality, source):
    path = request.getfixturevalue(source)
    ds = _dataset([VideoRecord(path=path, label=4)], modality)
    clip, label = ds[0]
    assert label == 4
    assert clip.shape == (3, MODALITIES[modality].data_channels, 32, 32) and clip.dtype == torch.float32


def test_flow_clip_interleaves_x_and_y(frame_folder):
    ds = _dataset([VideoRecord(path=frame_folder, label=1)], "flow", train=False, size=48)
    clip, _ = ds[0]
    assert clip.shape == (3, 10, 48, 48)
    # frame folder: flow_x of flow frame i = 40 + 5 i, flow_y = 200 - 5 i; normalised by 128.
    # OFF test sampling of L = 11 flow frames, T = 3: interval 3, starts ((11-5-6)//2 = 0) + 3 k
    x_vals = clip[:, 0::2].mean(dim=(-1, -2)) + 128
    y_vals = clip[:, 1::2].mean(dim=(-1, -2)) + 128
    expected_x = torch.tensor([[40 + 5 * (3 * k + j) for j in range(5)] for k in range(3)], dtype=torch.float32)
    assert (x_vals - expected_x).abs().max() <= 2.5
    assert (y_vals - (240 - expected_x)).abs().max() <= 2.5


def test_rgb_frames_in_sampled_order(synthetic_video, synth):
    ds = _dataset([VideoRecord(path=synthetic_video, label=0)], "rgb", train=False, size=48)
    clip, _ = ds[0]
    # OFF test: L = 30, T = β = 3 -> interval 10, start (30-1-20)//2 = 4
    red = clip[:, 0, :10].mean(dim=(-1, -2)) * 0.229 + 0.485
    ids = [round((float(r) * 255 - 16) / 6) for r in red]
    assert ids == [4, 14, 24]


def test_flow_needs_frame_folders(synthetic_video):
    with pytest.raises(ValueError, match="extract-flow"):
        _dataset([VideoRecord(path=synthetic_video, label=0, source="list.txt:3")], "flow")


def test_sampler_length_must_match_modality(synthetic_video):
    sampler = make_sampler("tsn", num_segments=3, new_length=1, test=False)
    t = build_transform(train=True, size=32, modality="flow", flip=True, **FLOW)
    with pytest.raises(ValueError, match="new_length=5"):
        ClipDataset([], modality="flow", sampler=sampler, transform=t, seed=0)


@pytest.mark.parametrize("crops", [3, 10])
def test_multi_crop_shape(synthetic_video, crops):
    ds = _dataset([VideoRecord(path=synthetic_video, label=0)], "rgb", train=False, crops=crops, size=40)
    clip, _ = ds[0]
    assert clip.shape == (crops, 3, 3, 40, 40)


def test_reproducible_per_epoch_and_index(synthetic_video):
    rec = VideoRecord(path=synthetic_video, label=0)
    a, b = _dataset([rec, rec], seed=5), _dataset([rec, rec], seed=5)
    assert torch.equal(a[0][0], b[0][0]) and torch.equal(a[1][0], b[1][0])
    a.set_epoch(1)
    draws = {a[0][0].sum().item()}
    for epoch in range(2, 8):
        a.set_epoch(epoch)
        draws.add(a[0][0].sum().item())
    assert len(draws) > 1


def test_bad_video_fail_and_skip(tmp_path, synthetic_video, caplog):
    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"garbage" * 100)
    records = [VideoRecord(path=bad, label=0, source="trainlist.txt:1"), VideoRecord(path=synthetic_video, label=7)]
    with pytest.raises(VideoDecodeError, match=r"trainlist\.txt:1.*broken\.avi"):
        _dataset(records)[0]
    ds = _dataset(records, on_bad_video="skip")
    with caplog.at_level(logging.WARNING, logger="offnet.data.clips"):
        clip, label = ds[0]
    assert label == 7 and clip.shape == (3, 3, 32, 32)
    assert "broken.avi" in caplog.text
    all_bad = _dataset(records[:1], on_bad_video="skip")
    with pytest.raises(VideoDecodeError, match="unreadable"):
        all_bad[0]


def test_resumable_sampler_skips_first_batches():
    data = list(range(23))
    full = ResumableSampler(data, batch_size=4, num_replicas=1, rank=0, shuffle=True, seed=3)
    full.set_epoch(2)
    order = list(full)
    resumed = ResumableSampler(data, batch_size=4, num_replicas=1, rank=0, shuffle=True, seed=3)
    resumed.set_epoch(2)
    resumed.set_start_batch(3)
    assert list(resumed) == order[12:] and len(resumed) == 11
    resumed.set_epoch(3)
    assert len(list(resumed)) == 23
    two = [ResumableSampler(data, batch_size=4, num_replicas=2, rank=r, shuffle=True, seed=3) for r in (0, 1)]
    assert sorted(set(list(two[0]) + list(two[1]))) == data


@pytest.mark.slow
def test_loader_is_identical_with_0_and_2_workers(make_video):
    records = [VideoRecord(path=make_video(f"v{i}.avi", num_frames=12 + i), label=i) for i in range(4)]
    batches = {}
    for workers in (0, 2):
        ds = _dataset(records, seed=11)
        loader = make_loader(ds, batch_size=2, shuffle=True, num_workers=workers, seed=11, epoch=1)
        batches[workers] = [(x, y) for x, y in loader]
    assert len(batches[0]) == 2
    for (x0, y0), (x2, y2) in zip(batches[0], batches[2]):
        assert x0.shape == (2, 3, 3, 32, 32)
        assert torch.equal(x0, x2) and torch.equal(y0, y2)


def test_loader_resume_matches_uninterrupted(make_video):
    records = [VideoRecord(path=make_video(f"r{i}.avi", num_frames=10), label=i) for i in range(6)]
    ds = _dataset(records, seed=2, size=24)
    full = [y for _, y in make_loader(ds, batch_size=2, shuffle=True, num_workers=0, seed=2, epoch=4)]
    loader = make_loader(ds, batch_size=2, shuffle=True, num_workers=0, seed=2, epoch=4, start_batch=1)
    rest = [y for _, y in loader]
    assert len(rest) == 2 and all(torch.equal(a, b) for a, b in zip(full[1:], rest))
    set_epoch(loader, 5)
    assert len(list(loader)) == 3


def _raw(frames, rng):  # (N, H, W, C) uint8 -> (N, C, H, W) float, no randomness
    return torch.from_numpy(frames.copy()).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_flip_labels_mirror_the_clip_and_swap_the_label(frame_folder, modality):
    def fixed(num_frames, rng):
        return np.array([[0], [2], [4]]) if modality == "rgb" else np.arange(15).reshape(3, 5) % num_frames

    plain = ClipDataset([VideoRecord(path=frame_folder, label=0)], modality=modality, sampler=fixed, transform=_raw,
                        seed=0)
    flipping = ClipDataset([VideoRecord(path=frame_folder, label=0)], modality=modality, sampler=fixed,
                           transform=_raw, seed=0, flip_labels=(1, 0, 2))
    reference, _ = plain[0]
    mirrored = reference.flip(-1)
    if modality == "flow":
        mirrored[:, 0::2] = 255 - mirrored[:, 0::2]  # x flow (stored around 128) changes sign
    assert not torch.equal(mirrored, reference)
    seen = set()
    for epoch in range(12):
        flipping.set_epoch(epoch)
        clip, label = flipping[0]
        seen.add(label)
        assert torch.equal(clip, mirrored if label == 1 else reference)
    assert seen == {0, 1}  # both happen over a dozen epochs (each with probability 1/2)


def test_flip_labels_must_be_a_permutation_covering_the_labels(synthetic_video):
    with pytest.raises(ValueError, match="permutation"):
        _dataset([VideoRecord(path=synthetic_video, label=0)], flip_labels=(0, 0))
    with pytest.raises(ValueError, match="cover every record's label"):
        _dataset([VideoRecord(path=synthetic_video, label=3)], flip_labels=(1, 0))


def test_reverse_labels_play_the_clip_backwards_as_its_twin(frame_folder):
    def fixed(num_frames, rng):
        return np.arange(10).reshape(2, 5)  # (T, n): 2 segments of 5 frames (Raw OFF)

    def make(label, reverse_labels=None):
        return ClipDataset([VideoRecord(path=frame_folder, label=label)], modality="rawoff", sampler=fixed,
                           transform=_raw, seed=0, reverse_labels=reverse_labels)

    reference, _ = make(0)[0]  # (T, n * 3, H, W): frames 0-4 | 5-9
    frames = reference.reshape(2, 5, 3, *reference.shape[-2:])
    backwards = frames.flip(0).flip(1).reshape(reference.shape)  # frames 9-5 | 4-0
    assert not torch.equal(backwards, reference)
    twins, lone = make(0, (1, 0, -1)), make(2, (1, 0, -1))
    seen = set()
    for epoch in range(12):
        twins.set_epoch(epoch)
        lone.set_epoch(epoch)
        clip, label = twins[0]
        seen.add(label)
        assert torch.equal(clip, backwards if label == 1 else reference)
        assert lone[0][1] == 2  # a class without a twin is never reversed
    assert seen == {0, 1}
    with pytest.raises(ValueError, match="cannot reverse flow clips"):
        ClipDataset([VideoRecord(path=frame_folder, label=0)], modality="flow", sampler=fixed, transform=_raw,
                    seed=0, reverse_labels=(1, 0))
