"""The training loop: stages, outputs, accumulation, AMP, fine-tuning, errors and exact resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import make_clips, tiny_config

from offnet.engine.checkpoint import build_model_from_checkpoint, load_checkpoint
from offnet.engine.trainer import NonFiniteLossError, TrainData, train


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_three_stages_write_their_outputs(tmp_path, tiny_data):
    config = tiny_config(stages=[1, 2, 3])
    result = train(config, run_dir=tmp_path / "run", data=tiny_data, progress=False)
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and (run / "log.jsonl").is_file()
    for stage in (1, 2, 3):
        assert (run / f"stage{stage}" / "last.pt").is_file() and (run / f"stage{stage}" / "DONE").is_file()
        assert result.checkpoints[stage] == run / f"stage{stage}" / "best.pt"
    last = load_checkpoint(run / "stage2" / "last.pt")
    for key in ("model_config", "model", "class_names", "config", "stage", "step", "epoch", "best_metric",
                "optimizer", "scheduler", "scaler", "rng", "sampler"):
        assert key in last
    assert last["stage"] == 2 and last["step"] == 3 and last["class_names"] == ["a", "b", "c"]
    assert last["config"]["stage2"]["lr"] == 0.01
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    train_records = [r for r in records if "loss" in r]
    assert [(r["stage"], r["step"]) for r in train_records] == [(s, i) for s in (1, 2, 3) for i in
                                                                 range(1, 4 if s < 3 else 3)]
    # multistep at step 2 of stage 2: lr 0.01 then 0.001
    assert [r["lr"] for r in train_records if r["stage"] == 2] == pytest.approx([0.01, 0.01, 0.001])
    assert any("val" in r for r in records) and result.best_metric is not None
    assert result.clips_per_s > 0 and result.final_step == 2
    model, payload = build_model_from_checkpoint(run)
    assert payload["stage"] == 3 and not model.training


def test_stage_two_freezes_the_backbone_and_starts_from_stage_one(tmp_path, tiny_data):
    train(tiny_config(stages=[1, 2]), run_dir=tmp_path, data=tiny_data, progress=False)
    one = _weights(tmp_path / "stage1" / "best.pt")
    two = _weights(tmp_path / "stage2" / "last.pt")
    backbone = [k for k in one if k.startswith("backbone.") and "running" not in k and "num_batches" not in k]
    subnet = [k for k in one if k.startswith("subnet.")]
    assert backbone and subnet
    assert all(torch.equal(one[k], two[k]) for k in backbone)  # frozen in stage 2
    assert any(not torch.equal(one[k], two[k]) for k in subnet)  # trained in stage 2


def test_gradient_accumulation_matches_a_big_batch(tmp_path, tiny_data):
    # stage 2: no BN statistics in play (backbone BN frozen), dropout 0 -> exactly the same maths
    big = tiny_config(train__batch_size=8, train__accum_steps=1)
    small = tiny_config(train__batch_size=4, train__accum_steps=2)
    train(big, run_dir=tmp_path / "big", data=tiny_data, progress=False)
    train(small, run_dir=tmp_path / "small", data=tiny_data, progress=False)
    a, b = _weights(tmp_path / "big" / "stage2" / "last.pt"), _weights(tmp_path / "small" / "stage2" / "last.pt")
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6, rtol=1e-5) for k in a)


def test_adamw_option_trains_and_unknown_optimizer_is_refused(tmp_path, tiny_data):
    result = train(tiny_config(optim__name="adamw"), run_dir=tmp_path / "adamw", data=tiny_data, progress=False)
    state = torch.load(result.checkpoints[2].parent / "last.pt", weights_only=True)["optimizer"]["state"]
    assert any("exp_avg" in s for s in state.values())  # Adam moments, not SGD momentum buffers
    with pytest.raises(ValueError, match="optim.name"):
        tiny_config(optim__name="lbfgs")


def test_bf16_autocast_on_cpu_and_fp16_refused(tmp_path, tiny_data):
    result = train(tiny_config(train__amp="bf16"), run_dir=tmp_path / "bf16", data=tiny_data, progress=False)
    assert result.checkpoints[2].is_file()
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        train(tiny_config(train__amp="fp16"), run_dir=tmp_path / "fp16", data=tiny_data, progress=False)


def test_nan_loss_names_step_and_videos(tmp_path):
    data = make_clips(8, seed=0)
    clips, labels = data.tensors
    clips = clips.clone()
    clips[5] = float("nan")
    bad = TrainData(train=torch.utils.data.TensorDataset(clips, labels), val=None, class_names=["a", "b", "c"],
                    names=[f"v_{i}" for i in range(8)])
    with pytest.raises(NonFiniteLossError) as info:
        train(tiny_config(train__batch_size=8), run_dir=tmp_path, data=bad, progress=False)
    message = str(info.value)
    assert "step 1" in message and "v_5" in message and "stage 2" in message


def test_existing_run_is_not_overwritten_without_resume(tmp_path, tiny_data):
    train(tiny_config(), run_dir=tmp_path, data=tiny_data, progress=False)
    before = (tmp_path / "stage2" / "last.pt").read_bytes()
    with pytest.raises(ValueError, match="--resume"):
        train(tiny_config(), run_dir=tmp_path, data=tiny_data, progress=False)
    assert (tmp_path / "stage2" / "last.pt").read_bytes() == before


def test_resume_from_corrupt_checkpoint_is_a_clear_error_and_keeps_the_file(tmp_path, tiny_data):
    train(tiny_config(), run_dir=tmp_path, data=tiny_data, progress=False)
    (tmp_path / "stage2" / "DONE").unlink()
    last = tmp_path / "stage2" / "last.pt"
    last.write_bytes(last.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a valid offnet checkpoint"):
        train(tiny_config(), run_dir=tmp_path, data=tiny_data, progress=False, resume=True)
    assert len(last.read_bytes()) == 100


def test_resume_of_a_finished_run_does_nothing(tmp_path, tiny_data):
    train(tiny_config(), run_dir=tmp_path, data=tiny_data, progress=False)
    before = (tmp_path / "stage2" / "last.pt").read_bytes()
    result = train(tiny_config(), run_dir=tmp_path, data=tiny_data, progress=False, resume=True)
    assert (tmp_path / "stage2" / "last.pt").read_bytes() == before and result.checkpoints[2].is_file()


def test_finetune_from_another_run_with_other_classes(tmp_path, tiny_data):
    train(tiny_config(), run_dir=tmp_path / "src", data=tiny_data, progress=False)
    four = TrainData(train=make_clips(16, seed=3, num_classes=4), val=None, class_names=list("abcd"))
    result = train(tiny_config(), run_dir=tmp_path / "dst", data=four, progress=False,
                   finetune_from=tmp_path / "src")
    assert result.finetune_skipped, "the 3-class heads cannot load into a 4-class model"
    assert all(k.endswith(("weight", "bias")) and ("head" in k or "fc" in k) for k in result.finetune_skipped)
    src, dst = _weights(tmp_path / "src" / "stage2" / "last.pt"), _weights(tmp_path / "dst" / "stage2" / "last.pt")
    conv1 = next(k for k in src if k.startswith("backbone.") and k.endswith("weight") and src[k].dim() == 4)
    assert torch.equal(src[conv1], dst[conv1])  # frozen backbone came from the source run
    assert dst[result.finetune_skipped[0]].shape[0] == 4


# ---------------------------------------------------------------------------------------- resume
_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    sys.path.insert(0, {tests!r})
    torch.set_num_threads(1)
    from conftest import make_clips, tiny_config
    from offnet.engine.trainer import TrainData, train
    config = tiny_config(stages=[1, 2], model={{"name": "off", "backbone": "tiny", "dropout": 0.5}},
                         stage1={{"lr": 0.01, "iterations": 7, "milestones": [4]}},
                         stage2={{"lr": 0.01, "iterations": 7, "schedule": "cosine", "num_cycles": 2}},
                         train={{"batch_size": 4, "device": "cpu", "checkpoint_every": 1, "val_every": 3,
                                 "log_every": 1, "tensorboard": False}})
    data = TrainData(train=make_clips(12, seed=1), val=make_clips(4, seed=2), class_names=["a", "b", "c"])
    train(config, run_dir=sys.argv[1], data=data, progress=False, resume=len(sys.argv) > 2)
    """
)


