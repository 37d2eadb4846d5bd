"""Export a trained model: ONNX, TorchScript, or safetensors weights with a JSON description.

Every format takes the test clip ``x (B, T, C, H, W)`` (T = the run's test segments; frames already
normalised as the description's ``model_config.input_spec`` says) and gives one ``(B, num_classes)`` logit
tensor per level after the segment consensus, in the order of ``levels`` (``rgb, off28, off14, off7`` for
OFF(RGB)). The description (:func:`export_description`) travels with each format: class names, levels, the
segment count, the model config with its preprocessing, and the run's test-protocol data settings.

* **onnx** (``torch.onnx.export``, dynamo): input ``clips`` with a dynamic batch axis; outputs named after the
  levels; the description in the model's metadata (``offnet`` as JSON, ``segments`` as a number). The OFF
  pairs of T segments are unrolled into the graph, so T is fixed.
* **torchscript** (``torch.jit.trace``): the description in the archive's extra file ``offnet.json``.
* **safetensors**: the weights (no pickle, so nothing to trust) and the description both in the header
  metadata and in a sidecar ``FILE.json``; :func:`load_safetensors` (and ``Predictor``) rebuild the model.

Both graph formats hold the inference model of ``offnet test`` by default: BatchNorm folded into the
convolutions that feed it (``optimize=False``, ``offnet export --no-optimize``: as trained); the layout stays
the default one, so the graph suits any device.

onnx, onnxscript, onnxruntime and safetensors come with ``pip install 'offnet[export]'``.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from offnet.fileio import atomic_write_bytes, atomic_write_text

__all__ = ["EXPORT_FORMAT", "FORMATS", "LevelsModule", "export_description", "export_model", "export_onnx",
           "export_torchscript", "export_safetensors", "folded_copy", "load_safetensors", "find_safetensors",
           "format_for", "onnx_max_difference", "require"]

log = logging.getLogger(__name__)

EXPORT_FORMAT = "offnet-export-v1"
FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}
_SUFFIX_FORMAT = {".onnx": "onnx", ".safetensors": "safetensors", ".pt": "torchscript", ".ts": "torchscript",
                  ".torchscript": "torchscript"}
_DATA_KEYS = ("sampler", "test_segments", "interval", "size", "resize_to", "flip", "modality")


def require(*modules: str, purpose: str = "offnet export") -> None:
    """Import ``modules`` or raise :class:`~offnet._optional.MissingDependency` with the line that installs them."""
    from offnet._optional import require as require_one

    for name in modules:
        require_one(name, extra="export", purpose=purpose)


class LevelsModule(nn.Module):
    """An offnet model as a plain function for export: ``x (B, T, C, H, W)`` → tuple of ``(B, K)`` logits,
    one per level in ``model.levels`` order (exporters want tensors out, not a dict)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.levels = tuple(model.levels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x)
        return tuple(out[level] for level in self.levels)


def measured_accuracy(checkpoint: str | Path) -> dict[str, Any] | None:
    """The test results recorded beside a checkpoint's run (``RUN/test-split*/metrics.json``), if any."""
    from ..engine.scoring import run_dir_of

    try:
        run = run_dir_of(Path(checkpoint))
    except (ValueError, OSError):
        return None
    for metrics in sorted(run.glob("test-split*/metrics.json")):
        try:
            report = json.loads(metrics.read_text())
            meta = report.get("meta") or {}
            return {"file": str(metrics), "split": meta.get("split"), "segments": meta.get("segments"),
                    "crops": meta.get("crops"), "num_videos": report.get("num_videos"),
                    "levels": {level: {"top1": m["top1"], "mean_class_accuracy": m["mean_class_accuracy"]}
                               for level, m in (report.get("levels") or {}).items()}}
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return None


def model_card(description: dict[str, Any]) -> str:
    """A Markdown model card of an export: what the model is, its input, classes and measured accuracy."""
    cfg = description["model_config"]
    spec = cfg.get("input_spec") or {}
    data = description.get("data") or {}
    lines = [
        f"# {cfg.get('name', 'offnet')} · {cfg.get('backbone')} · {cfg.get('modality')}",
        "",
        "An offnet video classifier (Optical Flow Guided Feature, Sun et al., CVPR 2018).",
        "",
        f"- architecture `{cfg.get('name')}`, backbone `{cfg.get('backbone')}`, modality `{cfg.get('modality')}`, "
        f"{len(description['class_names'])} classes; levels {', '.join(description['levels'])}; the prediction is "
        f"the sum of {' + '.join(description['fuse'])}",
        f"- input `{description['input']['layout']}` = {description['input']['shape']}, "
        f"{'BGR' if spec.get('bgr') else 'RGB'} {'0-255' if spec.get('scale255') else '0-1'}, "
        f"mean {spec.get('mean')}, std {spec.get('std')}",
        f"- test protocol: {data.get('test_segments')} segments ({data.get('sampler', 'off')} sampler"
        + (f", {data['interval']} frames apart" if data.get("interval") else "") + "), "
        f"{data.get('size')} px centre crop" + (f" of frames resized to {data['resize_to']} px" if data.get(
            "resize_to") else ""),
        "- load: `offnet.tools.predict.Predictor(\"<this file or folder>\")` or `offnet predict FILE VIDEO`",
        "",
    ]
    accuracy = description.get("accuracy")
    if accuracy:
        lines += [f"## Measured accuracy ({accuracy.get('num_videos')} test videos, split {accuracy.get('split')}, "
                  f"{accuracy.get('segments')} segments x {accuracy.get('crops')} crops)", "",
                  "| level | top-1 | mean class |", "|---|---|---|"]
        lines += [f"| {level} | {100 * m['top1']:.1f} % | {100 * m['mean_class_accuracy']:.1f} % |"
                  for level, m in accuracy["levels"].items()]
    else:
        lines.append("No test result was recorded with the run it came from.")
    lines += ["", "## Classes", "", ", ".join(description["class_names"]), ""]
    return "\n".join(lines)


