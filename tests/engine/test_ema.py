"""train.ema_window: the moving average of the weights, its arithmetic, checkpoints and exact resume."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config
from torch import nn

from offnet.engine.checkpoint import load_checkpoint
from offnet.engine.ema import WeightAverage
from offnet.engine.trainer import train


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))


def _set(net: nn.Module, value: float, batches: int) -> None:
    with torch.no_grad():
        net[0].weight.fill_(value)
        net[1].running_mean.fill_(-value)
        net[1].num_batches_tracked.fill_(batches)


def test_average_is_the_plain_mean_first_then_an_exponential_window():
    net = _net()
    average = WeightAverage(net, window=0.5, total_steps=8)  # time constant 4 steps
    for step, value in enumerate([1.0, 2.0, 3.0], start=1):
        _set(net, value, step)
        average.update(net)
    # the initial weights are not in it: the mean of the three steps so far
    assert average.module[0].weight.item() == pytest.approx(2.0)
    assert average.module[1].running_mean.item() == pytest.approx(-2.0)  # buffers are averaged too
    assert average.module[1].num_batches_tracked.item() == 3  # integer buffers are copied
    _set(net, 6.0, 4)
    average.update(net)  # 4th step: weight 1/4 -> mean of 1, 2, 3, 6 = 3
    _set(net, 7.0, 5)
    average.update(net)  # 5th step: still 1/4 (the window), 3 + (7 - 3) / 4 = 4
    assert average.module[0].weight.item() == pytest.approx(4.0)
    assert not average.module.training and not any(p.requires_grad for p in average.module.parameters())
    assert net[0].weight.item() == 7.0  # the trained model is left as it is


@pytest.mark.parametrize("window", [0.0, -0.1, 1.5])
def test_window_is_a_share_of_the_steps(window):
    with pytest.raises(ValueError, match="share of the stage's steps"):
        WeightAverage(_net(), window=window, total_steps=10)
    with pytest.raises(ValueError, match="train.ema_window=.*in \\(0, 1\\]"):
        tiny_config(train={"ema_window": window})


def _ema_config(window: float | None = 0.5):
    return tiny_config(stages=[2], stage2={"lr": 0.01, "iterations": 4, "milestones": []},
                       train={"batch_size": 4, "device": "cpu", "checkpoint_every": 1, "val_every": 2,
                              "log_every": 1, "tensorboard": False, "ema_window": window})


def test_training_saves_and_validates_the_average(tmp_path, tiny_data, monkeypatch):
    import offnet.engine.trainer as trainer

    validated = []
    real = trainer._validate
    monkeypatch.setattr(trainer, "_validate", lambda model, *a, **k: validated.append(model) or real(model, *a, **k))
    train(_ema_config(), run_dir=tmp_path, data=tiny_data, progress=False)
    last = load_checkpoint(tmp_path / "stage2" / "last.pt")
    averaged, trained = last["model"], last["trained_model"]
    assert last["ema_updates"] == 4 and averaged.keys() == trained.keys()
    moved = [k for k in averaged if k.startswith("subnet.") and not torch.equal(averaged[k], trained[k])]
    assert moved  # the saved (evaluated) weights are the average, not the last step's
    # the average was validated (one module, held apart from the trained one: nothing in it trains)
    assert validated and all(m is validated[0] for m in validated)
    assert not any(p.requires_grad for p in validated[0].parameters())
    best = load_checkpoint(tmp_path / "stage2" / "best.pt")
    assert "trained_model" not in best  # an evaluation checkpoint holds one set of weights


def test_interrupted_run_resumes_the_average_exactly(tmp_path, tiny_data, monkeypatch):
    import offnet.engine.trainer as trainer

    train(_ema_config(), run_dir=tmp_path / "ref", data=tiny_data, progress=False)
    calls = {"n": 0}

    def interrupt_at_third_step() -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer.interrupts, "check", interrupt_at_third_step)
    with pytest.raises(KeyboardInterrupt):
        train(_ema_config(), run_dir=tmp_path / "cut", data=tiny_data, progress=False)
    assert load_checkpoint(tmp_path / "cut" / "stage2" / "last.pt")["step"] == 2
    monkeypatch.setattr(trainer.interrupts, "check", lambda: None)
    train(_ema_config(), run_dir=tmp_path / "cut", data=tiny_data, progress=False, resume=True)
    ref, got = (load_checkpoint(tmp_path / run / "stage2" / "last.pt") for run in ("ref", "cut"))
    for key in ("model", "trained_model"):
        different = [k for k in ref[key] if not torch.equal(ref[key][k], got[key][k])]
        assert not different, f"{key}: {different[:5]}"


def test_resume_with_another_averaging_setting_is_refused(tmp_path, tiny_data):
    train(_ema_config(), run_dir=tmp_path, data=tiny_data, progress=False)
    (tmp_path / "stage2" / "DONE").unlink()
    before = (tmp_path / "stage2" / "last.pt").read_bytes()
    with pytest.raises(ValueError, match=r"train.ema_window \(0.5 -> None\)"):
        train(_ema_config(None), run_dir=tmp_path, data=tiny_data, progress=False, resume=True)
    assert (tmp_path / "stage2" / "last.pt").read_bytes() == before
