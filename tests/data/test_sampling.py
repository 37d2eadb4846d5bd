"""Segment sampling tables (offnet.data.sampling): inputs -> expected indices, and range properties."""

from __future__ import annotations

import numpy as np
import pytest

from offnet.data.sampling import (
    expand_offsets,
    make_sampler,
    off_code_test_offsets,
    off_code_train_offsets,
    off_test_offsets,
    off_train_offsets,
    tsn_test_offsets,
    tsn_train_offsets,
)


@pytest.mark.parametrize(
    ("offsets", "new_length", "num_frames", "expected"),
    [
        ([0], 5, 3, [[0, 1, 2, 2, 2]]),
        ([0, 4], 1, 10, [[0], [4]]),
        ([1, 3, 5], 5, 10, [[1, 2, 3, 4, 5], [3, 4, 5, 6, 7], [5, 6, 7, 8, 9]]),
        ([8], 3, 10, [[8, 9, 9]]),
    ],
)
def test_expand_offsets(offsets, new_length, num_frames, expected):
    np.testing.assert_array_equal(expand_offsets(np.array(offsets), new_length, num_frames), expected)


@pytest.mark.parametrize(
    ("num_frames", "segments", "new_length", "expected"),
    [
        (250, 25, 1, list(range(5, 250, 10))),
        (10, 3, 5, [1, 3, 5]),
        (3, 7, 1, [0, 0, 1, 1, 1, 2, 2]),
        (3, 7, 5, [0] * 7),
        (9, 3, 1, [1, 4, 7]),
    ],
)
def test_tsn_test_offsets(num_frames, segments, new_length, expected):
    np.testing.assert_array_equal(tsn_test_offsets(num_frames, segments, new_length), expected)


@pytest.mark.parametrize(
    ("num_frames", "segments", "new_length", "test_segments", "expected"),
    [
        (250, 25, 1, 25, list(range(4, 245, 10))),  # interval 10, span 241 centred
        (30, 3, 1, 3, [4, 14, 24]),  # interval 10, p = (30-1-20)//2 = 4
        (20, 3, 5, 25, [6, 7, 8]),  # L < β: interval 1, p = (20-5-2)//2 = 6
        (260, 25, 1, 25, list(range(9, 250, 10))),  # L/β = 10.4: floor 10 (ceil 11 would not fit), p = 9
        (59, 3, 1, 16, [26, 29, 32]),  # L/β = 3.7: interval 3 (ceil: 4), p = (59-1-6)//2 = 26
    ],
)
def test_off_test_offsets(num_frames, segments, new_length, test_segments, expected):
    got = off_test_offsets(num_frames, segments, new_length, test_segments=test_segments)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("num_frames", "segments", "new_length", "test_segments", "expected"),
    [
        (250, 25, 1, 25, list(range(1, 242, 10))),  # d = 10, starts 1 + 10 i
        (100, 25, 5, 25, [min(1 + 3 * i, 95) for i in range(25)]),  # d = ⌊95/24⌋ = 3
        (20, 25, 5, 25, [0] * 25),  # d = 0
        (30, 3, 1, 3, [1, 15, 29]),  # d = ⌊29/2⌋ = 14, last capped at L - n = 29
    ],
)
def test_off_code_test_offsets(num_frames, segments, new_length, test_segments, expected):
    got = off_code_test_offsets(num_frames, segments, new_length, test_segments=test_segments)
    np.testing.assert_array_equal(got, expected)


def test_tsn_train_one_draw_per_part():
    rng = np.random.default_rng(0)
    for _ in range(50):
        offsets = tsn_train_offsets(100, 4, 1, rng)  # parts of 25
        assert all(25 * i <= o < 25 * (i + 1) for i, o in enumerate(offsets))
    # fewer possible starts than segments: sorted draws among the 4 starts
    starts = tsn_train_offsets(8, 7, 5, np.random.default_rng(1))
    assert list(starts) == sorted(starts) and starts.max() <= 3


def test_off_train_shares_one_interval_and_covers_the_start_range():
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(2000):
        offsets = off_train_offsets(250, 7, 1, rng, test_segments=25)
        np.testing.assert_array_equal(np.diff(offsets), [10] * 6)
        starts.add(int(offsets[0]))
    assert min(starts) == 0 and max(starts) == 189  # p ∈ {0 … L-1-(α-1)·interval}


