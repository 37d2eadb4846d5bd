"""``offnet train``: run the training stages of a config (multi-GPU through torchrun)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["register", "run_train"]

EPILOG = """\
examples:
  offnet train configs/off_tiny_synth_rgb.yaml
  offnet train configs/off_bninception_ucf101_rgb.yaml data.root=/data/UCF-101 stage2.lr=0.01
  offnet train configs/off_tiny_synth_rgb.yaml --print-config
  offnet train --resume --run-dir runs/off_tiny_synth_rgb          (config taken from the run)
  torchrun --nproc-per-node 4 --no-python offnet train configs/off_bninception_ucf101_rgb.yaml data.root=…
"""


class _IntermixedParser(argparse.ArgumentParser):
    """Lets ``KEY=VALUE`` overrides come after options (``train CFG --run-dir R a=1``).

    Plain argparse stops filling positionals at the first option; its intermixed mode does not, but
    the top-level dispatcher (with sub-commands) cannot use it, so this sub-parser switches to it.
    """

    _inner = False

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        if self._inner:
            return super().parse_known_args(args, namespace)
        self._inner = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train TSN / OFF / Hyp-Net (all stages of a config)", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train the stages listed in CONFIG; KEY=VALUE overrides any config key "
        "(dotted, values parsed as YAML).",
    )
    p.add_argument("config", nargs="?", help="YAML config (optional with --resume: RUN/config.yaml)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. optim.clip_grad_norm=20")
    p.add_argument("--run-dir", type=Path, help="output directory (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last.pt")
    p.add_argument("--finetune-from", type=Path, metavar="CKPT",
                   help="start from another run's weights (checkpoint or run dir); heads of other shapes "
                   "are re-initialised")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.__class__ = _IntermixedParser
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from offnet.config import load_config

    config_path = args.config
    overrides = list(args.overrides)
    if config_path is not None and "=" in config_path and not Path(config_path).exists():
        overrides.insert(0, config_path)  # `offnet train --resume --run-dir R key=value`
        config_path = None
    if config_path is None:
        if not (args.resume and args.run_dir is not None):
            raise ValueError("give a config file (see configs/), or --resume --run-dir RUN to continue a run")
        config_path = args.run_dir / "config.yaml"
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path} does not exist: is {args.run_dir} an `offnet train` run?")
    config = load_config(config_path, overrides)
    if args.print_config:
        print(config.to_yaml(), end="")
        print("# resolved per stage (stageN.* overrides data.sampler, data.num_segments, train.batch_size,")
        print("# train.accum_steps, optim.clip_grad_norm):")
        for line in config.describe_stages().splitlines():
            print(f"#   {line}")
        return 0
    name = config.name if config.name != "offnet" else Path(config_path).stem
    run_dir = args.run_dir or Path("runs") / name

    from offnet.engine.trainer import train

    is_main = int(os.environ.get("RANK", "0")) == 0
    result = train(config, run_dir=run_dir, resume=args.resume, finetune_from=args.finetune_from,
                   progress=not args.no_progress and is_main)
    if is_main:
        print(f"run directory: {result.run_dir}")
        for stage, path in result.checkpoints.items():
            print(f"  stage {stage}: {path}")
        if result.finetune_skipped:
            print(f"  fine-tuned: {len(result.finetune_skipped)} tensors newly initialised "
                  f"({', '.join(result.finetune_skipped)})")
        best = "n/a (no validation part)" if result.best_metric is None else f"{result.best_metric:.4f}"
        print(f"best validation accuracy: {best}; {result.clips_per_s:.1f} clips/s; {result.wall_s:.1f} s")
    return 0
