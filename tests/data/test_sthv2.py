"""Something-Something v2 as distributed: JSON annotations, .webm clips, flip off, and every bad entry named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from video_layouts import STHV2_TEMPLATES, train_then_test, write_sthv2_layout

from offnet.cli import main
from offnet.config import load_config
from offnet.data.check import check_dataset
from offnet.data.datasets import load_split
from offnet.data.decode import read_frames

CLASSES = [t.replace("[", "").replace("]", "") for t in STHV2_TEMPLATES]


@pytest.fixture
def sthv2(tmp_path: Path) -> Path:
    return write_sthv2_layout(tmp_path / "ssv2", missing=1)


def test_train_and_validation_records(sthv2: Path) -> None:
    videos = sthv2 / "20bn-something-something-v2"
    train = load_split("sthv2", sthv2, subset="train")
    assert train.class_names == CLASSES
    assert [(r.path, r.label, r.source) for r in train.records[:3]] == [
        (videos / "1.webm", 0, "train.json entry 1"), (videos / "2.webm", 0, "train.json entry 2"),
        (videos / "4.webm", 1, "train.json entry 3"),
    ]
    test = load_split("sthv2", sthv2, subset="test")
    assert [(r.path.name, r.label, r.source) for r in test.records] == [
        ("3.webm", 0, "validation.json entry 1"), ("6.webm", 1, "validation.json entry 2"),
        ("9.webm", 2, "validation.json entry 3")]
    assert read_frames(test.records[0].path, [0, 11]).shape == (2, 48, 64, 3)


def test_videos_in_the_root_and_labels_beside_them(tmp_path: Path) -> None:
    root = write_sthv2_layout(tmp_path / "flat", per_class=1, nested=False)
    for name in ("labels.json", "train.json", "validation.json"):
        (root / "labels" / name).rename(root / name)
    (root / "labels").rmdir()
    data = load_split("sthv2", root, subset="train")
    assert data.records[0].path == root / "1.webm" and data.records[0].path.is_file() and data.base == root


def test_data_check_names_the_missing_clip(sthv2: Path, capsys) -> None:
    report = check_dataset("sthv2", sthv2, workers=1)
    assert [(b.kind, b.record.source) for b in report.bad] == [("missing", "train.json entry 1")]
    args = ["data", "check", "--dataset", "sthv2", "--root", str(sthv2), "--workers", "1"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "1 bad video(s) (1 missing):" in out
    assert f"missing: {sthv2 / '20bn-something-something-v2' / '1.webm'} [train.json entry 1]" in out
    assert main([*args, "--on-bad-video", "skip"]) == 0
    assert "OK: 8 usable video(s)" in capsys.readouterr().out


def test_complete_fixture_passes_data_check(tmp_path: Path, capsys) -> None:
    root = write_sthv2_layout(tmp_path / "s", per_class=1)
    assert main(["data", "check", "--dataset", "sthv2", "--root", str(root), "--workers", "1"]) == 0
    assert "OK: 6 usable video(s)" in capsys.readouterr().out


def test_flip_is_off_by_default_for_sthv2_only() -> None:
    assert load_config(None, ["data.dataset=sthv2"]).data.flip is False
    assert load_config(None, ["data.dataset=sthv2", "data.flip=true"]).data.flip is True
    assert load_config(None, ["data.dataset=kinetics"]).data.flip is True
    assert load_config(None).data.flip is True


def _write(root: Path, labels: object, train: object) -> Path:
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for name, value in (("labels.json", labels), ("train.json", train)):
        (root / "labels" / name).write_text(value if isinstance(value, str) else json.dumps(value))
    return root


LABELS = {"Moving something up": "0", "Moving something down": "1"}


@pytest.mark.parametrize("entries, message", [
    ([{"id": "1", "template": "Moving [something] up"},
      {"id": "../../etc/passwd", "template": "Moving [something] up"}],
     r"train.json entry 2 \(id '../../etc/passwd'\): the id must be a number"),
    ([{"id": "7", "template": "Moving [something] sideways"}],
     r"train.json entry 1 \(id '7'\): template 'Moving \[something\] sideways' is not in .*labels.json \(2 classes\)"),
    ([{"template": "Moving [something] up"}], r"train.json entry 1: expected an object with 'id' and 'template'"),
    (["12"], r"train.json entry 1: expected an object with 'id' and 'template'"),
    ({"id": "1"}, r"train.json: expected a JSON list of clips"),
])
def test_bad_entries_name_file_and_entry(tmp_path: Path, entries: object, message: str) -> None:
    _write(tmp_path, LABELS, entries)
    with pytest.raises(ValueError, match=message):
        load_split("sthv2", tmp_path, subset="train")


@pytest.mark.parametrize("labels, message", [
    ({"Moving something up": "zero"}, r"labels.json entry 'Moving something up': label number must be a non-negative"),
    ({"Moving something up": "0", "Moving something down": "0"},
     "label number 0 is also given to 'Moving something up'"),
    ({"Moving something up": "0", "Moving something down": "2"}, r"must run 0..1 without gaps \(missing e.g. \[1\]\)"),
    (["Moving something up"], "expected a JSON object mapping each template to its label number"),
    ('{"Moving something up": "0",\n  oops}', r"labels.json:2:3: not valid JSON"),
])
def test_bad_labels_json(tmp_path: Path, labels: object, message: str) -> None:
    _write(tmp_path, labels, [])
    with pytest.raises(ValueError, match=message):
        load_split("sthv2", tmp_path, subset="train")


def test_missing_annotation_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Something-Something v2 labels.json not found"):
        load_split("sthv2", tmp_path, subset="train")
    _write(tmp_path, LABELS, [])
    with pytest.raises(FileNotFoundError, match=r"annotation file not found: .*validation.json"):
        load_split("sthv2", tmp_path, subset="test")


def test_train_and_test_on_webm_clips_without_flip(sthv2: Path, tmp_path: Path) -> None:
    saved, out = train_then_test("sthv2", sthv2, tmp_path)
    assert saved["data"]["flip"] is False and saved["data"]["dataset"] == "sthv2"
    assert (Path(out) / "scores.npz").is_file()
