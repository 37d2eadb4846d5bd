"""Metrics against hand-computed tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from offnet.engine.metrics import (
    compute_metrics,
    confusion_matrix,
    mean_class_accuracy,
    per_class_accuracy,
    plot_confusion,
    topk_accuracy,
    topk_predictions,
)

# 6 videos, 4 classes. Row i = scores of video i; arg-max per row: 0, 1, 1, 2, 0, 3.
SCORES = np.array(
    [
        [0.9, 0.05, 0.03, 0.02],  # label 0 -> correct
        [0.1, 0.6, 0.2, 0.1],  # label 0 -> predicted 1; label ties class 3, ranked 3rd
        [0.2, 0.5, 0.25, 0.05],  # label 2 -> predicted 1, label 2nd best
        [0.1, 0.1, 0.7, 0.1],  # label 2 -> correct
        [0.4, 0.3, 0.2, 0.1],  # label 3 -> predicted 0, label last (4th)
        [0.0, 0.1, 0.2, 0.7],  # label 1 -> predicted 3, label 3rd best
    ]
)
LABELS = np.array([0, 0, 2, 2, 3, 1])
# Hand-computed: true class rows x predicted columns.
CONFUSION = np.array(
    [
        [1, 1, 0, 0],  # class 0: videos 0 (->0), 1 (->1)
        [0, 0, 0, 1],  # class 1: video 5 (->3)
        [0, 1, 1, 0],  # class 2: videos 2 (->1), 3 (->2)
        [1, 0, 0, 0],  # class 3: video 4 (->0)
    ]
)


def test_confusion_matrix_matches_hand_table():
    np.testing.assert_array_equal(confusion_matrix(SCORES, LABELS), CONFUSION)


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        (1, 2 / 6),  # videos 0 and 3
        # k=2: + video 2 (label 2nd). Video 1: label 0 has 0.1, tied with class 3 (0.1), ranked 3rd
        # after the stable tie-break (lower index first): order 1, 2, 0, 3 -> in top-3, not top-2.
        (2, 3 / 6),
        (3, 5 / 6),  # + video 1 (3rd) and video 5 (3rd)
        (4, 6 / 6),
        (5, 6 / 6),  # k clipped to 4 classes
    ],
)
def test_topk_accuracy_hand_table(k, expected):
    assert topk_accuracy(SCORES, LABELS, k) == pytest.approx(expected)


def test_topk_ties_break_to_lower_index_like_argmax():
    scores = np.array([[1.0, 1.0, 0.0]])
    assert topk_predictions(scores, 2).tolist() == [[0, 1]]
    assert topk_accuracy(scores, np.array([0]), 1) == 1.0
    assert topk_accuracy(scores, np.array([1]), 1) == 0.0


def test_per_class_and_mean_class_accuracy():
    acc = per_class_accuracy(CONFUSION)
    np.testing.assert_allclose(acc, [0.5, 0.0, 0.5, 0.0])
    assert mean_class_accuracy(CONFUSION) == pytest.approx(0.25)


def test_mean_class_accuracy_skips_absent_classes_and_differs_from_top1():
    # class 2 has no video; class 0: 3/3 right, class 1: 0/1 right
    scores = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0.0]])
    labels = np.array([0, 0, 0, 1])
    m = confusion_matrix(scores, labels)
    assert math.isnan(per_class_accuracy(m)[2])
    assert mean_class_accuracy(m) == pytest.approx(0.5)
    assert topk_accuracy(scores, labels, 1) == pytest.approx(0.75)


def test_compute_metrics_bundle():
    names = ["a", "b", "c", "d"]
    m = compute_metrics(SCORES, LABELS, names)
    assert m.top1 == pytest.approx(2 / 6)
    assert m.top5 == 1.0 and m.top5_k == 4
    assert m.mean_class_accuracy == pytest.approx(0.25)
    assert m.per_class == {"a": 0.5, "b": 0.0, "c": 0.5, "d": 0.0}
    d = m.to_dict(include_confusion=True)
    assert d["confusion"] == CONFUSION.tolist() and d["num_videos"] == 6


def test_two_class_top5_is_top2():
    m = compute_metrics(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([0, 0]), ["x", "y"])
    assert m.top1 == 0.5 and m.top5 == 1.0 and m.top5_k == 2


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        (np.zeros((3,)), np.zeros(3, dtype=int), "shape"),
        (np.zeros((3, 2)), np.zeros(2, dtype=int), "labels must have shape"),
        (np.zeros((2, 2)), np.array([0, 2]), "label 2 at row 1"),
        (np.array([[0.0, np.nan]]), np.array([0]), "NaN"),
        (np.zeros((0, 2)), np.zeros(0, dtype=int), "no videos"),
        (np.zeros((1, 2)), np.array([0.5]), "integers"),
    ],
)
def test_bad_input_is_named(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        compute_metrics(scores, labels, ["a", "b"])


def test_class_name_count_must_match():
    with pytest.raises(ValueError, match="3 class names"):
        compute_metrics(SCORES[:, :2], np.array([0, 1, 0, 1, 0, 1]), ["a", "b", "c"])


@pytest.mark.parametrize("num_classes", [2, 101])
def test_plot_confusion_writes_png(tmp_path, num_classes):
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 5, size=(num_classes, num_classes))
    path = plot_confusion(matrix, [f"class_{i}" for i in range(num_classes)], tmp_path / "sub" / "c.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_plot_confusion_rejects_mismatched_names(tmp_path):
    with pytest.raises(ValueError, match="does not match 3 class names"):
        plot_confusion(np.zeros((2, 2)), ["a", "b", "c"], tmp_path / "c.png")
