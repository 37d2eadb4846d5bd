"""Faults on purpose: concurrency, truncated input, unwritable outputs, full disks, NaN weights, Ctrl-C.

One test per row of the reliability matrix. Every case must end with one line naming the problem and
the fix, a non-zero exit, no traceback, and no finished work lost or half-written.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import offnet.fileio
from offnet.cli import main
from offnet.config import Config
from offnet.data.synth import write_synthetic_dataset
from offnet.engine.checkpoint import load_checkpoint, save_checkpoint
from offnet.engine.trainer import train


def _data_fixtures():
    """tests/data/conftest.py under its own name (another conftest may already be imported as ``conftest``)."""
    import importlib.util

    path = Path(__file__).parent / "data" / "conftest.py"
    spec = importlib.util.spec_from_file_location("offnet_data_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


write_video = _data_fixtures().write_video

torch.set_num_threads(1)

CLASSES = ["SlideRight", "SlideLeft"]


def _config(root: Path, **data) -> Config:
    return Config.from_dict({
        "name": "rel", "stages": [3],
        "model": {"name": "off", "backbone": "tiny", "dropout": 0.0, "partial_bn": False},
        "data": {"dataset": "ucf101", "root": str(root), "num_segments": 3, "test_segments": 8, "size": 56,
                 "num_workers": 0, "val_fraction": 0.0, "flip": False, **data},
        "optim": {"name": "adamw"},
        "train": {"batch_size": 2, "device": "cpu", "tensorboard": False, "log_every": 1, "checkpoint_every": 1},
        "stage3": {"lr": 0.001, "iterations": 2, "schedule": "constant"},
    })


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("rel") / "synth", classes=CLASSES, videos_per_class=4,
                                   num_frames=32, progress=False)


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("run") / "run"
    train(_config(dataset), run_dir=run_dir, progress=False)
    return run_dir


@pytest.fixture
def truncated(tmp_path) -> Path:
    video = write_video(tmp_path / "videos" / "cut.avi", num_frames=40, height=64, width=80)
    data = video.read_bytes()
    video.write_bytes(data[: int(len(data) * 0.7)])  # the last frames are gone, the header still says 40
    return video


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("offnet: error:")]
    assert lines, err
    for needle in needles:
        assert needle in err, err
    return err


# ------------------------------------------------------------------------------------------------ runs
def test_refused_train_leaves_the_run_as_it_was(run, capsys):
    before = (run / "config.yaml").read_bytes()
    config = run / "other.yaml"
    data = yaml.safe_load(before)
    data["stage3"]["iterations"] = 40
    config.write_text(yaml.safe_dump(data))
    assert main(["train", str(config), "--run-dir", str(run), "--no-progress"]) == 1
    _one_line_error(capsys, "already holds a checkpoint", "--resume")
    assert (run / "config.yaml").read_bytes() == before
    assert main(["train", str(config), "--run-dir", str(run), "--resume", "--no-progress"]) == 1
    _one_line_error(capsys, "stage3.iterations (2 -> 40)")
    config.unlink()


def test_two_concurrent_trains_into_one_run_directory(dataset, tmp_path):
    """The second process is refused while the first holds the run; the first finishes undisturbed."""
    config = tmp_path / "c.yaml"
    data = _config(dataset).to_dict()
    data["stage3"]["iterations"] = 60
    config.write_text(yaml.safe_dump(data))
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "offnet.cli", "train", str(config), "--run-dir", str(run_dir), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while not (run_dir / "log.jsonl").exists() or not (run_dir / "log.jsonl").read_text():
        assert first.poll() is None and time.time() < deadline, first.communicate()
        time.sleep(0.2)
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 1
    assert f"in use by process {first.pid}" in second.stderr and "Traceback" not in second.stderr
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    steps = [json.loads(line)["step"] for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 61))  # one writer: no interleaved records
    assert load_checkpoint(run_dir / "stage3" / "last.pt")["config"]["stage3"]["iterations"] == 60


# ------------------------------------------------------------------------------------------- flow
def _extract(root: Path, out: Path, size: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "offnet.cli", "extract-flow", "--root", str(root), "--out",
                             str(out), "--workers", "1", "--algorithm", "farneback", "--size", size, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_concurrent_flow_extractions(tmp_path):
    root = tmp_path / "videos"
    for i in range(6):
        write_video(root / "a" / f"v{i}.avi", num_frames=12, height=64, width=80)
    out = tmp_path / "frames"
    # same settings: every video is extracted by one of them, none twice at once, none mixed
    first, second = _extract(root, out, "48"), _extract(root, out, "48")
    results = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, results
    for i in range(6):
        folder = out / "a" / f"v{i}"
        assert len(list(folder.glob("img_*.jpg"))) == 12 and len(list(folder.glob("flow_x_*.jpg"))) == 11
        import cv2

        shapes = {cv2.imread(str(f)).shape[:2] for f in folder.glob("*.jpg")}
        assert shapes == {(48, 60)}
    assert not [p for p in out.rglob("*") if p.name.endswith(".offnet-tmp")]
    # other settings into the same output: refused before anything is written
    third = _extract(root, out, "32")
    _, err = third.communicate(timeout=120)
    assert third.returncode == 1 and "other settings" in err and "Traceback" not in err
    # two runs with different sizes at once into a new output: one runs, the other is refused
    fresh = tmp_path / "fresh"
    runs = [_extract(root, fresh, "48"), _extract(root, fresh, "32")]
    outcomes = [(p.wait(timeout=300), p.stderr.read()) for p in runs]
    assert sorted(code for code, _ in outcomes) == [0, 1], outcomes
    assert "other settings" in next(err for code, err in outcomes if code == 1)
    import cv2

    sizes = {cv2.imread(str(f)).shape[:2] for f in fresh.rglob("*.jpg")}
    assert len(sizes) == 1  # no folder mixes two sizes


def test_flow_leftovers_of_a_live_process_are_kept(tmp_path):
    """Only temporary folders nobody is writing are cleaned: a live extraction's folder survives."""
    from offnet.data.flow import _clean_leftovers, _tmp_dir, _VideoLock

    final = tmp_path / "out" / "a" / "v0"
    live = _tmp_dir(final)
    live.mkdir(parents=True)
    stale = final.with_name("v1")
    dead = _tmp_dir(stale)
    dead.mkdir(parents=True)
    lock = _VideoLock(final)
    assert lock.acquire()
    try:
        assert _clean_leftovers(tmp_path / "out") == 1
    finally:
        lock.release()
    assert live.is_dir() and not dead.exists()


