"""Learning-rate schedules: multistep, cosine restarts, warm-up, state."""

from __future__ import annotations

import math

import pytest
import torch

from offnet.engine.schedule import LRSchedule


def _optimizer() -> torch.optim.SGD:
    w, b = torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(2))
    return torch.optim.SGD([{"params": [w], "lr_mult": 1.0}, {"params": [b], "lr_mult": 2.0}], lr=1.0)


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 0.02), (9999, 0.02), (10000, 0.002), (14999, 0.002), (15000, 2e-4), (18000, 2e-5), (19999, 2e-5)],
)
def test_multistep_paper(step, expected):
    s = LRSchedule(_optimizer(), base_lr=0.02, total_steps=20000, milestones=[10000, 15000, 18000])
    assert s.lr_at(step) == pytest.approx(expected)


def test_cosine_restarts_match_the_authors_formula():
    # rgb_off solver: 20000 iterations, 5 cycles of 4000 (spec 6.2)
    s = LRSchedule(_optimizer(), base_lr=0.02, total_steps=20000, kind="cosine", num_cycles=5)
    assert s.cycle == 4000
    for step in (0, 1, 1999, 2000, 3999, 4000, 4001, 19999):
        expected = 0.02 * 0.5 * (1 + math.cos(math.pi * (step % 4000) / 4000))
        assert s.lr_at(step) == pytest.approx(expected)
    assert s.lr_at(4000) == pytest.approx(0.02)  # restart
    assert s.lr_at(2000) == pytest.approx(0.01)


def test_warmup_is_linear_then_the_schedule():
    s = LRSchedule(_optimizer(), base_lr=1.0, total_steps=100, kind="constant", warmup_iters=10,
                   warmup_factor=0.1)
    assert s.lr_at(0) == pytest.approx(0.1)
    assert s.lr_at(5) == pytest.approx(0.55)
    assert s.lr_at(10) == pytest.approx(1.0)


def test_groups_get_lr_mult_and_state_round_trips():
    opt = _optimizer()
    s = LRSchedule(opt, base_lr=0.1, total_steps=10, milestones=[2])
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.2])
    s.step()
    s.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.01, 0.02])
    opt2 = _optimizer()
    s2 = LRSchedule(opt2, base_lr=0.1, total_steps=10, milestones=[2])
    s2.load_state_dict(s.state_dict())
    assert [g["lr"] for g in opt2.param_groups] == pytest.approx([0.01, 0.02])


def test_bad_kind():
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        LRSchedule(_optimizer(), base_lr=0.1, total_steps=10, kind="step")
