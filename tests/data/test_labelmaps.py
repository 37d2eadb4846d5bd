"""Label maps for horizontal flips (offnet.data.labelmaps) and class-name words (offnet.data.classnames)."""

from __future__ import annotations

import pytest

from offnet.data.classnames import name_words
from offnet.data.labelmaps import auto_flip_map, flip_permutation, reversal_labels

MOTION = ["MoveRight", "MoveLeft", "TurnClockwise", "TurnCounterclockwise", "ZoomIn", "ZoomOut"]


@pytest.mark.parametrize(("name", "words"), [
    ("TurnCounterClockwise", ["turn", "counterclockwise"]),
    ("rotate_counter-clockwise", ["rotate", "counterclockwise"]),
    ("anti clockwise spin", ["anticlockwise", "spin"]),
    ("RotateCCW", ["rotate", "ccw"]),
    ("Pushing something from left to right", ["pushing", "something", "from", "left", "to", "right"]),
])
def test_name_words(name, words):
    assert name_words(name) == words


def test_auto_swaps_left_right_and_turn_directions_and_keeps_zooms():
    assert auto_flip_map(MOTION) == {"MoveRight": "MoveLeft", "MoveLeft": "MoveRight",
                                     "TurnClockwise": "TurnCounterclockwise",
                                     "TurnCounterclockwise": "TurnClockwise"}
    assert flip_permutation("auto", MOTION) == (1, 0, 3, 2, 4, 5)


@pytest.mark.parametrize("names", [
    ["move_left", "move_right", "rotate_clockwise", "rotate_counter-clockwise"],
    ["move left", "move right", "rotate cw", "rotate ccw"],
    ["MoveLeft", "MoveRight", "RotateClockwise", "RotateAnticlockwise"],
    ["Pushing something from left to right", "Pushing something from right to left", "Moving away"],
])
def test_auto_reads_other_spellings(names):
    perm = flip_permutation("auto", names)
    assert perm[:2] == (1, 0)
    assert perm[2:] == ((3, 2) if len(names) == 4 else (2,))


def test_auto_refuses_a_direction_without_its_mirror_image():
    with pytest.raises(ValueError, match="class 'SwipeLeft' names a direction, but its mirror image is not a class"):
        flip_permutation("auto", ["SwipeLeft", "SwipeUp"])


def test_explicit_map_is_symmetric_and_checked():
    names = ["a", "b", "c"]
    assert flip_permutation({"a": "b"}, names) == (1, 0, 2)
    assert flip_permutation({"a": "b", "b": "a"}, names) == (1, 0, 2)
    with pytest.raises(ValueError, match="'d', which is not a class"):
        flip_permutation({"a": "d"}, names)
    with pytest.raises(ValueError, match="maps 'a' to both 'b' and 'c'"):
        flip_permutation({"a": "b", "c": "a"}, names)
    with pytest.raises(ValueError, match="give 'auto' or a mapping"):
        flip_permutation("mirror", names)


def test_reversal_pairs_time_twins_and_leaves_the_rest_unreversed():
    assert reversal_labels("auto", MOTION) == (1, 0, 3, 2, 5, 4)
    assert reversal_labels("auto", ["open_door", "close_door", "wave"]) == (1, 0, -1)
    assert reversal_labels({"a": "b"}, ["a", "b", "c"]) == (1, 0, -1)
    with pytest.raises(ValueError, match="'x', which is not a class"):
        reversal_labels({"a": "x"}, ["a", "b"])
    with pytest.raises(ValueError, match="maps 'a' to both 'b' and 'c'"):
        reversal_labels({"a": "b", "c": "a"}, ["a", "b", "c"])
    with pytest.raises(ValueError, match="data.reverse_map='backwards' is not valid"):
        reversal_labels("backwards", ["a"])
