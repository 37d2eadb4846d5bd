"""The training loop: stages, SGD with accumulation and clipping, AMP, DDP, validation, exact resume.

``train(config, run_dir=…)`` runs every stage of ``config.stages`` in order (see
:mod:`offnet.engine.stages` for the run-directory layout). One *step* is one optimiser update made of
``train.accum_steps`` micro-batches of ``train.batch_size`` clips on each of the ``world_size``
processes. Everything a step depends on is either derived from ``(seed, epoch, position)`` (data
order, augmentation) or saved in ``last.pt`` (weights, optimiser, schedule, AMP scaler, torch/CUDA/
numpy/python RNG states, sampler position), so a run killed at any point and resumed with
``resume=True`` ends with bit-identical weights to an uninterrupted run on the same machine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .. import interrupts
from ..config import Config, StageConfig
from ..fileio import atomic_write_text, check_writable
from ..progress import progress_bar
from .checkpoint import check_finite_weights, load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from .datasets import TrainData, build_stage_data, check_train_records, load_train_records
from .distributed import DistContext, ResumableBatchSampler, all_reduce_sum, init_distributed
from .ema import WeightAverage
from .runlock import RunLock
from .schedule import LRSchedule
from .stages import (
    init_checkpoint,
    stage_dir,
    stage_eval_level,
    stage_loss,
    stage_status,
    stage_total_steps,
    validate_plan,
)

__all__ = ["TrainData", "TrainResult", "NonFiniteLossError", "train", "build_model"]

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names the stage, step and videos."""


@dataclass
class TrainResult:
    """Outcome of :func:`train`."""

    run_dir: Path
    checkpoints: dict[int, Path]  # stage -> best.pt (else last.pt) of that stage
    best_metric: float | None  # best validation accuracy of the last stage (None without validation)
    clips_per_s: float  # training throughput over all processes, validation excluded
    wall_s: float
    final_step: int = 0
    finetune_skipped: list[str] = field(default_factory=list)


class _Indexed(Dataset):
    """Adds the dataset index to every sample so that errors can name the videos of a batch."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        clip, label = self.dataset[index][:2]
        return clip, label, index


def build_model(config: Config, num_classes: int) -> nn.Module:
    """``offnet.create_model`` from the ``model`` section."""
    from ..models import create_model

    m = config.model
    return create_model(
        m.name,
        num_classes=num_classes,
        modality=m.modality,
        backbone=m.backbone,
        pretrained=m.pretrained,
        dropout=m.dropout,
        spatial_mode=m.spatial_mode,
        replicate_official_misalignment=m.replicate_official_misalignment,
        subnet_norm=m.subnet_norm,
        block14b_kernel=m.block14b_kernel,
        reduce_channels=m.reduce_channels,
        subnet_width=m.subnet_width,
    )


# ------------------------------------------------------------------------------------------ helpers
def _check_backbone_source(config: Config, *, run_dir: Path, finetune_from: str | Path | None) -> None:
    """Refuse to freeze a backbone that was never trained; warn when a large one starts from random weights."""
    from ..models._registry import check_backbone_name

    m = config.model
    try:
        check_backbone_name(m.backbone)  # a typo stops the run before any video is checked
    except ValueError as exc:
        raise ValueError(f"model.backbone: {exc}") from None
    fresh = stage_status(run_dir, config.stages[0]) == "new"
    if (config.stages[0] == 2 and fresh and finetune_from is None and m.pretrained is None
            and not m.allow_untrained_frozen_backbone):
        raise ValueError(
            "stage 2 trains the OFF sub-network on a frozen backbone, but this backbone was never trained: no "
            "stage 1 before it, no --finetune-from and no model.pretrained. Add stage 1 (stages=[1,2,3]), pass "
            "--finetune-from RUN_DIR of a trained TSN, or set model.pretrained=FILE (ImageNet weights); "
            "model.allow_untrained_frozen_backbone=true runs it anyway (an ablation)"
        )
    if m.pretrained is None and m.backbone != "tiny" and finetune_from is None and fresh:
        log.warning(
            "!! %s starts from RANDOM weights: the paper's results start from ImageNet weights; set "
            "model.pretrained=FILE (see the README: pretrained weights) unless training from scratch is meant",
            m.backbone,
        )


def _autocast(config: Config, device: torch.device) -> contextlib.AbstractContextManager:
    amp = config.train.amp
    if amp == "none":
        return contextlib.nullcontext()
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("train.amp=fp16 needs a CUDA device; use train.amp=bf16 on CPU (or none)")
    dtype = torch.float16 if amp == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


class _JsonlLog:
    """Append-only ``log.jsonl``, flushed per record so that a killed run keeps what it logged."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.handle = path.open("a") if enabled else None

    def write(self, record: dict[str, Any]) -> None:
        if self.handle is not None:
            self.handle.write(json.dumps(record) + "\n")
            self.handle.flush()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def _tensorboard(run_dir: Path, enabled: bool, purge_step: int | None) -> Any:
    if not enabled:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(run_dir / "tb"), purge_step=purge_step)


