"""Score fusion: matching by name, weights, presets, and the validation-only weight search."""

from __future__ import annotations

import numpy as np
import pytest
from eval_fixtures import make_result

from offnet.engine.evaluate import load_eval, save_eval
from offnet.engine.fusion import (
    PRESETS,
    align_results,
    fuse,
    preset_streams,
    resolve_levels,
    search_weights,
)

# Three videos, two classes. RGB is right on v1 and v3, OFF right on v2 and v3 only when it dominates.
RGB = make_result(
    {"rgb": [[2.0, 0.0], [1.0, 0.0], [0.0, 1.0]], "off14": [[0, 1], [0, 1], [0, 1]],
     "off7": [[0.0, 1.0], [0.0, 3.0], [0.0, 2.0]]},
    [0, 1, 1], ["v1", "v2", "v3"],
)
# The same videos in another order, modality flow.
FLOW = make_result(
    {"flow": [[0.0, 5.0], [1.0, 0.0], [0.0, 0.5]], "off7": [[0.0, 0.0], [3.0, 0.0], [0.0, 1.0]]},
    [1, 0, 1], ["v3", "v1", "v2"], backbone_level="flow", modality="flow",
)


def test_plain_sum_of_backbone_and_final_is_default():
    streams = resolve_levels([RGB])
    assert [s.level for s in streams] == ["rgb", "off7"]
    fused = fuse([RGB], streams)
    np.testing.assert_allclose(fused.scores, [[2.0, 1.0], [1.0, 3.0], [0.0, 3.0]])
    assert fused.weights == (1.0, 1.0) and fused.names == ("v1", "v2", "v3")


def test_weights_are_applied_in_stream_order():
    streams = resolve_levels([RGB], [["rgb", "off7"]])
    fused = fuse([RGB], streams, [0.5, 2.0])
    np.testing.assert_allclose(fused.scores, [[1.0, 2.0], [0.5, 6.0], [0.0, 4.5]])


def test_videos_are_matched_by_name_across_files():
    streams = resolve_levels([RGB, FLOW], [["rgb"], ["flow"]])
    assert [s.label for s in streams] == ["rgb:rgb", "flow:flow"]
    fused = fuse([RGB, FLOW], streams)
    # FLOW rows reordered to v1, v2, v3: [1,0], [0,0.5], [0,5]
    np.testing.assert_allclose(fused.scores, [[3.0, 0.0], [1.0, 0.5], [0.0, 6.0]])
    np.testing.assert_array_equal(fused.labels, [0, 1, 1])


def test_aliases_resolve_per_file():
    streams = resolve_levels([RGB, FLOW], [["backbone", "final"]])
    assert [(s.file_index, s.level) for s in streams] == [(0, "rgb"), (0, "off7"), (1, "flow"), (1, "off7")]


def test_deep_alias_is_the_two_deepest_subnet_heads_or_the_final_level():
    off = make_result({"rgb": [[1, 0]], "off28": [[0, 1]], "off14": [[0, 2]], "off7": [[3, 0]]}, [0], ["v"])
    tsn = make_result({"rgb": [[1, 0]]}, [0], ["v"], final_level="rgb")
    assert off.deep_levels == ("off14", "off7") and tsn.deep_levels is None
    np.testing.assert_allclose(off.fused_deep, [[3.0, 2.0]])
    assert [s.level for s in resolve_levels([off], [["backbone", "deep"]])] == ["rgb", "off14", "off7"]
    assert [s.level for s in resolve_levels([tsn], [["deep"]])] == ["rgb"]


def test_softmax_fuses_probabilities():
    streams = resolve_levels([RGB], [["rgb", "off7"]])
    fused = fuse([RGB], streams, softmax=True)
    np.testing.assert_allclose(fused.scores.sum(axis=1), [2.0, 2.0, 2.0])
    e = np.exp([2.0, 0.0])
    assert fused.scores[0, 0] == pytest.approx(e[0] / e.sum() + np.exp(0) / (1 + np.exp(1)))


def test_missing_videos_are_named():
    other = make_result({"rgb": [[0, 1], [1, 0]], "off7": [[0, 1], [1, 0]]}, [0, 1], ["v1", "v9"])
    with pytest.raises(ValueError, match=r"missing from it: v2, v3.*only in it: v9"):
        align_results([RGB, other])