def test_off_code_train_grid_and_jitter():
    rng = np.random.default_rng(0)
    slots = set()
    for _ in range(2000):
        offsets = off_code_train_offsets(250, 7, 1, rng, test_segments=25)
        slot = offsets // 10
        np.testing.assert_array_equal(np.diff(slot), [1] * 6)  # 7 consecutive slots
        slots.add(int(slot[0]))
    assert slots == set(range(17))  # s ∈ {0 … 16}: slots 23, 24 never used (the code's off-by-one)
    # d <= n: the jitter is the constant 1
    offsets = off_code_train_offsets(60, 3, 5, rng, test_segments=25)  # d = ⌊55/24⌋ = 2
    np.testing.assert_array_equal(np.diff(offsets), [2, 2])
    assert ((offsets - 1) % 2 == 0).all()


@pytest.mark.parametrize("name", ["tsn", "off", "off_code"])
@pytest.mark.parametrize("test", [False, True])
@pytest.mark.parametrize("new_length", [1, 5, 6])
def test_all_indices_in_range(name, test, new_length):
    rng = np.random.default_rng(123)
    sampler = make_sampler(name, num_segments=7, new_length=new_length, test=test, test_segments=25)
    for num_frames in [1, 2, 3, 4, 5, 6, 7, 8, 13, 24, 25, 26, 30, 49, 100, 251, 1000]:
        for _ in range(5):
            idx = sampler(num_frames, rng)
            assert idx.shape == (25 if test else 7, new_length)
            assert idx.min() >= 0 and idx.max() < num_frames, (name, num_frames, idx)
            # frames inside a segment are consecutive up to the clamp at the end
            assert (np.diff(idx, axis=1) >= 0).all() and (np.diff(idx, axis=1) <= 1).all()


_OFF_SHORT = [[0, 1, 2, 2, 2], [1, 2, 2, 2, 2]] + [[2, 2, 2, 2, 2]] * 5  # interval >= 1 keeps segments apart


@pytest.mark.parametrize(
    ("name", "expected"),
    [("tsn", [[0, 1, 2, 2, 2]] * 7), ("off", _OFF_SHORT), ("off_code", [[0, 1, 2, 2, 2]] * 7)],
)
def test_short_video_is_padded_by_repeating_the_last_frame(name, expected):
    # L = 3, T = 7, new_length = 5
    idx = make_sampler(name, num_segments=7, new_length=5, test=False)(3, np.random.default_rng(0))
    np.testing.assert_array_equal(idx, expected)


@pytest.mark.parametrize("name", ["tsn", "off", "off_code"])
def test_train_sampler_is_reproducible_given_the_generator(name):
    sampler = make_sampler(name, num_segments=3, new_length=1, test=False, test_segments=25)
    a = [sampler(300, np.random.default_rng(7)) for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])
    draws = {tuple(sampler(300, np.random.default_rng(s)).ravel()) for s in range(20)}
    assert len(draws) > 1


def test_test_sampler_ignores_rng_and_train_needs_one():
    sampler = make_sampler("off", num_segments=3, new_length=1, test=True, test_segments=3)
    np.testing.assert_array_equal(sampler(30), sampler(30, np.random.default_rng(1)))
    assert sampler.segments == 3
    with pytest.raises(ValueError, match="Generator"):
        make_sampler("off", num_segments=3, new_length=1, test=False)(30)


def test_bad_settings():
    with pytest.raises(ValueError, match="unknown sampler 'tsm'"):
        make_sampler("tsm", num_segments=3, new_length=1, test=False)
    with pytest.raises(ValueError, match="num_frames=0"):
        make_sampler("tsn", num_segments=3, new_length=1, test=True)(0)
    with pytest.raises(ValueError, match=">= 1"):
        make_sampler("off", num_segments=0, new_length=1, test=False)


