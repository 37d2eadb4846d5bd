"""Run configuration: nested dataclasses, loaded from flat YAML, overridable with ``key=value``.

A config file holds the sections ``model``, ``data``, ``optim``, ``train`` and ``stage1`` …
``stage3`` plus the top-level keys ``stages``, ``seed`` and ``name``. Every key is optional; a key
that does not exist is an error naming it and listing the valid ones, so a typo never passes
silently. Command-line overrides use dotted keys whose values are parsed as YAML::

    offnet train configs/off_tiny_synth_rgb.yaml optim.clip_grad_norm=20 stage2.lr=0.01 data.flip=false

YAML is read with a ``SafeLoader`` using YAML 1.2 booleans, so ``off`` (the model and sampler name)
stays a string. The fully resolved config (:meth:`Config.to_yaml`) is written to ``config.yaml`` in every run directory.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ModelConfig",
    "DataConfig",
    "OptimConfig",
    "StageConfig",
    "StageSettings",
    "TrainConfig",
    "Config",
    "load_config",
    "apply_overrides",
]

class _SafeLoader12(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 booleans: only true/false are booleans.

    YAML 1.1 (PyYAML's default) reads ``off``/``on``/``yes``/``no`` as booleans, which would turn
    ``model.name: off`` into ``False``. Same safety as ``yaml.safe_load``: no Python object tags.
    """


_SafeLoader12.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_SafeLoader12.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _safe_load(text: str) -> Any:
    """``yaml.safe_load`` with YAML 1.2 booleans (see :class:`_SafeLoader12`)."""
    loader = _SafeLoader12(text)  # a SafeLoader: no Python object tags
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


MODEL_NAMES = ("tsn", "off", "hypnet")
MODALITY_NAMES = ("rgb", "flow", "rawoff", "rgbdiff")
DATASETS = ("ucf101", "hmdb51", "kinetics", "sthv2", "folder", "list", "synth")
#: datasets whose classes a horizontal flip would swap ("left to right"): data.flip defaults to false
NO_FLIP_DATASETS = ("sthv2",)
SAMPLERS = ("tsn", "off", "off_code")
SCHEDULES = ("multistep", "cosine", "constant")
AMP_MODES = ("none", "bf16", "fp16")
OPTIMIZERS = ("sgd", "adamw")
BAD_VIDEO_POLICIES = ("skip", "fail")


@dataclass
class ModelConfig:
    """Which network to build: the keyword arguments of ``offnet.create_model`` plus BN policy."""

    name: str = "off"  # tsn | off | hypnet
    backbone: str = "bninception"  # bninception | resnet18 | resnet50 | tiny | timm:NAME | a registered name
    modality: str = "rgb"  # rgb | flow | rawoff | rgbdiff
    pretrained: str | None = None  # backbone weights file (.pt), or None for random init
    dropout: float = 0.8  # dropout before every classification head (paper/TSN: 0.8)
    spatial_mode: str = "paper"  # paper (Sobel x/y on 128 ch) | official (32-ch projection, code)
    replicate_official_misalignment: bool = False  # reproduce the code's spatial-branch pairing bug
    subnet_norm: bool = False  # BN after each OFF unit's transition conv (from-scratch CPU recipes)
    block14b_kernel: int = 3  # last kernel of block 14b: 3 (authors' quirk) or 1 (adaptive optimisers)
    reduce_channels: int | None = None  # channels of each tap's 1x1 reduction (None: 128; tiny backbone 32)
    subnet_width: float | None = None  # width multiplier of the OFF sub-network (None: 1; tiny backbone 0.25)
    partial_bn: bool = True  # TSN partial BN in stages 1 and 3: only the first BN layer adapts
    partial_bn_train_conv1: bool = False  # stage 2: conv1's BN keeps batch statistics (official code)
    allow_untrained_frozen_backbone: bool = False  # let stage 2 freeze random weights (ablations, tests)