def _start(script: Path, run_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), str(run_dir), *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_after(proc: subprocess.Popen, log: Path, records: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.is_file() and len(log.read_text().splitlines()) >= records:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        if proc.poll() is not None:
            pytest.fail(f"training ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail("training did not log in time")


@pytest.mark.slow
def test_sigkill_and_resume_give_bit_identical_weights(tmp_path):
    script = tmp_path / "run_train.py"
    script.write_text(_SCRIPT.format(tests=str(Path(__file__).parent)))
    reference = _start(script, tmp_path / "ref")
    assert reference.wait(timeout=300) == 0, reference.stderr.read().decode()[-3000:]

    run = tmp_path / "killed"
    proc = _start(script, run)
    _kill_after(proc, run / "log.jsonl", records=4)  # inside stage 1
    assert not (run / "stage1" / "DONE").exists()
    proc = _start(script, run, "--resume")
    _kill_after(proc, run / "log.jsonl", records=16)  # inside stage 2
    assert not (run / "stage2" / "DONE").exists()
    proc = _start(script, run, "--resume")
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-3000:]

    for name in ("stage1/last.pt", "stage2/last.pt", "stage2/best.pt"):
        ref, got = _weights(tmp_path / "ref" / name), _weights(run / name)
        assert ref.keys() == got.keys()
        different = [k for k in ref if not torch.equal(ref[k], got[k])]
        assert not different, f"{name}: {different[:5]}"
    ref_opt = load_checkpoint(tmp_path / "ref" / "stage2" / "last.pt")["optimizer"]["state"]
    got_opt = load_checkpoint(run / "stage2" / "last.pt")["optimizer"]["state"]
    assert all(torch.equal(ref_opt[k]["momentum_buffer"], got_opt[k]["momentum_buffer"]) for k in ref_opt)


def test_stage_two_without_a_trained_backbone_is_refused_before_any_work(tmp_path, tiny_data):
    strict = tiny_config(stages=[2, 3])
    strict.model.allow_untrained_frozen_backbone = False
    with pytest.raises(ValueError, match="never trained.*stages=\\[1,2,3\\].*--finetune-from.*model.pretrained"):
        train(strict, run_dir=tmp_path / "run", data=tiny_data, progress=False)
    assert not (tmp_path / "run").exists()
    # with a trained backbone to start from, the same plan runs
    train(tiny_config(stages=[1]), run_dir=tmp_path / "tsn", data=tiny_data, progress=False)
    train(tiny_config(stages=[2]), run_dir=tmp_path / "off", data=tiny_data, progress=False,
          finetune_from=tmp_path / "tsn")
    assert (tmp_path / "off" / "stage2" / "DONE").is_file()


def test_large_backbone_from_random_weights_warns_loudly(tmp_path, caplog):
    from offnet.engine.trainer import _check_backbone_source

    config = tiny_config(stages=[1, 2, 3])
    config.model.backbone = "bninception"
    with caplog.at_level("WARNING", logger="offnet.engine.trainer"):
        _check_backbone_source(config, run_dir=tmp_path, finetune_from=None)
    assert "RANDOM weights" in caplog.text and "model.pretrained" in caplog.text
    caplog.clear()
    config.model.pretrained = str(tmp_path / "imagenet.pth")
    with caplog.at_level("WARNING", logger="offnet.engine.trainer"):
        _check_backbone_source(config, run_dir=tmp_path, finetune_from=None)
    assert caplog.text == ""


def test_best_checkpoint_keeps_the_best_validation_not_the_latest(tmp_path, tiny_data, monkeypatch):
    import offnet.engine.trainer as trainer

    metrics = iter([0.5, 0.9, 0.3, 0.4])
    monkeypatch.setattr(trainer, "_validate", lambda model, data, config, ctx, **kwargs: {"off7": next(metrics)})
    config = tiny_config(stages=[2], stage2={"lr": 0.01, "iterations": 4, "milestones": []},
                         train={"batch_size": 4, "device": "cpu", "checkpoint_every": 1, "val_every": 1,
                                "log_every": 1, "tensorboard": False})
    result = train(config, run_dir=tmp_path, data=tiny_data, progress=False)
    best = load_checkpoint(tmp_path / "stage2" / "best.pt")
    assert best["step"] == 2 and best["best_metric"] == pytest.approx(0.9)
    assert result.checkpoints[2] == tmp_path / "stage2" / "best.pt"


def test_gradient_clipping_bounds_the_update(tmp_path, tiny_data):
    """optim.clip_grad_norm caps the global gradient norm: a cap of 1e-9 leaves the weights where they were."""
    moved = {}
    for clip in (1e-9, None):
        config = tiny_config(stages=[2], optim={"clip_grad_norm": clip, "momentum": 0.0, "weight_decay": 0.0},
                             stage2={"lr": 0.01, "iterations": 1, "milestones": []})
        train(config, run_dir=tmp_path / str(clip), data=tiny_data, progress=False)
        weights = _weights(tmp_path / str(clip) / "stage2" / "last.pt")
        torch.manual_seed(0)  # the trainer's initialisation (config seed 0)
        from offnet import create_model

        init = create_model("off", num_classes=3, backbone="tiny", dropout=0.0).state_dict()
        moved[clip] = max((weights[k] - init[k]).abs().max().item() for k in weights if k.startswith("subnet."))
    assert moved[1e-9] < 1e-9 and moved[None] > 1e-5, moved


def test_each_stage_trains_with_its_own_batch_accumulation_and_clipping(tmp_path, tiny_data, monkeypatch):
    clips = []
    real_clip = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *args, **kwargs):
        clips.append(max_norm)
        return real_clip(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    config = tiny_config(stages=[1, 2], stage1={"lr": 0.01, "iterations": 2, "milestones": [], "batch_size": 8,
                                                "clip_grad_norm": 7.0},
                         stage2={"lr": 0.01, "iterations": 2, "milestones": [], "accum_steps": 2,
                                 "clip_grad_norm": 0.0})
    train(config, run_dir=tmp_path, data=tiny_data, progress=False)
    # 16 clips: stage 1 in batches of 8 (2 steps per epoch), stage 2 in steps of 2 x 4 (2 steps per epoch)
    assert load_checkpoint(tmp_path / "stage1" / "last.pt")["sampler"]["steps_per_epoch"] == 2
    assert load_checkpoint(tmp_path / "stage2" / "last.pt")["sampler"]["steps_per_epoch"] == 2
    assert clips == [7.0, 7.0]  # stage 1 clips at its own norm, stage 2 (0 = off) not at all


def test_stage_one_runs_the_backbone_alone(tmp_path, tiny_data, monkeypatch):
    """Stage 1 trains only the backbone head: the sub-network is not even run (TSN cost, any segment count)."""
    from offnet.models.subnet import OFFSubnet

    calls = []
    real = OFFSubnet.forward
    monkeypatch.setattr(OFFSubnet, "forward", lambda self, inputs: calls.append(1) or real(self, inputs))
    train(tiny_config(stages=[1]), run_dir=tmp_path, data=tiny_data, progress=False)
    assert calls == []
    train(tiny_config(stages=[1, 2]), run_dir=tmp_path / "two", data=tiny_data, progress=False)
    assert calls  # stage 2 runs it


def test_a_refused_run_leaves_the_run_directory_untouched(tmp_path, tiny_data):
    train(tiny_config(), run_dir=tmp_path, data=tiny_data, progress=False)
    def files():  # every file but the lock, which the refused run held while it checked
        return {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"}

    before = files()
    other = tiny_config(stage2={"lr": 0.5, "iterations": 40, "milestones": []})
    with pytest.raises(ValueError, match="--resume"):
        train(other, run_dir=tmp_path, data=tiny_data, progress=False)
    assert files() == before
    # resuming with another config is refused too, naming what differs
    (tmp_path / "stage2" / "DONE").unlink()
    with pytest.raises(ValueError, match=r"stage2\.iterations \(3 -> 40\)"):
        train(other, run_dir=tmp_path, data=tiny_data, progress=False, resume=True)
    assert (tmp_path / "config.yaml").read_bytes() == before[tmp_path / "config.yaml"]
    # where and how it runs may change
    result = train(tiny_config(data={"dataset": "folder", "num_segments": 3, "size": 64, "num_workers": 1}),
                   run_dir=tmp_path, data=tiny_data, progress=False, resume=True)
    assert result.checkpoints[2].is_file()


def test_a_run_directory_in_use_is_refused_naming_the_holder(tmp_path, tiny_data):
    from offnet.engine.runlock import RunLock, RunLockedError

    with RunLock(tmp_path):
        with pytest.raises(RunLockedError, match=rf"in use by process {os.getpid()} on "):
            train(tiny_config(), run_dir=tmp_path, data=tiny_data, progress=False)
    assert not (tmp_path / "config.yaml").exists() and not (tmp_path / "stage2").exists()
    train(tiny_config(), run_dir=tmp_path, data=tiny_data, progress=False)  # released: free again


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, tiny_data):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from offnet.engine.runlock import RunLock
        RunLock({str(tmp_path)!r}).acquire()
        print("locked", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        from offnet.engine.runlock import RunLockedError

        with pytest.raises(RunLockedError, match=str(holder.pid)):
            train(tiny_config(), run_dir=tmp_path, data=tiny_data, progress=False)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / ".lock").exists()  # the killed process could not clean up
    result = train(tiny_config(), run_dir=tmp_path, data=tiny_data, progress=False)
    assert result.checkpoints[2].is_file()


def test_training_layout_auto_is_channels_last_on_a_cpu_and_for_reduced_precision_on_a_gpu():
    from offnet.engine.trainer import training_memory_format

    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert training_memory_format("auto", cpu, "none") == torch.channels_last
    assert training_memory_format("auto", gpu, "none") == torch.contiguous_format
    assert training_memory_format("auto", gpu, "bf16") == training_memory_format("auto", gpu, "fp16") \
        == torch.channels_last
    assert training_memory_format(False, cpu, "none") == torch.contiguous_format
    assert training_memory_format(True, gpu, "none") == torch.channels_last
    with pytest.raises(ValueError, match="train.channels_last='yes' is not valid; choose true, false or auto"):
        tiny_config(train={"channels_last": "yes"})


def test_channels_last_training_gives_the_same_weights_within_rounding(tmp_path, tiny_data):
    """The layout changes only the order of float operations: after three steps the weights agree closely."""
    weights = {}
    for layout in (False, "auto"):
        config = tiny_config(train={"batch_size": 4, "device": "cpu", "checkpoint_every": 1, "val_every": 2,
                                    "log_every": 1, "tensorboard": False, "channels_last": layout})
        train(config, run_dir=tmp_path / str(layout), data=tiny_data, progress=False)
        weights[layout] = _weights(tmp_path / str(layout) / "stage2" / "last.pt")
    plain, auto = weights[False], weights["auto"]
    conv = next(k for k, v in auto.items() if k.startswith("backbone.") and v.dim() == 4 and v.shape[-1] > 1)
    assert auto[conv].is_contiguous(memory_format=torch.channels_last)  # it did train channels-last
    assert not plain[conv].is_contiguous(memory_format=torch.channels_last)
    for k in plain:
        torch.testing.assert_close(auto[k], plain[k], atol=1e-5, rtol=1e-4)