@pytest.mark.parametrize("num_frames", [259, 260, 274])
def test_off_train_interval_is_the_floor_of_l_over_beta(num_frames):
    """Paper Sec. 4.2: interval = ⌊L/β⌋ (here 10 for L = 259–274, where ceil would give 11)."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        starts = off_train_offsets(num_frames, 7, 1, rng, test_segments=25)
        assert set(np.diff(starts).tolist()) == {num_frames // 25}


@pytest.mark.parametrize("num_frames", [40, 120, 250])
def test_a_fixed_interval_does_not_depend_on_the_video_length(num_frames):
    rng = np.random.default_rng(0)
    train = make_sampler("off", num_segments=3, new_length=1, test=False, test_segments=8, interval=5)
    test = make_sampler("off", num_segments=3, new_length=1, test=True, test_segments=8, interval=5)
    for _ in range(20):
        assert set(np.diff(train.offsets(num_frames, rng)).tolist()) == {5}
    starts = test.offsets(num_frames)
    assert len(starts) == 8 and set(np.diff(starts).tolist()) == {5}
    # the test span (36 frames) is centred in the video
    assert starts[0] == (num_frames - 1 - 35) // 2


def test_a_fixed_interval_shortens_only_where_the_segments_would_not_fit():
    # 8 test segments 5 frames apart need 36 frames; a 22-frame video gets an interval of 21 // 7 = 3
    np.testing.assert_array_equal(off_test_offsets(22, 8, 1, test_segments=8, interval=5), [0, 3, 6, 9, 12, 15,
                                                                                           18, 21])
    # Raw OFF segments read 5 frames: 3 segments 6 apart fit in 17 frames (0, 6, 12 -> last frame 16)
    assert set(np.diff(off_train_offsets(17, 3, 5, np.random.default_rng(0), interval=6)).tolist()) == {6}
    assert set(np.diff(off_train_offsets(16, 3, 5, np.random.default_rng(0), interval=6)).tolist()) == {5}
    # never below one frame
    assert set(np.diff(off_test_offsets(3, 8, 1, test_segments=8, interval=4)).tolist()) == {1}


def test_a_fixed_interval_is_only_for_the_off_sampler():
    # the TSN and the authors' grid samplers space their segments over the whole video: make_sampler drops it
    assert make_sampler("tsn", num_segments=3, new_length=1, test=True, interval=5).interval is None
    from offnet.data.sampling import Sampler

    with pytest.raises(ValueError, match="needs the 'off' sampler"):
        Sampler(name="off_code", num_segments=3, new_length=1, test=True, test_segments=8, interval=5)
    with pytest.raises(ValueError, match=">= 1 frame"):
        make_sampler("off", num_segments=3, new_length=1, test=True, interval=0)


def test_an_interval_range_draws_each_training_clip_s_interval_and_leaves_the_test_alone():
    rng = np.random.default_rng(0)
    train = make_sampler("off", num_segments=3, new_length=1, test=False, test_segments=8, interval=4,
                         interval_max=7)
    seen = set()
    for _ in range(200):
        steps = np.diff(train.offsets(40, rng)).tolist()
        assert len(set(steps)) == 1  # one interval within a clip
        seen.add(steps[0])
    assert seen == {4, 5, 6, 7}
    # a video too short for the drawn interval shortens it as a fixed interval does: 3 segments in 11 frames
    assert all(set(np.diff(train.offsets(11, rng)).tolist()) <= {4, 5} for _ in range(50))
    # test samplers keep the one interval
    test = make_sampler("off", num_segments=8, new_length=1, test=True, test_segments=8, interval=4, interval_max=7)
    assert test.interval_max is None and set(np.diff(test.offsets(40)).tolist()) == {4}


def test_an_interval_range_needs_a_fixed_interval_below_it():
    from offnet.data.sampling import Sampler

    with pytest.raises(ValueError, match="interval_max"):
        Sampler(name="off", num_segments=3, new_length=1, test=False, interval=None, interval_max=6)
    with pytest.raises(ValueError, match="interval_max"):
        Sampler(name="off", num_segments=3, new_length=1, test=False, interval=6, interval_max=5)
    with pytest.raises(ValueError, match="interval_max"):
        off_train_offsets(40, 3, 1, np.random.default_rng(0), interval=None, interval_max=6)
