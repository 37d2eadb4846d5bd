"""``offnet export``: a trained model as ONNX, TorchScript or safetensors weights with their description."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX, TorchScript or safetensors",
                       description="Write the model of a run directory or checkpoint as ONNX (dynamic batch axis), "
                       "TorchScript or safetensors weights plus a JSON description (class names, levels, segment "
                       "count, model config and preprocessing), for inference without offnet's training code or "
                       "without pickle. The input is the normalised test clip (B, T, C, H, W); the outputs are "
                       "the logits of every level.")
    p.add_argument("checkpoint", help="run directory or .pt checkpoint")
    p.add_argument("--format", dest="fmt", choices=("onnx", "torchscript", "safetensors"), default=None,
                   help="output format (default: from the suffix of --out: .onnx, .pt/.ts, .safetensors)")
    p.add_argument("--out", required=True, help="file to write (safetensors also writes FILE.json beside it)")
    p.add_argument("--segments", type=int, default=None,
                   help="segments T of the exported input (default: the run's test segments)")
    p.add_argument("--verify", action="store_true",
                   help="onnx: compare onnxruntime with PyTorch on a random clip and print the largest difference")
    p.add_argument("--no-optimize", dest="optimize", action="store_false",
                   help="onnx / torchscript: export the model as trained, with its BatchNorm layers (default: "
                   "folded into the convolutions, as offnet test runs it; same outputs within float rounding)")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from ..fileio import check_writable
    from ..tools.export import export_model, format_for, onnx_max_difference, require
    from ..tools.predict import Predictor

    fmt = format_for(args.out, args.fmt)
    if args.verify and fmt != "onnx":
        raise ValueError(f"--verify compares onnxruntime with PyTorch: it needs --format onnx, not {fmt}")
    # a missing package of the [export] extra is named before any work
    require(*{"onnx": ("onnx", "onnxscript"), "torchscript": (), "safetensors": ("safetensors",)}[fmt],
            *(("onnxruntime",) if args.verify else ()), purpose=f"{fmt} export")
    out = Path(args.out)
    check_writable(out)
    if fmt == "safetensors":
        check_writable(out.with_suffix(".json"))
        check_writable(out.with_suffix(".md"))
    predictor = Predictor(args.checkpoint, segments=args.segments)
    description = export_model(predictor.model, class_names=list(predictor.class_names),
                               data=predictor.data_config, out=out, fmt=fmt, segments=predictor.segments,
                               source=str(predictor.checkpoint), optimize=args.optimize)
    extra = f" + {out.with_suffix('.json')} + {out.with_suffix('.md')} (model card)" if fmt == "safetensors" else ""
    shape = ", ".join(str(s) for s in description["input"]["shape"][1:])
    folded = "; BatchNorm folded" if description["batchnorm_folded"] else ""
    print(f"wrote {out}{extra} ({fmt}{folded}; input (B, {shape}); outputs {', '.join(description['levels'])})")
    if args.verify:
        diffs = onnx_max_difference(predictor.model, out)
        print("max |onnxruntime - PyTorch|: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    return 0