# ------------------------------------------------------------------------------------ truncated input
def test_truncated_video_through_every_command(run, truncated, tmp_path, capsys):
    # extract-flow: no complete-looking folder, exit 1 naming the video
    out = tmp_path / "frames"
    assert main(["extract-flow", "--root", str(truncated.parent), "--out", str(out), "--workers", "1",
                 "--algorithm", "farneback"]) == 1
    printed = capsys.readouterr().out
    assert "cut.avi" in printed and "truncated" in printed and not (out / "cut").exists()
    assert main(["extract-flow", "--root", str(truncated.parent), "--out", str(tmp_path / "f2"), "--workers", "1",
                 "--algorithm", "farneback", "--on-bad-video", "skip"]) == 0
    assert "failed 1" in capsys.readouterr().out
    # predict: fails naming the video, or skips it and says so
    assert main(["predict", str(run), str(truncated)]) == 1
    _one_line_error(capsys, "cut.avi", "truncated")
    good = next(Path(load_checkpoint(run / "stage3" / "last.pt")["config"]["data"]["root"]).glob("videos/*/*.avi"))
    assert main(["predict", str(run), str(truncated), str(good), "--on-bad-video", "skip",
                 "--json", str(tmp_path / "p.json")]) == 0
    printed = capsys.readouterr().out
    assert "skipped" in printed and "cut.avi" in printed
    report = json.loads((tmp_path / "p.json").read_text())
    assert [p["video"] for p in report["predictions"]] == [str(good)] and len(report["skipped"]) == 1