def export_description(model: nn.Module, *, class_names: list[str], data: dict[str, Any], segments: int,
                       source: str = "") -> dict[str, Any]:
    """The JSON that travels with an export (module docstring)."""
    kept = {k: data[k] for k in _DATA_KEYS if k in data}
    kept["test_segments"] = segments
    kept.setdefault("size", int(model.input_spec.size))
    return {
        "format": EXPORT_FORMAT,
        "model_config": dict(model.config),
        "class_names": [str(c) for c in class_names],
        "levels": list(model.levels),
        "backbone_level": model.backbone_level,
        "final_level": model.final_level,
        "fuse": [model.backbone_level] if model.final_level == model.backbone_level
        else [model.backbone_level, model.final_level],
        "segments": segments,
        "input": {"shape": ["batch", segments, model.modality.data_channels, kept["size"], kept["size"]],
                  "layout": "(B, T, C, H, W)"},
        "data": kept,
        "source": source,
        "accuracy": measured_accuracy(source) if source else None,
    }


def _example(model: nn.Module, description: dict[str, Any], batch: int = 2) -> torch.Tensor:
    _, t, c, h, w = description["input"]["shape"]
    return torch.randn(batch, t, c, h, w, generator=torch.Generator().manual_seed(0))  # (B, T, C, H, W)


def export_onnx(model: nn.Module, description: dict[str, Any], out: str | Path) -> Path:
    """Write ``out`` (.onnx) with a dynamic batch axis and the description in its metadata."""
    require("onnx", "onnxscript", purpose="ONNX export")
    import onnx

    wrapped = LevelsModule(model.eval()).eval()
    x = _example(model, description)
    batch = torch.export.Dim("batch", min=1, max=4096)
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)  # "torchvision is not installed": irrelevant to offnet models
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.onnx.export(wrapped, (x,), dynamo=True, input_names=["clips"],
                                        output_names=list(wrapped.levels), dynamic_shapes={"x": {0: batch}},
                                        optimize=True, verbose=False)
    finally:
        registration.setLevel(level)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {"offnet": json.dumps(description), "segments": str(description["segments"]),
                                        "class_names": json.dumps(description["class_names"])})
    return atomic_write_bytes(out, proto.SerializeToString())


def onnx_max_difference(model: nn.Module, path: str | Path, *, batch: int = 3) -> dict[str, float]:
    """Max absolute difference per level between onnxruntime on ``path`` and PyTorch on a random clip of
    ``batch`` videos (another batch size than the export's, so the dynamic axis is exercised)."""
    require("onnx", "onnxruntime", purpose="checking an ONNX export")
    import onnx
    import onnxruntime as ort

    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    description = json.loads(meta["offnet"])
    x = _example(model, description, batch=batch)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = LevelsModule(model.eval())(x)
    names = [o.name for o in session.get_outputs()]
    return {name: float((torch.from_numpy(o) - e).abs().max()) for name, o, e in zip(names, outputs, expected)}


def export_torchscript(model: nn.Module, description: dict[str, Any], out: str | Path) -> Path:
    """Write ``out`` (a TorchScript archive, traced) with the description as ``offnet.json`` inside."""
    wrapped = LevelsModule(model.eval()).eval()
    x = _example(model, description)
    with warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.export, and shape checks trace as constants: both harmless
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapped, (x,), check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={"offnet.json": json.dumps(description)})
    return atomic_write_bytes(out, buffer.getvalue())


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def export_safetensors(model: nn.Module, description: dict[str, Any], out: str | Path) -> Path:
    """Write ``out`` (.safetensors) and the sidecar ``out`` with suffix ``.json``; returns ``out``."""
    require("safetensors", purpose="safetensors export")
    from safetensors.torch import save

    out = Path(out)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}  # (no shared storage)
    text = json.dumps(description, indent=2)
    atomic_write_bytes(out, save(state, metadata={"offnet": json.dumps(description)}))
    atomic_write_text(_sidecar(out), text + "\n")
    atomic_write_text(out.with_suffix(".md"), model_card(description))
    return out


