"""Recipe sizes derived from the data (offnet.tools.recipe): measured motion and the OFF interval it gives."""

import pytest

from offnet.data.synth_motion import write_motion_dataset
from offnet.tools.recipe import finest_tap_stride, measure_motion, off_interval


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Objects moving right / left at exactly 1, 2 and 4 px per frame on 96x72 frames."""
    base = tmp_path_factory.mktemp("motion")
    return {speed: write_motion_dataset(base / f"speed{speed}", classes=["MoveRight", "MoveLeft"],
                                        videos_per_class=6, width=96, height=72, num_frames=16, seed=1,
                                        speed=(speed, speed), progress=False)
            for speed in (1.0, 2.0, 4.0)}


def test_measured_motion_follows_the_true_speed_and_the_frame_scale(datasets):
    measured = {speed: measure_motion(root, short_side=72) for speed, root in datasets.items()}
    for speed, value in measured.items():
        assert 0.8 * speed <= value <= 1.15 * speed, measured
    # at half the frame size, half the pixels per frame
    half = measure_motion(datasets[2.0], short_side=36)
    assert 0.4 * measured[2.0] <= half <= 0.6 * measured[2.0]


def test_the_interval_keeps_the_displacement_per_segment_pair(datasets):
    intervals = {speed: off_interval(measure_motion(root, short_side=72), stride=4, min_frames=200, segments=8)
                 for speed, root in datasets.items()}
    # 2 cells of stride 4 = 8 px: 8, 4 and 2 frames
    assert intervals[1.0] in (7, 8, 9, 10) and intervals[2.0] in (4, 5) and intervals[4.0] == 2, intervals


def test_off_interval_bounds():
    assert off_interval(2.0, stride=4, min_frames=40, segments=8) == 4
    assert off_interval(2.0, stride=4, min_frames=40, segments=8, target_cells=2.5) == 5
    assert off_interval(2.0, stride=8, min_frames=250, segments=25) == 8  # BN-Inception's finest tap
    assert off_interval(0.1, stride=4, min_frames=40, segments=8) == 39 // 7  # segments must fit the video
    assert off_interval(0.0, stride=4, min_frames=40, segments=8) == 5  # nothing moves: the longest that fits
    assert off_interval(50.0, stride=4, min_frames=40, segments=8) == 1
    with pytest.raises(ValueError, match="positive stride"):
        off_interval(2.0, stride=0, min_frames=40, segments=8)


def test_finest_tap_stride():
    assert finest_tap_stride("tiny", 104) == 4
    assert finest_tap_stride("tiny", 56) == 4
    assert finest_tap_stride("bninception", 224) == 8


def test_the_demo_recipe_spans_the_slow_videos_motion_when_asked():
    import dataclasses

    from offnet.tools.demo import FULL, derive_recipe
    from offnet.tools.recipe import DataFacts

    facts = DataFacts(num_classes=6, train_videos=400, frame_width=160, frame_height=120, median_frames=40,
                      min_frames=40)
    speeds = [1.0, 1.1, 1.2, 2.0, 2.0, 2.0, 2.4, 2.6]  # a third of the videos move half as fast
    one = derive_recipe(facts, dataclasses.replace(FULL, slow_percentile=None), speed=speeds)
    assert one.motion_px_per_frame == 2.0 and one.interval == 4 and one.interval_max is None
    spread = derive_recipe(facts, dataclasses.replace(FULL, slow_percentile=25.0), speed=lambda side: speeds)
    # the 25th percentile, 1.175 px/frame, travels 2 cells of the stride-4 tap in 7 frames
    assert spread.interval == 4 and spread.interval_max == 7 and spread.test_segments == 8
    # a single figure, or all videos equally fast, leaves one interval
    assert derive_recipe(facts, dataclasses.replace(FULL, slow_percentile=25.0), speed=2.0).interval_max is None
    # the range never runs past what lets the training segments fit: 3 segments in 12 frames
    short = dataclasses.replace(facts, min_frames=12)
    assert derive_recipe(short, dataclasses.replace(FULL, slow_percentile=25.0), speed=[0.2, 2.0, 2.0]).interval_max \
        == 11 // 2


def test_demo_recipe_flips_with_mirrored_labels_only_where_the_class_names_pair_them():
    import dataclasses

    from offnet.tools.demo import FULL, derive_recipe
    from offnet.tools.recipe import DataFacts

    def recipe(names, **settings):
        facts = DataFacts(num_classes=len(names), train_videos=100, frame_width=160, frame_height=120,
                          median_frames=40, min_frames=40, class_names=tuple(names))
        return derive_recipe(facts, dataclasses.replace(FULL, **settings), speed=2.0)

    assert recipe(["MoveLeft", "MoveRight", "ZoomIn", "ZoomOut"]).flip_map == "auto"
    assert recipe(["MoveLeft", "MoveRight"], flip=False).flip_map is None
    assert recipe(["open_door", "close_door"]).flip_map is None  # no mirror pair by name: no flip at all
    assert recipe(["SwipeLeft", "SwipeUp"]).flip_map is None  # a direction without its mirror image
    # the test adds the mirrored centre crop (scored under the flip map) only where training flips with a map
    assert recipe(["MoveLeft", "MoveRight", "ZoomIn", "ZoomOut"]).test_crops == 2
    assert recipe(["MoveLeft", "MoveRight"], test_crops=1).test_crops == 1
    assert recipe(["open_door", "close_door"]).test_crops == 1
    assert recipe(["MoveLeft", "MoveRight"], flip=False).test_crops == 1
    assert recipe(["ZoomIn", "ZoomOut", "Wave"], reverse=True).reverse_map == "auto"
    assert recipe(["ZoomIn", "ZoomOut"], reverse=False).reverse_map is None
    assert recipe(["Wave", "Clap"], reverse=True).reverse_map is None  # no time-reversal twins by name