def test_truncated_video_in_a_test_split(run, tmp_path, capsys):
    root = Path(load_checkpoint(run / "stage3" / "last.pt")["config"]["data"]["root"])
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    test_list = (copy / "ucfTrainTestlist" / "testlist01.txt").read_text()
    victim = copy / "videos" / test_list.split()[0]
    data = victim.read_bytes()
    victim.write_bytes(data[: int(len(data) * 0.7)])
    assert main(["test", str(run), "--data-root", str(copy), "--out", str(tmp_path / "t"), "--no-progress"]) == 1
    _one_line_error(capsys, victim.name, "truncated")
    assert not (tmp_path / "t" / "scores.npz").exists()
    assert main(["test", str(run), "--data-root", str(copy), "--out", str(tmp_path / "t"), "--no-progress",
                 "--on-bad-video", "skip"]) == 0
    meta = json.loads(str(np.load(tmp_path / "t" / "scores.npz")["meta"]))
    assert len(meta["skipped_videos"]) == 1 and victim.name in meta["skipped_videos"][0]


# ------------------------------------------------------------------------------- unwritable outputs
@pytest.fixture
def read_only(monkeypatch, tmp_path):
    """Make every folder under ``tmp_path/ro`` refuse new files (as a read-only mount does, even for root)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real = offnet.fileio.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve().is_relative_to(ro.resolve()):
            raise OSError(errno.EROFS, "Read-only file system", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(offnet.fileio.tempfile, "mkstemp", mkstemp)
    return ro


def test_read_only_outputs_are_one_line_errors_before_any_work(run, read_only, capsys, monkeypatch):
    import offnet.engine.evaluate as evaluate

    def no_evaluation(*args, **kwargs):
        raise AssertionError("the evaluation ran before the output location was checked")

    monkeypatch.setattr(evaluate, "evaluate", no_evaluation)
    assert main(["test", str(run), "--out", str(read_only / "t"), "--no-progress"]) == 1
    _one_line_error(capsys, str(read_only / "t"), "read-only")
    video = next(Path(load_checkpoint(run / "stage3" / "last.pt")["config"]["data"]["root"]).glob("videos/*/*.avi"))
    for argv in (["predict", str(run), str(video), "--json", str(read_only / "p.json")],
                 ["visualize", str(run), str(video), "--out", str(read_only / "v.png")],
                 ["data", "synth", str(read_only / "s"), "--videos-per-class", "2"],
                 ["data", "check", "--dataset", "ucf101", "--root", str(Path(video).parents[2]),
                  "--write-lists", str(read_only / "lists")],
                 ["train", str(run / "config.yaml"), "--run-dir", str(read_only / "r"), "--no-progress"]):
        assert main(argv) == 1, argv
        _one_line_error(capsys, "read-only")


def test_fuse_into_a_read_only_folder(run, read_only, capsys):
    assert main(["test", str(run), "--no-progress", "--out", str(read_only.parent / "scores")]) == 0
    capsys.readouterr()
    assert main(["fuse", str(read_only.parent / "scores" / "scores.npz"), "--out", str(read_only / "f")]) == 1
    _one_line_error(capsys, "read-only")


def test_a_full_disk_leaves_no_empty_files(run, tmp_path, capsys, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "t"
    monkeypatch.setattr(offnet.fileio.os, "fsync", full)
    assert main(["test", str(run), "--out", str(out), "--no-progress"]) == 1
    _one_line_error(capsys, "no space left on", "scores.npz")
    assert not out.exists() or not [p for p in out.iterdir()]  # nothing 0-byte or half-written
    video = next(Path(load_checkpoint(run / "stage3" / "last.pt")["config"]["data"]["root"]).glob("videos/*/*.avi"))
    assert main(["predict", str(run), str(video), "--json", str(tmp_path / "p.json")]) == 1
    _one_line_error(capsys, "no space left on", "p.json")
    assert not (tmp_path / "p.json").exists()
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_a_full_disk_while_saving_a_checkpoint_names_the_file(tmp_path, monkeypatch):
    def failing_save(obj, handle, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match=r"cannot write checkpoint .*last\.pt.*MiB free.*--resume"):
        save_checkpoint(tmp_path / "stage1" / "last.pt", {"model_config": {}, "model": {}})
    assert not list((tmp_path / "stage1").iterdir())


# ------------------------------------------------------------------------------------------ weights
def test_nan_weights_are_refused_at_load(run, tmp_path, capsys):
    payload = load_checkpoint(run / "stage3" / "last.pt")
    key = next(k for k, v in payload["model"].items() if v.is_floating_point() and k.startswith("subnet."))
    payload["model"][key] = torch.full_like(payload["model"][key], float("nan"))
    bad = tmp_path / "nan.pt"
    save_checkpoint(bad, payload)
    video = next(Path(payload["config"]["data"]["root"]).glob("videos/*/*.avi"))
    assert main(["predict", str(bad), str(video), "--json", str(tmp_path / "p.json")]) == 1
    _one_line_error(capsys, "non-finite weights", key)
    assert main(["test", str(bad), "--out", str(tmp_path / "t"), "--no-progress"]) == 1
    _one_line_error(capsys, "non-finite weights")
    assert not (tmp_path / "p.json").exists() and not (tmp_path / "t" / "scores.npz").exists()


def test_non_finite_scores_are_never_written(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent / "engine"))
    from eval_fixtures import make_result

    from offnet.engine.evaluate import save_eval

    scores = np.zeros((3, 2))
    scores[1, 0] = np.nan
    result = make_result({"rgb": scores, "off7": np.zeros((3, 2))}, [0, 1, 0], ["a", "b", "c"])
    with pytest.raises(ValueError, match="level rgb has non-finite scores .* 1 video.*b"):
        save_eval(result, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_pickled_code_checkpoint_gets_no_bad_advice(tmp_path):
    import pathlib

    from offnet.engine.checkpoint import load_checkpoint as load

    path = tmp_path / "evil.pt"  # any non-tensor class stands for code the unpickler would run
    torch.save({"format": 1, "model_config": {}, "model": {}, "x": pathlib.PurePosixPath("x")}, path)
    with pytest.raises(ValueError) as info:
        load(path)
    message = str(info.value)
    assert "never unpickles" in message and "weights_only=False unless you trust" in message
    assert "Re-running `torch.load` with `weights_only` set to `False`" not in message


# ------------------------------------------------------------------------------------------- Ctrl-C
def test_a_swallowed_ctrl_c_still_stops_training(dataset, tmp_path, monkeypatch):
    """SIGINT that lands in a DataLoader finaliser is printed as "Exception ignored" and lost; the flag is not."""
    from offnet import interrupts
    from offnet.engine import trainer

    interrupts.reset()
    real = trainer._micro_batches
    seen = []

    def swallowing(loader, accum):
        for i, group in enumerate(real(loader, accum)):
            seen.append(i)
            if i == 1:
                try:  # what Python does with an exception raised in __del__: print and go on
                    interrupts._handler(signal.SIGINT, None)
                except KeyboardInterrupt:
                    pass
            yield group

    monkeypatch.setattr(trainer, "_micro_batches", swallowing)
    config = _config(dataset)
    config.stage3.iterations = 20
    try:
        with pytest.raises(KeyboardInterrupt):
            train(config, run_dir=tmp_path / "run", progress=False)
    finally:
        interrupts.reset()
    assert len(seen) <= 3  # stopped at the next step, not at the end


def test_sigint_stops_a_training_process_with_130(dataset, tmp_path):
    config = tmp_path / "c.yaml"
    data = _config(dataset, num_workers=2).to_dict()
    data["stage3"]["iterations"] = 500
    config.write_text(yaml.safe_dump(data))
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "offnet.cli", "train", str(config), "--run-dir", str(run_dir),
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not (run_dir / "log.jsonl").exists() or len((run_dir / "log.jsonl").read_text().splitlines()) < 3:
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert len((run_dir / "log.jsonl").read_text().splitlines()) < 500


def test_stop_process_pool_ends_running_tasks_at_once():
    """A failed job or Ctrl-C in the owner of a process pool (demo jobs, extract-flow) stops the tasks still
    running instead of waiting for every submitted one."""
    import concurrent.futures as cf
    import multiprocessing as mp

    from offnet.interrupts import stop_process_pool

    pool = cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"))
    futures = [pool.submit(time.sleep, 120) for _ in range(3)]
    deadline = time.monotonic() + 60
    while not all(f.running() for f in futures[:2]) and time.monotonic() < deadline:
        time.sleep(0.1)
    procs = list(pool._processes.values())
    assert len(procs) == 2 and all(p.is_alive() for p in procs)
    t0 = time.monotonic()
    stop_process_pool(pool, grace_s=5.0)
    assert not any(p.is_alive() for p in procs)
    assert time.monotonic() - t0 < 10  # not the 120 s the tasks would take
    # no task ran to completion: the queued one was cancelled or never picked up
    assert not any(f.done() and not f.cancelled() and f.exception() is None for f in futures)


# ------------------------------------------------------------------------------------- smaller ones
def test_small_user_mistakes_are_one_line_errors(run, tmp_path, capsys):
    video = next(Path(load_checkpoint(run / "stage3" / "last.pt")["config"]["data"]["root"]).glob("videos/*/*.avi"))
    cases = [
        (["data", "synth", str(tmp_path / "s"), "--videos-per-class", "0"], "at least 2"),
        (["predict", str(run), str(video), "--top", "0"], "--top must be at least 1"),
        (["predict", str(run), str(video), "--top", "-2"], "--top must be at least 1"),
        (["predict", str(run), str(video), "--segments", "0"], "--segments must be at least 1"),
        (["models", "--segments", "0"], "--segments must be at least 1"),
        (["models", "--size", "8"], "too small"),
        (["bench", "models", "--segments", "0"], "--segments must be at least 1"),
        (["bench", "models", "--size", "8", "--backbone", "tiny"], "too small"),
        (["train", str(run)], "is a folder, not a YAML file"),
        (["extract-flow", "--root", str(tmp_path / "empty"), "--out", str(tmp_path / "o")], "no videos under"),
    ]
    (tmp_path / "empty").mkdir()
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)))
    cases.append((["train", str(binary)], "binary.yaml: not a text file"))
    for argv, needle in cases:
        assert main(argv) == 1, argv
        _one_line_error(capsys, needle)


def test_garbage_frames_fail_the_frame_folder_check(tmp_path, capsys):
    write_frame_folder = _data_fixtures().write_frame_folder
    root = tmp_path / "frames"
    for name in ("good", "empty", "garbage"):
        write_frame_folder(root / "a" / name, num_frames=6)
    (root / "a" / "empty" / "img_00003.jpg").write_bytes(b"")
    (root / "a" / "garbage" / "flow_x_00002.jpg").write_bytes(b"\xff\xd8" + os.urandom(300))
    from offnet.data.check import inspect_record
    from offnet.data.records import VideoRecord

    kinds = {}
    for name in ("good", "empty", "garbage"):
        _, bad = inspect_record(VideoRecord(path=root / "a" / name, label=0))
        kinds[name] = None if bad is None else bad.message
    assert kinds["good"] is None
    assert "img_00003.jpg (0 bytes)" in kinds["empty"] and "flow_x_00002.jpg (JPEG cut short)" in kinds["garbage"]


def test_training_refuses_frames_smaller_than_the_crop(dataset, tmp_path):
    config = _config(dataset, size=96)  # 64 px frames, no resize_to: the test crop could not be taken
    with pytest.raises(ValueError, match=r"frames of 64 px .* smaller than the 96 px network input.*resize_to"):
        train(config, run_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "stage3").exists()


def test_a_resumed_run_marks_its_log(dataset, tmp_path):
    config = _config(dataset)
    config.stage3.iterations = 4
    config.train.checkpoint_every = 2
    run_dir = tmp_path / "run"
    script = textwrap.dedent(f"""
        import os, sys, yaml
        from offnet.config import Config
        from offnet.engine import trainer
        real = trainer._micro_batches
        done = []
        def dying(loader, accum):
            for group in real(loader, accum):
                if len(done) == 3:
                    os._exit(9)  # killed after logging step 3, whose checkpoint was not written
                done.append(1)
                yield group
        trainer._micro_batches = dying
        config = Config.from_dict(yaml.safe_load({yaml.safe_dump(config.to_dict())!r}))
        trainer.train(config, run_dir={str(run_dir)!r}, progress=False)
    """)
    assert subprocess.run([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"}).returncode == 9
    train(config, run_dir=run_dir, resume=True, progress=False)
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    steps = [r.get("step") for r in records]
    marker = next(i for i, r in enumerate(records) if r.get("event") == "resume")
    assert records[marker]["step"] == 2 and steps[:marker] == [1, 2, 3] and steps[marker + 1:] == [3, 4]


def test_progress_goes_to_a_log_as_plain_lines(capsys):
    import io

    from offnet.progress import progress_bar

    log = io.StringIO()
    bar = progress_bar(total=200, desc="test", unit="video", file=log)
    for _ in range(200):
        bar.update()
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 10
    assert lines[0].startswith("test: 10% (20/200 video)") and lines[-1].startswith("test: 100% (200/200 video)")