def training_memory_format(channels_last: bool | str, device: torch.device, amp: str) -> torch.memory_format:
    """The layout the model trains in (``train.channels_last``): ``"auto"`` is channels-last on a CPU, where
    PyTorch's pooling and convolutions run faster in it (training steps measured 1.10x for BN-Inception OFF, 1.24x
    for TSN and 1.12-1.16x for the demo's tiny OFF, 2-core AVX2 CPU), and on a GPU under bf16/fp16 autocast, whose
    kernels want it; fp32 on a GPU keeps the default layout."""
    if channels_last == "auto":
        channels_last = device.type == "cpu" or amp in ("bf16", "fp16")
    return torch.channels_last if channels_last else torch.contiguous_format


def _forward_kwargs(model: nn.Module, stage: int) -> dict[str, Any]:
    """Stage 1 trains only the backbone's head: the sub-network is not run."""
    return {"backbone_only": True} if stage == 1 and getattr(model, "subnet", None) is not None else {}


@torch.no_grad()
def _validate(
    model: nn.Module, dataset: Dataset, config: Config, ctx: DistContext, *, batch_size: int,
    forward_kwargs: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Top-1 accuracy per level on ``dataset``, sharded over processes (``i ≡ rank mod world``)."""
    indices = list(range(ctx.rank, len(dataset), ctx.world_size))  # type: ignore[arg-type]
    loader = DataLoader(
        torch.utils.data.Subset(dataset, indices),
        batch_size=batch_size,
        shuffle=False,
        num_workers=config.data.num_workers,
        generator=torch.Generator().manual_seed(0),  # keeps the global RNG untouched
    )
    was_training = model.training
    model.eval()
    correct: dict[str, float] = {}
    total = 0
    with _autocast(config, ctx.device):
        for batch in loader:
            clips, labels = batch[0].to(ctx.device), batch[1].to(ctx.device)
            outputs = model(clips, **(forward_kwargs or {}))
            for level, logits in outputs.items():
                correct[level] = correct.get(level, 0.0) + (logits.argmax(1) == labels).sum().item()
            total += labels.numel()
    model.train(was_training)
    levels = sorted(correct) if correct else sorted(getattr(model, "levels", ()))
    sums = all_reduce_sum([correct.get(level, 0.0) for level in levels] + [float(total)], ctx)
    count = max(sums[-1], 1.0)
    return {level: value / count for level, value in zip(levels, sums[:-1])}


def _batch_names(indices: torch.Tensor, names: list[str] | None) -> str:
    idx = indices.tolist()
    if names is None:
        return f"dataset indices {idx}"
    return "videos " + ", ".join(names[i] for i in idx)


def _check_finite(
    loss: torch.Tensor, *, stage: int, run: _StageRun, micro: int, indices: torch.Tensor,
    names: list[str] | None, ctx: DistContext,
) -> None:
    """Stop every process when any one of them sees a NaN/inf loss (else the others would hang)."""
    finite = float(torch.isfinite(loss.detach()).item())
    if all_reduce_sum([finite], ctx)[0] == ctx.world_size:
        return
    where = _batch_names(indices, names) if not finite else f"(on another process than rank {ctx.rank})"
    raise NonFiniteLossError(
        f"stage {stage}: the loss is {loss.item() if not finite else 'not finite'} at step {run.step + 1} "
        f"(epoch {run.epoch}, micro-batch {run.position + micro}); batch: {where}. Lower the learning "
        "rate, keep gradient clipping on (optim.clip_grad_norm), or check these videos"
    )


def _load_weights(model: nn.Module, path: Path) -> None:
    payload = load_checkpoint(path)
    check_finite_weights(payload["model"], source=str(path))
    model.load_state_dict(payload["model"])
    log.info("initialised from %s (stage %s, step %s)", path, payload.get("stage"), payload.get("step"))


def _finetune(model: nn.Module, path: Path) -> list[str]:
    """Load all shape-compatible weights of another run; returns the keys left at their new init."""
    from ..models import load_state_dict_checked
    from .checkpoint import find_checkpoint

    path = find_checkpoint(path)
    payload = load_checkpoint(path)
    check_finite_weights(payload["model"], source=str(path))
    missing, unexpected = load_state_dict_checked(
        model, payload["model"], strict_shapes=False, source=str(path)
    )
    log.info("fine-tuning from %s: %d tensors kept at their new initialisation: %s", path, len(missing),
             ", ".join(missing))
    if unexpected:
        log.info("ignored %d tensors of %s that this model lacks: %s", len(unexpected), path,
                 ", ".join(unexpected))
    return missing


# ------------------------------------------------------------------------------------------- stage
@dataclass
class _StageRun:
    """Mutable state of one stage, the part of ``last.pt`` that is not a state_dict."""

    stage: int
    total_steps: int
    steps_per_epoch: int
    step: int = 0
    epoch: int = 0
    position: int = 0  # micro-batches of this epoch already consumed (per process)
    best_metric: float | None = None


def _payload(
    *, model: nn.Module, config: Config, class_names: list[str], run: _StageRun, optimizer: Any = None,
    schedule: LRSchedule | None = None, scaler: Any = None, ctx: DistContext, full: bool = True,
    ema: WeightAverage | None = None,
) -> dict[str, Any]:
    """A checkpoint. ``model`` holds the weights to evaluate: with ``ema``, its average; a full (resumable)
    checkpoint then also holds the weights as trained (``trained_model``) and the average's step count."""
    payload: dict[str, Any] = {
        "model_config": dict(model.config),
        "model": (ema.module if ema is not None else model).state_dict(),
        "class_names": list(class_names),
        "config": config.to_dict(),
        "stage": run.stage,
        "step": run.step,
        "epoch": run.epoch,
        "best_metric": run.best_metric,
    }
    if full:
        payload.update(
            optimizer=optimizer.state_dict(),
            scheduler=schedule.state_dict(),
            scaler=scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
            rng=rng_state(ctx.device),
            sampler={"epoch": run.epoch, "position": run.position, "steps_per_epoch": run.steps_per_epoch},
        )
        if ema is not None:
            payload.update(trained_model=model.state_dict(), ema_updates=ema.updates)
    return payload


def _micro_batches(loader: DataLoader, accum: int) -> Iterator[list[Any]]:
    """Group the loader's micro-batches into optimiser steps (an incomplete group is dropped)."""
    group: list[Any] = []
    for batch in loader:
        group.append(batch)
        if len(group) == accum:
            yield group
            group = []


def _run_stage(
    *, stage: int, model: nn.Module, data: TrainData, config: Config, run_dir: Path, ctx: DistContext,
    resume_from: Path | None, progress: bool, jlog: _JsonlLog, writer: Any, timing: dict[str, float],
) -> _StageRun:
    cfg_stage: StageConfig = config.stage(stage)
    settings = config.stage_settings(stage)
    batch_size, accum_steps = settings.batch_size, settings.accum_steps
    sdir = stage_dir(run_dir, stage)
    tc = config.train
    model.set_stage(stage, partial_bn=config.model.partial_bn,
                    partial_bn_train_conv1=config.model.partial_bn_train_conv1,
                    backbone_head_grad=cfg_stage.backbone_head_grad)
    forward_kwargs = _forward_kwargs(model, stage)
    sampler = ResumableBatchSampler(
        len(data.train), batch_size=batch_size, seed=config.seed, shuffle=True,  # type: ignore[arg-type]
        rank=ctx.rank, world_size=ctx.world_size,
    )
    steps_per_epoch = len(sampler) // accum_steps
    if steps_per_epoch < 1:
        raise ValueError(
            f"the training set ({len(data.train)} clips) is smaller than one step of "  # type: ignore[arg-type]
            f"{batch_size}x{accum_steps}x{ctx.world_size} clips; lower train.batch_size/accum_steps "
            f"(or stage{stage}.batch_size/accum_steps)"
        )
    log.info("%s", settings.describe())
    run = _StageRun(stage=stage, total_steps=stage_total_steps(cfg_stage, steps_per_epoch=steps_per_epoch),
                    steps_per_epoch=steps_per_epoch)
    groups = model.param_groups(weight_decay=config.optim.weight_decay)
    # foreach: one multi-tensor kernel per update instead of a loop over parameters (torch picks it only on
    # CUDA by default); the same arithmetic, and on the CPU about a tenth of a small model's step time
    if config.optim.name == "adamw":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=cfg_stage.lr, foreach=True)
    else:
        optimizer = torch.optim.SGD(groups, lr=cfg_stage.lr, momentum=config.optim.momentum,
                                    nesterov=config.optim.nesterov, foreach=True)
    schedule = LRSchedule(
        optimizer, base_lr=cfg_stage.lr, total_steps=run.total_steps, kind=cfg_stage.schedule,
        milestones=cfg_stage.milestones, gamma=cfg_stage.gamma, num_cycles=cfg_stage.num_cycles,
        warmup_iters=cfg_stage.warmup_iters, warmup_factor=cfg_stage.warmup_factor,
    )
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=tc.amp == "fp16")
    # the weights to validate, save and test: their moving average (train.ema_window) or the trained ones
    ema = WeightAverage(model, window=tc.ema_window, total_steps=run.total_steps) if tc.ema_window else None
    evaluated = ema.module if ema is not None else model
    if resume_from is None:
        # a fresh stage reseeds dropout & co. so a resumed run that starts it gets the same numbers
        torch.manual_seed(config.seed + 1000 * stage)
    else:
        payload = load_checkpoint(resume_from, map_location=ctx.device)
        if payload.get("stage") != stage or "optimizer" not in payload:
            raise ValueError(f"{resume_from} is not a resumable stage-{stage} checkpoint (last.pt)")
        if payload["sampler"]["steps_per_epoch"] != steps_per_epoch:
            raise ValueError(
                f"cannot resume {resume_from}: it was written with {payload['sampler']['steps_per_epoch']} "
                f"steps per epoch, this run has {steps_per_epoch} (batch size, accumulation, number of "
                "processes or the training set changed); resume with the original settings"
            )
        model.load_state_dict(payload.get("trained_model", payload["model"]))
        if ema is not None:
            ema.module.load_state_dict(payload["model"])
            ema.updates = int(payload["ema_updates"])
        optimizer.load_state_dict(payload["optimizer"])
        schedule.load_state_dict(payload["scheduler"])
        if payload.get("scaler") is not None:
            scaler.load_state_dict(payload["scaler"])
        restore_rng_state(payload["rng"], ctx.device)
        run.step, run.epoch = payload["step"], payload["sampler"]["epoch"]
        run.position, run.best_metric = payload["sampler"]["position"], payload["best_metric"]
        log.info("stage %d: resuming from %s at step %d/%d", stage, resume_from, run.step, run.total_steps)
        # the interrupted run may have logged steps after its last checkpoint: they come again after this record
        jlog.write({"event": "resume", "stage": stage, "step": run.step,
                    "note": f"resumed from step {run.step}; records of later steps before this one are superseded"})

    train_model: nn.Module = model
    if ctx.is_distributed:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
            find_unused_parameters=True,
        )
    levels = model.loss_levels(stage)
    eval_level = stage_eval_level(model, stage)
    loader = DataLoader(
        _Indexed(data.train), batch_sampler=sampler, num_workers=config.data.num_workers,
        pin_memory=ctx.device.type == "cuda", generator=torch.Generator().manual_seed(config.seed),
    )
    bar = None
    if progress and ctx.is_main:
        bar = progress_bar(total=run.total_steps, initial=run.step, desc=f"stage {stage}", unit="step")
    clips_per_step = batch_size * accum_steps * ctx.world_size
    model.train()
    while run.step < run.total_steps:
        sampler.set_epoch(run.epoch, start_batch=run.position)
        if hasattr(data.train, "set_epoch"):
            data.train.set_epoch(run.epoch)
        for group in _micro_batches(loader, accum_steps):
            interrupts.check()  # stops even when a Ctrl-C was swallowed by a DataLoader finaliser
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            step_loss, step_correct, step_total = 0.0, 0.0, 0
            for i, (clips, labels, indices) in enumerate(group):
                clips = clips.to(ctx.device, non_blocking=True)
                labels = labels.to(ctx.device, non_blocking=True)
                # DDP all-reduces gradients only on the last micro-batch of a step
                sync = i == len(group) - 1 or not ctx.is_distributed
                with contextlib.nullcontext() if sync else train_model.no_sync():
                    with _autocast(config, ctx.device):
                        outputs = train_model(clips, **forward_kwargs)
                        loss, _ = stage_loss(outputs, labels, levels=levels, weights=cfg_stage.loss_weights,
                                             focal_gamma=cfg_stage.focal_gamma)
                    _check_finite(loss, stage=stage, run=run, micro=i, indices=indices, names=data.names, ctx=ctx)
                    scaler.scale(loss / accum_steps).backward()
                step_loss += loss.item() / accum_steps
                step_correct += (outputs[eval_level].argmax(1) == labels).sum().item()
                step_total += labels.numel()
            if settings.clip_grad_norm is not None:
                scaler.unscale_(optimizer)
                params = [p for g in optimizer.param_groups for p in g["params"]]
                torch.nn.utils.clip_grad_norm_(params, settings.clip_grad_norm, foreach=True)
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            if ema is not None:
                ema.update(model)
            run.step += 1
            run.position += accum_steps
            if run.position >= steps_per_epoch * accum_steps:
                run.epoch, run.position = run.epoch + 1, 0
            if ctx.device.type == "cuda":
                torch.cuda.synchronize(ctx.device)
            timing["train_s"] += time.perf_counter() - t0
            timing["clips"] += clips_per_step
            accuracy = step_correct / max(step_total, 1)
            done = run.step >= run.total_steps
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{step_loss:.3f}", acc=f"{accuracy:.2f}",
                                clips_s=f"{timing['clips'] / max(timing['train_s'], 1e-9):.1f}")
            if run.step % tc.log_every == 0 or done:
                record = {"stage": stage, "step": run.step, "epoch": run.epoch, "loss": step_loss,
                          "acc": accuracy, "lr": schedule.lr_at(run.step - 1),
                          "clips_per_s": timing["clips"] / max(timing["train_s"], 1e-9)}
                jlog.write(record)
                if writer is not None:
                    for key in ("loss", "acc", "lr", "clips_per_s"):
                        writer.add_scalar(f"stage{stage}/train_{key}", record[key], run.step)
            if data.val is not None and (run.step % tc.val_every == 0 or done):
                scores = _validate(evaluated, data.val, config, ctx, batch_size=batch_size,
                                   forward_kwargs=forward_kwargs)
                metric = scores.get(eval_level, 0.0)
                # ties go to the later, longer-trained weights
                improved = run.best_metric is None or metric >= run.best_metric
                if improved:
                    run.best_metric = metric
                jlog.write({"stage": stage, "step": run.step, "val": scores, "val_metric": metric,
                            "best": run.best_metric})
                if writer is not None:
                    for level, value in scores.items():
                        writer.add_scalar(f"stage{stage}/val_acc_{level}", value, run.step)
                log.info("stage %d step %d: validation %s = %.4f (best %.4f)", stage, run.step, eval_level,
                         metric, run.best_metric)
                if improved and ctx.is_main:
                    save_checkpoint(sdir / "best.pt", _payload(
                        model=model, config=config, class_names=data.class_names, run=run, ctx=ctx, full=False,
                        ema=ema))
            if (run.step % tc.checkpoint_every == 0 or done) and ctx.is_main:
                save_checkpoint(sdir / "last.pt", _payload(
                    model=model, config=config, class_names=data.class_names, run=run, optimizer=optimizer,
                    schedule=schedule, scaler=scaler, ctx=ctx, ema=ema))
            if done or run.position == 0:
                break  # end of the stage, or of the epoch: re-seed the sampler for the next one
    if bar is not None:
        bar.close()
    if ctx.is_main:
        (sdir / "DONE").write_text(f"step {run.step}\n")
    ctx.barrier()
    return run