def find_safetensors(path: str | Path) -> Path | None:
    """``path`` itself if it is a ``.safetensors`` file, the one ``.safetensors`` file of a folder (that is not
    a run directory), else ``None``; several in one folder is an error listing them."""
    path = Path(path)
    if path.is_file():
        return path if path.suffix == ".safetensors" else None
    if not path.is_dir() or any(path.glob("stage*/")) or (path / "best.pt").is_file() or (path / "last.pt").is_file():
        return None
    files = sorted(path.glob("*.safetensors"))
    if len(files) > 1:
        raise ValueError(f"{path} holds {len(files)} .safetensors files ({', '.join(f.name for f in files)}); "
                         "name the one to load")
    return files[0] if files else None


def load_safetensors(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a safetensors export: ``(model in eval mode, description)``.

    The description comes from the sidecar ``.json`` when present, else from the file's header.
    """
    require("safetensors", purpose="loading safetensors weights")
    from safetensors import SafetensorError
    from safetensors.torch import load

    import offnet
    from offnet.engine.checkpoint import check_finite_weights

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; write one with `offnet export RUN --format safetensors`")
    try:
        data = path.read_bytes()
        state = load(data)
        header = _header_metadata(data)
    except (SafetensorError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable safetensors file ({exc}); export it again") from exc
    sidecar = _sidecar(path)
    if sidecar.is_file():
        try:
            description = json.loads(sidecar.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{sidecar}:{exc.lineno}: not valid JSON ({exc.msg}); export again") from None
    elif "offnet" in header:
        description = json.loads(header["offnet"])
    else:
        raise ValueError(f"{path} has no offnet model description: expected {sidecar.name} beside it (written by "
                         "`offnet export --format safetensors`)")
    if not isinstance(description, dict) or description.get("format") != EXPORT_FORMAT:
        found = description.get("format") if isinstance(description, dict) else type(description).__name__
        raise ValueError(f"{sidecar if sidecar.is_file() else path}: format {found!r}, expected {EXPORT_FORMAT!r}")
    check_finite_weights(state, source=str(path))
    model = offnet.create_model(**description["model_config"])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit the model its description names: {exc}") from exc
    return model.eval(), description


def _header_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors header (8-byte length, then JSON)."""
    size = int.from_bytes(data[:8], "little")
    return dict(json.loads(data[8 : 8 + size]).get("__metadata__") or {})


def format_for(out: str | Path, fmt: str | None) -> str:
    """The export format: ``fmt``, or the one the suffix of ``out`` names; a mismatch is an error."""
    guessed = _SUFFIX_FORMAT.get(Path(out).suffix.lower())
    if fmt is None:
        if guessed is None:
            raise ValueError(f"--out {out}: cannot tell the format from {Path(out).suffix or 'no suffix'!r}; pass "
                             f"--format {'|'.join(FORMATS)}")
        return guessed
    if fmt not in FORMATS:
        raise ValueError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if guessed is not None and guessed != fmt:
        raise ValueError(f"--out {out} looks like {guessed} but --format is {fmt}; name it *{FORMATS[fmt]}")
    return fmt


def folded_copy(model: nn.Module) -> tuple[nn.Module, int]:
    """An eval-mode copy of ``model`` with its BatchNorm folded into the convolutions that feed it where the
    structure allows (:meth:`~offnet.models.networks.ActionRecognizer.fold_batchnorm`), in the default layout
    (a graph for any device), and how many were folded; ``model`` is left as it is."""
    import copy

    folded = copy.deepcopy(model).eval()
    fold = getattr(folded, "fold_batchnorm", None)
    return folded, int(fold()) if callable(fold) else 0


def export_model(model: nn.Module, *, class_names: list[str], data: dict[str, Any], out: str | Path,
                 fmt: str, segments: int, source: str = "", optimize: bool = True) -> dict[str, Any]:
    """Export ``model`` to ``out`` in ``fmt``; returns the description written with it.

    ``optimize`` (default): the graph formats (onnx, torchscript) get the inference model of ``offnet test``
    with BatchNorm folded (:func:`folded_copy`; same outputs within float rounding, fewer operations);
    safetensors always holds the trainable weights. The description records ``batchnorm_folded``.
    """
    if segments < 1 or (model.arch == "off" and segments < 2):
        raise ValueError(f"--segments must be at least {2 if model.arch == 'off' else 1} for {model.arch}, got "
                         f"{segments}")
    description = export_description(model, class_names=class_names, data=data, segments=segments, source=source)
    exported, folded = folded_copy(model) if optimize and fmt != "safetensors" else (model.eval(), 0)
    description["batchnorm_folded"] = folded > 0
    writer = {"onnx": export_onnx, "torchscript": export_torchscript, "safetensors": export_safetensors}[fmt]
    writer(exported, description, out)
    log.info("exported %s to %s%s", fmt, out, f" ({folded} BatchNorm layers folded)" if folded else "")
    return description
