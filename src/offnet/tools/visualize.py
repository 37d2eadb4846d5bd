"""See why OFF works: a picture of one clip's Raw OFF and of the OFF features a trained model computes.

For each consecutive segment pair (t, t+1) of a clip the figure shows, in one row,

1. frame t and 2. frame t+1 (de-normalised),
3. the pixel temporal difference ``|I_{t+1} − I_t|`` and 4. the pixel spatial gradient magnitude
   (Raw OFF, paper Sec. 3),
5. the temporal part ``|f_{t+1} − f_t|`` and 6. the spatial part of the OFF at the model's first
   tapped layer (stride 8), averaged over channels,

and a bar chart of the class scores of the model's levels. Motion lights up the temporal columns
where a moving pattern sits; a static background cancels out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..fileio import save_figure
from ..models.backbone import InputSpec
from ..models.networks import ActionRecognizer
from ..models.off import OFFOperator, sobel_xy

__all__ = ["off_maps", "denormalize", "plot_off"]


def denormalize(frames: torch.Tensor, spec: InputSpec) -> np.ndarray:
    """``(N, 3, H, W)`` normalised frames → ``(N, H, W, 3)`` float RGB in [0, 1] for display."""
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    x = frames * std + mean
    if spec.scale255:
        x = x / 255.0
    if spec.bgr:
        x = x.flip(1)
    return x.clamp(0, 1).permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def off_maps(model: ActionRecognizer, clip: torch.Tensor) -> dict[str, object]:
    """Run ``model`` on one clip ``(T, C, H, W)`` and collect what :func:`plot_off` draws.

    Returns ``frames`` (T, H, W, 3), ``pixel_dt``/``pixel_grad`` (T−1, H, W), ``feat_dt``/``feat_grad``
    (T−1, h, w) at the first tap (``None`` for models without OFF), and ``scores`` {level: (K,)} softmax.
    """
    if model.modality.kind != "rgb":
        raise ValueError(f"visualisation needs colour frames; model modality is {model.modality.name!r}")
    model.eval()
    t = clip.shape[0]
    frames = clip.view(t, -1, 3, *clip.shape[-2:])[:, 0]  # first frame of each segment, (T, 3, H, W)
    pixel_dt = (frames[1:] - frames[:-1]).abs().mean(dim=1)  # (T-1, H, W)
    gx, gy = sobel_xy(frames[:-1])
    pixel_grad = (gx.pow(2) + gy.pow(2)).sqrt().mean(dim=1) / 8.0
    captured: dict[str, dict[str, torch.Tensor]] = {}
    first_tap = model.backbone.all_taps[0]
    # the backbone's taps of this forward; the OFF of the first one is computed from it below
    hook = model.backbone.register_forward_hook(lambda m, i, o: captured.__setitem__("taps", o[0]))
    try:
        scores = model(clip.unsqueeze(0))
    finally:
        hook.remove()
    feat_dt = feat_grad = None
    if model.arch == "off":
        op = model.tap_ops[first_tap.replace(".", "_")]
        assert isinstance(op, OFFOperator)
        feat = captured["taps"][first_tap]  # (T, C, h, w)
        off = op(feat.view(1, t, *feat.shape[1:]))[0]  # (T-1, P, h, w)
        r = op.reduce.out_channels
        temporal = off[:, -r:]
        spatial = off[:, :-r]
        feat_dt = temporal.abs().mean(dim=1).numpy()
        feat_grad = spatial.abs().mean(dim=1).numpy() if spatial.shape[1] else None
    return {
        "frames": denormalize(frames, model.input_spec),
        "pixel_dt": pixel_dt.numpy(),
        "pixel_grad": pixel_grad.numpy(),
        "feat_dt": feat_dt,
        "feat_grad": feat_grad,
        "scores": {k: v[0].softmax(dim=0).numpy() for k, v in scores.items()},
    }


def plot_off(maps: dict[str, object], path: str | Path, *, class_names: Sequence[str] | None = None,
             title: str = "", max_pairs: int = 4) -> Path:
    """Draw :func:`off_maps` output into a PNG at ``path``; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = maps["frames"]
    n = min(max_pairs, len(frames) - 1)
    cols = ["frame t", "frame t+1", "|I(t+1) - I(t)|", "|grad I(t)|", "OFF temporal", "OFF spatial"]
    fig, axes = plt.subplots(n + 1, len(cols), figsize=(2.2 * len(cols), 2.2 * (n + 1)), squeeze=False)
    for i in range(n):
        panels = [frames[i], frames[i + 1], maps["pixel_dt"][i], maps["pixel_grad"][i],
                  None if maps["feat_dt"] is None else maps["feat_dt"][i],
                  None if maps["feat_grad"] is None else maps["feat_grad"][i]]
        for j, img in enumerate(panels):
            ax = axes[i][j]
            ax.axis("off")
            if i == 0:
                ax.set_title(cols[j], fontsize=9)
            if img is None:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", fontsize=8)
            elif img.ndim == 3:
                ax.imshow(img)
            else:
                ax.imshow(img, cmap="magma")
    for ax in axes[n]:
        ax.axis("off")
    ax = fig.add_subplot(n + 1, 1, n + 1)
    scores = maps["scores"]
    k = len(next(iter(scores.values())))
    names = list(class_names) if class_names else [str(i) for i in range(k)]
    width = 0.8 / max(1, len(scores))
    for idx, (level, p) in enumerate(scores.items()):
        ax.bar(np.arange(k) + idx * width, p, width=width, label=level)
    ax.set_xticks(np.arange(k) + 0.4 - width / 2)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("softmax")
    ax.legend(fontsize=7, ncol=len(scores))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        return save_figure(fig, path, dpi=80)
    finally:
        plt.close(fig)