@dataclass
class DataConfig:
    """Where the videos are and how clips are sampled and augmented."""

    dataset: str = "ucf101"  # ucf101 | hmdb51 | kinetics | sthv2 | folder (root/<class>/<video>) | list | synth
    root: str | None = None  # dataset root (videos, or the folder tree); required except for synth
    split: int = 1  # official split number (UCF-101: 1-3, HMDB-51: 1-3)
    frames_root: str | None = None  # extracted frames (img_00001.jpg, flow_x_00001.jpg …), if used
    train_list: str | None = None  # dataset=list: "path num_frames label" lines of the training split
    test_list: str | None = None  # dataset=list: lines of the test split
    class_file: str | None = None  # dataset=list/folder: one class name per line (optional)
    sampler: str = "off"  # tsn (TSN segments) | off (paper's exact interval) | off_code (code's grid)
    num_segments: int = 7  # segments per training clip (paper: 7; TSN: 3)
    test_segments: int = 25  # segments per test clip (paper: 25)
    # OFF sampler: a fixed interval between segments in frames (None: the paper's L // test_segments per video).
    # Motion per interval is what the OFF taps see; `offnet demo --data` sets it from the data's measured motion.
    interval: int | None = None
    # OFF sampler, training only: each clip draws its interval from interval … interval_max (None: always interval),
    # so that slow and fast motions both reach a clear displacement in some clips; `offnet demo --data` sets it from
    # the spread of the measured motion
    interval_max: int | None = None
    val_segments: int | None = None  # validation: first N segments of the test clip (None = all test_segments)
    size: int = 224  # network input side in pixels
    resize_to: int | None = None  # resize frames' shorter side before cropping (None = as decoded)
    scales: list[float] = field(default_factory=lambda: [1.0, 0.875, 0.75, 0.66])  # multi-scale crop
    flip: bool = True  # random horizontal flip at train time (disable for direction-sensitive classes; sthv2: false)
    # with flip: the mirrored class of each class, so that a flip swaps "left"/"right" labels instead of corrupting
    # them ({MoveLeft: MoveRight, ...}; unnamed classes are their own mirror), or "auto" (from the class names'
    # left/right, clockwise/counterclockwise words: offnet.data.labelmaps); None: a plain flip
    flip_map: dict[str, str] | str | None = None
    # time reversal: the class of each class's clips played backwards ({ZoomIn: ZoomOut, ...}; unnamed classes are
    # never reversed), or "auto" (time-reversal twins read from the class names: offnet.data.labelmaps); half of the
    # training clips of those classes play backwards with the twin's label. None: off. Not for flow
    reverse_map: dict[str, str] | str | None = None
    num_workers: int = 4  # DataLoader worker processes per training process
    on_bad_video: str = "skip"  # skip (log and drop) | fail (stop) for unreadable/too-short videos
    min_frames: int = 1  # videos with fewer frames count as bad
    val_fraction: float = 0.1  # part of the TRAIN split held out for validation / fusion weights
    # dataset=synth: a synthetic benchmark is generated into ``root`` if missing
    synth_preset: str = "actions"  # actions (offnet.data.synth) | motion (offnet.data.synth_motion)
    synth_classes: list[str] | None = None  # subset of the preset's classes (None = the preset's default)
    synth_videos_per_class: int = 12  # generated videos per class (train + test)
    synth_size: int = 64  # frame side (actions) or frame width (motion) in pixels
    synth_height: int | None = None  # motion: frame height (None = 3/4 of the width)
    synth_frames: int = 32  # frames per generated video


@dataclass
class OptimConfig:
    """Optimiser settings shared by every stage (paper / TSN values: SGD)."""

    name: str = "sgd"  # sgd (paper) | adamw (for small from-scratch CPU runs, e.g. the demo)
    momentum: float = 0.9  # sgd only
    weight_decay: float = 5e-4  # on weights only; biases and BN get none (model.param_groups)
    clip_grad_norm: float | None = 40.0  # global L2 norm clip; None disables
    nesterov: bool = False