# ------------------------------------------------------------------------------------------- train
def train(
    config: Config,
    *,
    run_dir: str | Path,
    resume: bool = False,
    finetune_from: str | Path | None = None,
    progress: bool = True,
    data: TrainData | None = None,
) -> TrainResult:
    """Run every stage of ``config.stages``; see the module docstring.

    ``data`` replaces the datasets built from ``config.data`` (library use and tests). With
    ``resume`` (or ``config.train.resume``), finished stages are skipped and an unfinished one continues
    from its ``last.pt``. ``finetune_from`` (a checkpoint or run directory) initialises the first stage
    with every shape-compatible tensor of another run (a new head for other classes).
    """
    wall0 = time.perf_counter()
    run_dir = Path(run_dir)
    resume = resume or config.train.resume
    _check_backbone_source(config, run_dir=run_dir, finetune_from=finetune_from)
    ctx = init_distributed(config.train.device)
    lock = RunLock(run_dir) if ctx.is_main else None
    if lock is not None:
        check_writable(run_dir, is_dir=True)
        lock.acquire()
    try:
        _check_run_dir(config, run_dir, resume=resume)  # under the lock, before anything is written
        return _train_locked(config, run_dir=run_dir, resume=resume, finetune_from=finetune_from,
                             progress=progress, data=data, ctx=ctx, wall0=wall0)
    finally:
        if lock is not None:
            lock.release()


