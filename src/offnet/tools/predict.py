"""Run a trained offnet checkpoint on videos: :class:`Predictor`.

>>> predictor = Predictor("runs/off_synth")            # a run directory or a .pt checkpoint
>>> for p in predictor.predict(["clip.avi"]):
...     print(p.video, p.top(3))
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..data.records import VideoRecord
from .prediction import Prediction

if TYPE_CHECKING:
    from .batch import VideoOutcome

__all__ = ["Prediction", "Predictor"]


class Predictor:
    """Loads a checkpoint once and scores videos with the test protocol of the run it came from.

    Args:
        checkpoint: a run directory (its final stage's best checkpoint), a ``.pt`` file, or a safetensors export
            (``offnet export --format safetensors``: the ``.safetensors`` file or the folder holding it), local
            or as a URL / ``hf-hub:owner/repo/FILE.safetensors`` reference (downloaded once into the cache).
        segments: segments per video (default: the run's ``data.test_segments``).
        crops: 1, 2, 3 or 10 crops per frame (mirrored crops as in ``offnet test``: under the run's flip label map).
        device: ``cpu``, ``cuda`` … or ``None`` for automatic.
        optimize: score with an optimised inference copy (:meth:`inference_model`); ``False``: the plain forward.
    """

    def __init__(self, checkpoint: str | Path, *, segments: int | None = None, crops: int = 1,
                 device: str | None = None, optimize: bool = True) -> None:
        from ..engine.checkpoint import build_model_from_checkpoint, find_checkpoint
        from ..engine.evaluate import test_flip
        from ..hub import is_remote, resolve_weights
        from .export import find_safetensors, load_safetensors

        if is_remote(checkpoint):  # https://…, file://…, hf-hub:owner/repo/model.safetensors: fetched once
            checkpoint = resolve_weights(checkpoint)
        exported = find_safetensors(checkpoint)
        if exported is not None:  # weights without pickle, described by their JSON
            self.checkpoint = exported
            self.model, description = load_safetensors(exported)
            class_names, data = description.get("class_names"), dict(description.get("data") or {})
        else:
            self.checkpoint = find_checkpoint(checkpoint)
            self.model, payload = build_model_from_checkpoint(self.checkpoint)
            class_names = payload.get("class_names")
            data = dict((payload.get("config") or {}).get("data") or {})
        self.class_names = tuple(class_names or range(self.model.num_classes))
        self.data_config = data
        self.segments = segments or int(data.get("test_segments") or 25)
        self.crops = crops
        # mirrored test crops: allowed when the run flipped, scored under the run's flip label map if it has one
        self.flip, self.flip_labels = test_flip(data, self.class_names, crops=crops)
        self.size = int(data.get("size") or self.model.input_spec.size)
        self.device = device
        self.optimize = optimize
        self._inference: tuple[str, torch.nn.Module] | None = None  # (device, optimised copy of self.model)
        self.skipped: list[str] = []  # videos left out by the last predict(on_bad_video="skip")

    def predict(self, videos: Sequence[str | Path], *, progress: bool = False, on_bad_video: str = "fail",
                batch_size: int = 1, workers: int = 0) -> list[Prediction]:
        """Score video files or frame folders; errors name the unreadable file.

        Each video is checked as it is read: a missing, unreadable, truncated or too-short one raises an error
        naming it (``on_bad_video="fail"``) or is left out of the result (``"skip"``; see :attr:`skipped`).
        """
        for v in videos:
            if not Path(v).expanduser().exists():
                raise FileNotFoundError(f"video not found: {v}")
        predictions: list[Prediction] = []
        self.skipped = []
        for outcome in self.iter_predict([str(v) for v in videos], progress=progress, on_bad_video=on_bad_video,
                                         batch_size=batch_size, workers=workers):
            if outcome.prediction is not None:
                predictions.append(outcome.prediction)
            else:
                self.skipped.append(str(outcome.error))
        return predictions

    def iter_predict(self, videos: Sequence[str], **kwargs: Any) -> Iterator[VideoOutcome]:
        """One :class:`~offnet.tools.batch.VideoOutcome` per video, in order, as batches are scored; keyword
        arguments as :func:`offnet.tools.batch.iter_predictions` (``batch_size``, ``workers``, ``on_bad_video``…)."""
        from .batch import iter_predictions

        return iter_predictions(self, videos, **kwargs)

    def inference_model(self, device: str | torch.device) -> torch.nn.Module:
        """The inference copy of :attr:`model` on ``device`` (with :attr:`optimize`: folded BatchNorm, channels-last on
        a CPU; :func:`offnet.engine.evaluate.for_inference`), made once and kept for later calls."""
        from ..engine.evaluate import for_inference

        key = str(device)
        if self._inference is None or self._inference[0] != key:
            self._inference = (key, for_inference(self.model, device, optimize=self.optimize))
        return self._inference[1]

    def clip(self, video: str | Path) -> torch.Tensor:
        """The centre-cropped test clip ``(T, C, H, W)`` of ``video`` (T = test segments, sampled at the run's
        test interval), as the model sees it at test time."""
        from ..engine.evaluate import build_test_dataset

        record = VideoRecord(path=Path(video).expanduser().resolve(), label=0, source=str(video))
        if not record.path.exists():
            raise FileNotFoundError(f"video not found: {video}")
        dataset = build_test_dataset(
            [record], modality=self.model.modality.name, segments=self.segments, crops=1, size=self.size,
            sampler=self.data_config.get("sampler", "off"), input_spec=self.model.input_spec,
            resize_to=self.data_config.get("resize_to"), flip=False, interval=self.data_config.get("interval"),
        )
        return dataset[0][0]