@dataclass
class StageConfig:
    """Learning-rate schedule and length of one training stage; iteration = one optimiser step."""

    lr: float = 0.02  # base learning rate (times each group's lr_mult)
    iterations: int | None = 20000  # optimiser steps in this stage
    epochs: float | None = None  # if set, replaces iterations: passes over the training split
    schedule: str = "multistep"  # multistep (x gamma at milestones) | cosine (warm restarts) | constant
    milestones: list[int] = field(default_factory=list)  # multistep: steps where lr is multiplied by gamma
    gamma: float = 0.1  # multistep factor
    num_cycles: int = 1  # cosine: equal-length restart cycles over the stage
    warmup_iters: int = 0  # linear warm-up from lr * warmup_factor over this many steps
    warmup_factor: float = 0.1  # starting fraction of lr during warm-up
    loss_weights: dict[str, float] = field(default_factory=dict)  # per level, default 1.0
    focal_gamma: float = 0.0  # 0: cross-entropy; > 0: focal loss, (1 - p)^gamma down-weights examples already right
    # False: the backbone's own head (TSN level) still trains, on detached features, so its loss does not shape the
    # backbone (end-to-end training from scratch on data where appearance carries no class: it could only
    # memorise the training videos' appearance)
    backbone_head_grad: bool = True
    # This stage's clips and steps; None = the run's value (data.sampler, data.num_segments, train.batch_size,
    # train.accum_steps, optim.clip_grad_norm). The paper's OFF runs train stage 1 as TSN (3 segments over
    # the whole video, its batch and clipping) and stages 2-3 with the OFF sampler.
    sampler: str | None = None  # tsn | off | off_code
    num_segments: int | None = None  # segments per training clip
    batch_size: int | None = None  # clips per micro-batch per process
    accum_steps: int | None = None  # micro-batches per optimiser step
    clip_grad_norm: float | None = None  # global L2 norm clip; 0 = no clipping in this stage


@dataclass
class TrainConfig:
    """How the training loop runs: batch, precision, devices, logging and checkpoint cadence."""

    batch_size: int = 16  # clips per forward pass per process (micro-batch)
    accum_steps: int = 1  # micro-batches per optimiser step (global batch = batch*accum*world)
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N
    amp: str = "none"  # none | bf16 (CPU or CUDA autocast) | fp16 (CUDA autocast + GradScaler)
    # train in the channels-last memory layout: true | false | auto (on a CPU, and on a GPU under bf16/fp16
    # autocast; measured on a CPU: training steps 1.1-1.24x as fast, the same results within float rounding)
    channels_last: bool | str = "auto"
    checkpoint_every: int = 500  # write last.pt every this many steps (and at the end)
    val_every: int = 1000  # validate (and maybe write best.pt) every this many steps (and at the end)
    log_every: int = 20  # log.jsonl / TensorBoard record every this many steps
    resume: bool = False  # continue from RUN/stage*/last.pt
    tensorboard: bool = True  # write TensorBoard scalars under RUN/tb
    deterministic: bool = False  # torch.use_deterministic_algorithms (slower on CUDA)
    # validate, save and test a moving average of the weights over this share of each stage's steps (e.g. 0.1);
    # None: the weights as trained (offnet.engine.ema)
    ema_window: float | None = None


@dataclass(frozen=True)
class StageSettings:
    """What one stage trains on, resolved from its ``stageN`` section and the run's defaults."""

    stage: int
    sampler: str
    num_segments: int
    test_segments: int
    batch_size: int
    accum_steps: int
    clip_grad_norm: float | None  # None: no clipping

    def describe(self) -> str:
        clip = "off" if self.clip_grad_norm is None else f"{self.clip_grad_norm:g}"
        return (f"stage {self.stage}: sampler {self.sampler}, {self.num_segments} segments "
                f"(test {self.test_segments}), batch {self.batch_size} x {self.accum_steps} accumulation, "
                f"gradient clip {clip}")