def test_disagreeing_labels_and_classes_are_refused():
    relabelled = make_result({"rgb": [[0, 1]] * 3, "off7": [[0, 1]] * 3}, [0, 0, 1], ["v1", "v2", "v3"])
    with pytest.raises(ValueError, match="'v2' has label 1"):
        align_results([RGB, relabelled])
    renamed = make_result({"rgb": [[0, 1]] * 3, "off7": [[0, 1]] * 3}, [0, 1, 1], ["v1", "v2", "v3"],
                          class_names=("a", "z"))
    with pytest.raises(ValueError, match="different class names"):
        align_results([RGB, renamed])


@pytest.mark.parametrize(
    ("weights", "message"),
    [([1.0], "1 weights for 2 streams"), ([1.0, -1.0], ">= 0"), ([0.0, 0.0], "not all 0")],
)
def test_bad_weights(weights, message):
    with pytest.raises(ValueError, match=message):
        fuse([RGB], resolve_levels([RGB]), weights)


def test_unknown_level_lists_valid_ones():
    with pytest.raises(ValueError, match=r"level 'off3' is not in .*off14"):
        resolve_levels([RGB], [["off3"]])


def test_preset_matches_files_by_modality():
    streams, weights = preset_streams(PRESETS["code-rgb-flow"], [FLOW, RGB])
    assert [s.label for s in streams] == ["rgb:rgb", "rgb:off7", "rgb:off14", "flow:flow", "flow:off7"]
    assert weights == [1.0, 1.6, 0.4, 0.9, 1.8]
    with pytest.raises(ValueError, match=r"missing \['rgbdiff'\]"):
        preset_streams(PRESETS["code-rgb-rgbdiff"], [RGB])


def test_search_refuses_test_scores():
    with pytest.raises(ValueError, match="refusing to search fusion weights .* subset is 'test'"):
        search_weights([RGB], resolve_levels([RGB]))


def _val_pair(rng: np.random.Generator, n: int = 60):
    """Backbone scores half-informative, final-level scores strongly informative: the search should
    weight the final level up."""
    labels = rng.integers(0, 2, size=n)
    onehot = np.eye(2)[labels]
    rgb = onehot * 0.2 + rng.normal(0, 1.0, size=(n, 2))
    off = onehot * 3.0 + rng.normal(0, 1.0, size=(n, 2))
    return labels, rgb, off


def test_search_on_validation_prefers_the_informative_level():
    rng = np.random.default_rng(0)
    labels, rgb, off = _val_pair(rng)
    val = make_result({"rgb": rgb, "off7": off}, labels.tolist(), [f"v{i}" for i in range(len(labels))],
                      subset="val")
    found = search_weights([val], resolve_levels([val]), grid=(0.0, 0.5, 1.0, 2.0))
    assert found.method == "grid" and found.evaluated == 4
    assert found.weights[0] == 1.0 and found.weights[1] == 2.0
    plain = fuse([val], resolve_levels([val]))
    plain_acc = (plain.scores.argmax(1) == labels).mean()
    assert found.top1 >= plain_acc


def test_search_goes_coordinatewise_for_many_streams():
    rng = np.random.default_rng(1)
    labels, rgb, off = _val_pair(rng, 40)
    levels = {f"l{i}": rng.normal(0, 1, size=(40, 2)) for i in range(5)}
    levels.update({"rgb": rgb, "off7": off})
    val = make_result(levels, labels.tolist(), [f"v{i}" for i in range(40)], subset="val")
    streams = resolve_levels([val], [["all"]])
    assert len(streams) == 7  # 11^6 combinations > 20,000
    found = search_weights([val], streams)
    assert found.method == "coordinate" and len(found.weights) == 7
    assert 0.0 < found.mean_class_accuracy <= 1.0


def test_score_file_round_trip(tmp_path):
    paths = save_eval(RGB, tmp_path / "out")
    assert {p.name for p in paths.values()} == {"scores.npz", "metrics.json", "confusion.png"}
    back = load_eval(paths["scores"])
    assert back.names == RGB.names and back.levels == RGB.levels and back.meta["subset"] == "test"
    for level in RGB.levels:
        np.testing.assert_array_equal(back.scores[level], RGB.scores[level])
    np.testing.assert_array_equal(back.labels, RGB.labels)
    assert load_eval(tmp_path / "out").final_level == "off7"  # a directory works too


def test_load_eval_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="offnet test"):
        load_eval(tmp_path / "nope.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(ValueError, match="not an offnet score file"):
        load_eval(tmp_path / "other.npz")
