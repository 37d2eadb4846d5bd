"""Tiny generated datasets in the Kinetics and Something-Something v2 layouts (no download).

``write_kinetics_layout`` writes ``train.csv`` / ``validate.csv`` and 64x48 H.264 clips under
``ROOT/train/<label>/`` and ``ROOT/val/<label>/`` in the three ways clips are found in the wild: a label folder
named as the label (``air drumming``), one with underscores (``playing_cards``) and clips directly in the split
folder (``zumba``). ``write_sthv2_layout`` writes ``labels/labels.json``, ``labels/train.json``,
``labels/validation.json`` and VP9 ``.webm`` clips under ``20bn-something-something-v2/``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import av
import pytest


def _data_conftest():
    """tests/data/conftest.py by path: another folder's conftest may already be imported as ``conftest``."""
    spec = importlib.util.spec_from_file_location("offnet_tests_data_fixtures", Path(__file__).with_name("conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


write_video = _data_conftest().write_video

KINETICS_CLASSES = ("air drumming", "playing cards", "zumba")
KINETICS_FOLDERS = {"air drumming": "air drumming", "playing cards": "playing_cards", "zumba": None}
STHV2_TEMPLATES = ("Pushing [something] from left to right", "Pushing [something] from right to left",
                   "Putting [something] on a surface")


def webm_codec() -> str:
    """A VP9 (else VP8) encoder of this PyAV build; skips the test when it has neither."""
    for name in ("libvpx-vp9", "libvpx"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - any failure means "not available"
            continue
    pytest.skip("this PyAV build has no VP9/VP8 encoder (libvpx), so no .webm can be written")


def kinetics_clip(root: Path, split: str, label: str, youtube_id: str, start: int) -> Path:
    folder = KINETICS_FOLDERS[label]
    name = f"{youtube_id}_{start:06d}_{start + 10:06d}.mp4"
    return root / split / name if folder is None else root / split / folder / name


def write_kinetics_layout(root: Path, *, per_class: int = 2, num_frames: int = 12, missing: int = 0,
                          broken: int = 0) -> Path:
    """Clips ``tr<c><i>`` (train) and ``va<c>0`` (val) for each class; the first ``missing`` training rows
    have no file and the next ``broken`` are not videos."""
    root.mkdir(parents=True, exist_ok=True)
    header = "label,youtube_id,time_start,time_end,split,is_cc\n"
    train, val = [header], [header.replace(",is_cc", "")]
    n = 0
    for c, label in enumerate(KINETICS_CLASSES):
        for i in range(per_class):
            youtube_id = f"tr-{c}_{i}XYZab"
            train.append(f'"{label}",{youtube_id},{10 * i},{10 * i + 10},train,0\n')
            path = kinetics_clip(root, "train", label, youtube_id, 10 * i)
            if n < missing:
                pass
            elif n < missing + broken:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"not a video at all" * 10)
            else:
                write_video(path, num_frames=num_frames)
            n += 1
        youtube_id = f"va-{c}_0XYZab"
        val.append(f"{label},{youtube_id},30,40,val\n")
        write_video(kinetics_clip(root, "val", label, youtube_id, 30), num_frames=num_frames)
    (root / "train.csv").write_text("".join(train))
    (root / "validate.csv").write_text("".join(val))
    return root


def write_sthv2_layout(root: Path, *, per_class: int = 2, num_frames: int = 12, missing: int = 0,
                       nested: bool = True) -> Path:
    """``per_class`` training and one validation clip per template; ids 1, 2, …; the first ``missing``
    training ids have no file. ``nested``: videos in ``20bn-something-something-v2/`` (else in ROOT)."""
    codec = webm_codec()
    labels = root / "labels"
    labels.mkdir(parents=True, exist_ok=True)
    videos = root / "20bn-something-something-v2" if nested else root
    (labels / "labels.json").write_text(json.dumps(
        {t.replace("[", "").replace("]", ""): str(i) for i, t in enumerate(STHV2_TEMPLATES)}, indent=1))
    train, val = [], []
    clip = 0
    for template in STHV2_TEMPLATES:
        for subset, count in ((train, per_class), (val, 1)):
            for _ in range(count):
                clip += 1
                subset.append({"id": str(clip), "label": template.replace("[something]", "a box"),
                               "template": template, "placeholders": ["a box"]})
                if subset is train and len(train) <= missing:
                    continue
                write_video(videos / f"{clip}.webm", num_frames=num_frames, codec=codec)
    (labels / "train.json").write_text(json.dumps(train, indent=1))
    (labels / "validation.json").write_text(json.dumps(val, indent=1))
    return root


def train_then_test(dataset: str, root: Path, tmp_path: Path) -> tuple[dict, str]:
    """``offnet train`` (tiny OFF, end to end, 2 steps) then ``offnet test`` on ``root``: ``(config, test output)``."""
    import yaml

    from offnet.cli import main

    config = {
        "name": f"tiny_{dataset}", "stages": [3],
        "model": {"name": "off", "backbone": "tiny", "dropout": 0.0, "partial_bn": False},
        "data": {"dataset": dataset, "root": str(root), "num_segments": 3, "test_segments": 3, "size": 40,
                 "scales": [1.0], "num_workers": 0, "val_fraction": 0.0, "on_bad_video": "skip"},
        "optim": {"name": "adamw"},
        "train": {"batch_size": 2, "device": "cpu", "tensorboard": False, "checkpoint_every": 2, "val_every": 2},
        "stage3": {"lr": 0.001, "iterations": 2, "schedule": "constant"},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["train", str(path), "--run-dir", str(run), "--no-progress"]) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert main(["test", str(run), "--out", str(tmp_path / "test"), "--workers", "0", "--device", "cpu",
                 "--no-progress"]) == 0
    return saved, str(tmp_path / "test")