@dataclass
class Config:
    """A whole training run."""

    name: str = "offnet"  # run name (default run directory runs/<name>)
    seed: int = 0  # seeds the data order, augmentation, model init and dropout
    stages: list[int] = field(default_factory=lambda: [1, 2, 3])  # subset of [1, 2, 3], run in order
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # stage 1: TSN backbone; stage 2: OFF sub-network, paper multistep; stage 3: fine-tune
    stage1: StageConfig = field(
        default_factory=lambda: StageConfig(lr=0.001, iterations=4500, milestones=[2000, 4000])
    )
    stage2: StageConfig = field(
        default_factory=lambda: StageConfig(lr=0.02, iterations=20000, milestones=[10000, 15000, 18000])
    )
    stage3: StageConfig = field(
        default_factory=lambda: StageConfig(lr=2e-4, iterations=4000, schedule="cosine", num_cycles=1)
    )

    def stage(self, number: int) -> StageConfig:
        """The settings of stage ``number`` (1, 2 or 3)."""
        if number not in (1, 2, 3):
            raise ValueError(f"stage {number!r} does not exist; stages are 1, 2 and 3")
        return getattr(self, f"stage{number}")

    def stage_settings(self, number: int) -> StageSettings:
        """Sampler, segments, batch and clipping of stage ``number``: its own values, else the run's."""
        stage = self.stage(number)
        clip = self.optim.clip_grad_norm if stage.clip_grad_norm is None else stage.clip_grad_norm
        return StageSettings(
            stage=number,
            sampler=stage.sampler if stage.sampler is not None else self.data.sampler,
            num_segments=stage.num_segments if stage.num_segments is not None else self.data.num_segments,
            test_segments=self.data.test_segments,
            batch_size=stage.batch_size if stage.batch_size is not None else self.train.batch_size,
            accum_steps=stage.accum_steps if stage.accum_steps is not None else self.train.accum_steps,
            clip_grad_norm=clip if clip else None,
        )

    def describe_stages(self) -> str:
        """One line per planned stage with its resolved data and step settings."""
        return "\n".join(self.stage_settings(number).describe() for number in self.stages)

    def to_dict(self) -> dict[str, Any]:
        """A plain nested dict (only str/int/float/bool/None/list/dict)."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> Config:
        """Build and validate a config from a (possibly partial) nested dict."""
        config = _build(cls, data, prefix="", source=source)
        section = data.get("data") if isinstance(data, dict) else None
        if config.data.dataset in NO_FLIP_DATASETS and not (isinstance(section, dict) and "flip" in section):
            config.data.flip = False  # a flip would swap its "left"/"right" classes; data.flip=true overrides
        config.validate(source=source)
        return config

    def validate(self, *, source: str = "config") -> None:
        """Check values that a type alone cannot; raises ``ValueError`` naming the key."""
        checks: list[tuple[str, Any, tuple]] = [
            ("model.name", self.model.name, MODEL_NAMES),
            ("model.modality", self.model.modality, MODALITY_NAMES),
            ("model.spatial_mode", self.model.spatial_mode, ("paper", "official")),
            ("data.dataset", self.data.dataset, DATASETS),
            ("data.sampler", self.data.sampler, SAMPLERS),
            ("data.on_bad_video", self.data.on_bad_video, BAD_VIDEO_POLICIES),
            ("data.synth_preset", self.data.synth_preset, ("actions", "motion")),
            ("model.block14b_kernel", self.model.block14b_kernel, (1, 3)),
            ("train.amp", self.train.amp, AMP_MODES),
            ("optim.name", self.optim.name, OPTIMIZERS),
        ]
        for number in (1, 2, 3):
            checks.append((f"stage{number}.schedule", self.stage(number).schedule, SCHEDULES))
            if self.stage(number).sampler is not None:
                checks.append((f"stage{number}.sampler", self.stage(number).sampler, SAMPLERS))
        for key, value, valid in checks:
            if value not in valid:
                raise ValueError(f"{source}: {key}={value!r} is not valid; choose one of {list(valid)}")
        if self.train.channels_last not in (True, False, "auto"):
            raise ValueError(f"{source}: train.channels_last={self.train.channels_last!r} is not valid; choose true, "
                             "false or auto")
        if isinstance(self.data.flip_map, str) and self.data.flip_map != "auto":
            raise ValueError(f"{source}: data.flip_map={self.data.flip_map!r} is not valid; give 'auto' or a mapping "
                             "of class names ({MoveLeft: MoveRight, ...})")
        if isinstance(self.data.reverse_map, str) and self.data.reverse_map != "auto":
            raise ValueError(f"{source}: data.reverse_map={self.data.reverse_map!r} is not valid; give 'auto' or a "
                             "mapping of class names ({ZoomIn: ZoomOut, ...})")
        if self.data.reverse_map is not None and self.model.modality == "flow":
            raise ValueError(f"{source}: data.reverse_map cannot reverse flow clips (their vectors would change "
                             "sign); drop it for model.modality=flow")
        if self.data.flip_map is not None and not self.data.flip:
            raise ValueError(f"{source}: data.flip_map is set but data.flip is false; set data.flip=true to flip "
                             "with the label map, or drop data.flip_map")
        if not self.model.backbone.strip():
            raise ValueError(f"{source}: model.backbone is empty; name a backbone (e.g. bninception, resnet50, "
                             "timm:NAME or one added with offnet.register_backbone)")
        if (
            not self.stages
            or any(s not in (1, 2, 3) for s in self.stages)
            or self.stages != sorted(set(self.stages))
        ):
            raise ValueError(
                f"{source}: stages={self.stages!r} is not valid; give an increasing subset of [1, 2, 3]"
            )
        if self.model.name == "tsn" and self.stages != [1]:
            raise ValueError(
                f"{source}: model.name=tsn has only stage 1; set stages: [1] (got {self.stages})"
            )
        positive = {
            "data.num_segments": self.data.num_segments,
            "data.test_segments": self.data.test_segments,
            "data.size": self.data.size,
            "data.min_frames": self.data.min_frames,
            "train.batch_size": self.train.batch_size,
            "train.accum_steps": self.train.accum_steps,
            "train.checkpoint_every": self.train.checkpoint_every,
            "train.val_every": self.train.val_every,
            "train.log_every": self.train.log_every,
        }
        for key, value in positive.items():
            if value < 1:
                raise ValueError(f"{source}: {key}={value!r} must be at least 1")
        if self.data.interval is not None and self.data.interval < 1:
            raise ValueError(f"{source}: data.interval={self.data.interval!r} must be at least 1 frame "
                             "(null: the paper's L // test_segments)")
        if self.data.interval_max is not None and (self.data.interval is None
                                                   or self.data.interval_max < self.data.interval):
            raise ValueError(f"{source}: data.interval_max={self.data.interval_max!r} must be at least data.interval, "
                             f"which must be set (got data.interval={self.data.interval!r})")
        if self.model.name != "tsn" and self.data.num_segments < 2:
            raise ValueError(
                f"{source}: model.name={self.model.name} needs data.num_segments >= 2 (pairs of segments); "
                f"got {self.data.num_segments}"
            )
        if self.train.ema_window is not None and not 0 < self.train.ema_window <= 1:
            raise ValueError(f"{source}: train.ema_window={self.train.ema_window!r} is a share of each stage's steps: "
                             "give a number in (0, 1], e.g. 0.1 (null: no weight averaging)")
        if self.optim.clip_grad_norm is not None and self.optim.clip_grad_norm <= 0:
            raise ValueError(f"{source}: optim.clip_grad_norm={self.optim.clip_grad_norm!r} must be positive "
                             "(null disables clipping)")
        for number in (1, 2, 3):
            stage = self.stage(number)
            for name in ("num_segments", "batch_size", "accum_steps"):
                value = getattr(stage, name)
                if value is not None and value < 1:
                    raise ValueError(f"{source}: stage{number}.{name}={value!r} must be at least 1")
            if stage.clip_grad_norm is not None and stage.clip_grad_norm < 0:
                raise ValueError(f"{source}: stage{number}.clip_grad_norm={stage.clip_grad_norm!r} must be >= 0 "
                                 "(0 = no clipping in this stage)")
            segments = self.stage_settings(number).num_segments
            if number in self.stages and number > 1 and self.model.name != "tsn" and segments < 2:
                raise ValueError(
                    f"{source}: stage {number} of model.name={self.model.name} needs at least 2 segments (pairs "
                    f"of segments); got {segments} (stage{number}.num_segments / data.num_segments)"
                )
        if not 0.0 <= self.data.val_fraction < 1.0:
            raise ValueError(f"{source}: data.val_fraction={self.data.val_fraction!r} must be in [0, 1)")
        if self.data.num_workers < 0:
            raise ValueError(f"{source}: data.num_workers={self.data.num_workers!r} must be >= 0")
        if self.model.reduce_channels is not None and self.model.reduce_channels < 1:
            raise ValueError(f"{source}: model.reduce_channels={self.model.reduce_channels!r} must be at least 1")
        if self.model.subnet_width is not None and self.model.subnet_width <= 0:
            raise ValueError(f"{source}: model.subnet_width={self.model.subnet_width!r} must be positive")
        if not 0.0 <= self.model.dropout < 1.0:
            raise ValueError(f"{source}: model.dropout={self.model.dropout!r} must be in [0, 1)")
        for number in self.stages:
            stage = self.stage(number)
            key = f"stage{number}"
            if stage.iterations is None and stage.epochs is None:
                raise ValueError(f"{source}: {key} needs {key}.iterations or {key}.epochs")
            if stage.iterations is not None and stage.iterations < 1:
                raise ValueError(f"{source}: {key}.iterations={stage.iterations!r} must be at least 1")
            if stage.epochs is not None and stage.epochs <= 0:
                raise ValueError(f"{source}: {key}.epochs={stage.epochs!r} must be positive")
            if stage.lr <= 0:
                raise ValueError(f"{source}: {key}.lr={stage.lr!r} must be positive")
            if stage.milestones != sorted(stage.milestones):
                raise ValueError(f"{source}: {key}.milestones={stage.milestones!r} must be increasing")
            if stage.focal_gamma < 0:
                raise ValueError(f"{source}: {key}.focal_gamma={stage.focal_gamma!r} must be >= 0")
            if stage.num_cycles < 1 or stage.warmup_iters < 0:
                raise ValueError(f"{source}: {key}.num_cycles must be >= 1 and {key}.warmup_iters >= 0")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``hint`` (ints are accepted for floats)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0])
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise ValueError(f"{source}: {key}={value!r} must be a list")
        return [_coerce(v, item, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ValueError(f"{source}: {key}={value!r} must be a mapping")
        return {str(k): _coerce(v, item, f"{key}.{k}", source) for k, v in value.items()}
    if hint is float:
        number = value
        if isinstance(value, str):
            # YAML 1.1 reads 1e-3 (no dot) as a string; every float a user would write is accepted
            try:
                number = float(value.strip())
            except ValueError:
                raise ValueError(f"{source}: {key}={value!r} must be a number") from None
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ValueError(f"{source}: {key}={value!r} must be a number")
        if not math.isfinite(number):
            raise ValueError(f"{source}: {key}={value!r} must be a finite number")
        return float(number)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{source}: {key}={value!r} must be an integer")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{source}: {key}={value!r} must be true or false")
        return value
    if hint is str:
        if not isinstance(value, str | Path):
            raise ValueError(f"{source}: {key}={value!r} must be a string")
        return str(value)
    raise TypeError(f"unsupported config annotation {hint!r} for {key}")  # internal


def _build(cls: type, data: Any, *, prefix: str, source: str, base: Any = None) -> Any:
    """Instantiate ``cls`` from ``data``; keys not given keep the values of ``base`` (or the defaults)."""
    where = prefix.rstrip(".") or "top level"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{source}: {where} must be a mapping of keys to values, got {data!r}")
    types_ = _field_types(cls)
    unknown = sorted(set(map(str, data)) - set(types_))
    if unknown:
        raise ValueError(
            f"{source}: unknown key {prefix}{unknown[0]!s} at {where}; valid keys: {sorted(types_)}"
        )
    instance = base if base is not None else cls()
    kwargs = {}
    for name, value in data.items():
        hint = types_[name]
        if dataclasses.is_dataclass(hint):
            default = getattr(instance, name)
            kwargs[name] = _build(hint, value, prefix=f"{prefix}{name}.", source=source, base=default)
        else:
            kwargs[name] = _coerce(value, hint, f"{prefix}{name}", source)
    return dataclasses.replace(instance, **kwargs)


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"override {key}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings to a nested dict (values parsed with ``yaml.safe_load``)."""
    data = _safe_load(yaml.safe_dump(data))  # deep copy through plain types
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} is not of the form key=value (e.g. optim.clip_grad_norm=20)")
        try:
            value = _safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ValueError(f"override {item!r}: value {raw!r} is not valid YAML ({exc})") from exc
        _set_dotted(data, key.strip(), value)
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or start from the defaults when ``path`` is None) and apply overrides."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        if path.is_dir():
            run = (path / "config.yaml").is_file()
            hint = " (a run directory: use --resume --run-dir, or its config.yaml)" if run else ""
            raise ValueError(f"config {str(path)!r} is a folder, not a YAML file{hint}")
        if not path.is_file():
            raise FileNotFoundError(f"config file {str(path)!r} does not exist (see configs/ for examples)")
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{source}: not a text file (not UTF-8); give a YAML config") from None
        try:
            loaded = _safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{source}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{source}: the top level must be a mapping (model:, data:, …), got {loaded!r}")
        data = loaded or {}
    if overrides:
        data = apply_overrides(data, overrides)
        source = f"{source} + overrides"
    return Config.from_dict(data, source=source)