def _check_run_dir(config: Config, run_dir: Path, *, resume: bool) -> None:
    """Refuse, before writing anything, a new run over checkpoints or a resume with another config."""
    if not resume:
        for stage in config.stages:
            if (stage_dir(run_dir, stage) / "last.pt").exists():
                raise ValueError(
                    f"{stage_dir(run_dir, stage)} already holds a checkpoint; pass --resume to continue that run "
                    "or choose a new --run-dir"
                )
        return
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return
    from ..config import load_config

    try:
        before = _flatten(load_config(saved).to_dict())
    except ValueError as exc:
        raise ValueError(f"cannot resume {run_dir}: its {saved.name} is not a valid config ({exc})") from exc
    now = _flatten(config.to_dict())
    changed = sorted(k for k in set(before) | set(now) if k not in _RUNTIME_KEYS and before.get(k) != now.get(k))
    if changed:
        shown = ", ".join(f"{k} ({before.get(k)!r} -> {now.get(k)!r})" for k in changed[:6])
        raise ValueError(
            f"cannot resume {run_dir} with another config: {shown}{' …' if len(changed) > 6 else ''}. Resume with "
            f"the run's own config (offnet train --resume --run-dir {run_dir}) or start a new --run-dir"
        )


#: Keys that may change between a run and its resumption: where and how it runs, not what it computes.
_RUNTIME_KEYS = frozenset({"train.resume", "train.device", "data.num_workers", "train.tensorboard",
                           "train.log_every", "train.checkpoint_every"})


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key != "loss_weights":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _train_locked(
    config: Config, *, run_dir: Path, resume: bool, finetune_from: str | Path | None, progress: bool,
    data: TrainData | None, ctx: DistContext, wall0: float,
) -> TrainResult:
    if config.train.deterministic:
        torch.use_deterministic_algorithms(True)
    given = data
    if given is None:
        records, class_names = load_train_records(config)
        checked = check_train_records(config, records)
    else:
        class_names = given.class_names
    torch.manual_seed(config.seed)  # model init and dropout; identical on every rank
    np.random.seed(config.seed)
    random.seed(config.seed)
    model = build_model(config, num_classes=len(class_names)).to(ctx.device)
    stage_data: dict[tuple[str, int], TrainData] = {}

    def data_for(stage: int) -> TrainData:
        """The stage's datasets (its sampler and segments); ``data`` given by the caller serves every stage."""
        if given is not None:
            return given
        settings = config.stage_settings(stage)
        key = (settings.sampler, settings.num_segments)
        if key not in stage_data:
            stage_data[key] = build_stage_data(config, train_records=checked[0], val_records=checked[1],
                                               class_names=class_names, input_spec=model.input_spec, stage=stage)
        return stage_data[key]

    model = model.to(memory_format=training_memory_format(config.train.channels_last, ctx.device, config.train.amp))
    validate_plan(config, model)
    if ctx.is_main:
        atomic_write_text(run_dir / "config.yaml", config.to_yaml())
    ctx.barrier()
    skipped: list[str] = []
    first_status = stage_status(run_dir, config.stages[0])
    if finetune_from is not None and not (resume and first_status != "new"):
        skipped = _finetune(model, Path(finetune_from))
    jlog = _JsonlLog(run_dir / "log.jsonl", ctx.is_main)
    timing = {"train_s": 0.0, "clips": 0.0}
    checkpoints: dict[int, Path] = {}
    best: float | None = None
    final_step = 0
    writer = None
    try:
        for stage in config.stages:
            status = stage_status(run_dir, stage) if resume else "new"
            sdir = stage_dir(run_dir, stage)
            if status == "done":
                log.info("stage %d already finished in %s; skipping", stage, sdir)
            else:
                if not resume and (sdir / "last.pt").exists():
                    raise ValueError(
                        f"{sdir} already holds a checkpoint; pass --resume to continue that run or choose "
                        "a new --run-dir"
                    )
                start = init_checkpoint(run_dir, stage, config.stages)
                if status == "new" and start is not None:
                    _load_weights(model, start)
                if writer is None:
                    writer = _tensorboard(run_dir, config.train.tensorboard and ctx.is_main, None)
                run = _run_stage(
                    stage=stage, model=model, data=data_for(stage), config=config, run_dir=run_dir, ctx=ctx,
                    resume_from=sdir / "last.pt" if status == "partial" else None, progress=progress,
                    jlog=jlog, writer=writer, timing=timing,
                )
                best, final_step = run.best_metric, run.step
            checkpoints[stage] = sdir / "best.pt" if (sdir / "best.pt").is_file() else sdir / "last.pt"
            if status == "done":
                best = load_checkpoint(checkpoints[stage]).get("best_metric")
    finally:
        jlog.close()
        if writer is not None:
            writer.close()
    clips_per_s = timing["clips"] / timing["train_s"] if timing["train_s"] > 0 else math.nan
    return TrainResult(run_dir=run_dir, checkpoints=checkpoints, best_metric=best, clips_per_s=clips_per_s,
                       wall_s=time.perf_counter() - wall0, final_step=final_step, finetune_skipped=skipped)
