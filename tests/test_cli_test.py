"""``offnet fuse`` and ``offnet test`` end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from offnet.cli import main
from offnet.engine.evaluate import EvalResult, save_eval

sys.path.insert(0, str(Path(__file__).parent / "engine"))  # tests/engine is not a package
from eval_fixtures import make_result  # noqa: E402


def _write(tmp_path: Path, name: str, result: EvalResult) -> Path:
    return save_eval(result, tmp_path / name)["scores"]


def _pair(subset: str, names: list[str], split: int = 1, seed: int = 0):
    """RGB and flow results on the same videos; flow's final level carries the signal."""
    rng = np.random.default_rng(seed)
    n = len(names)
    labels = rng.integers(0, 2, size=n)
    onehot = np.eye(2)[labels]
    rgb = make_result({"rgb": rng.normal(0, 3, (n, 2)), "off7": onehot * 0.3 + rng.normal(0, 1, (n, 2))},
                      labels.tolist(), names, subset=subset, split=split)
    flow = make_result({"flow": rng.normal(0, 3, (n, 2)), "off7": onehot * 2 + rng.normal(0, 1, (n, 2))},
                       labels.tolist(), names, backbone_level="flow",
                       modality="flow", subset=subset, split=split)
    return rgb, flow


def test_fuse_plain_sum_prints_and_writes(tmp_path, capsys):
    rgb, flow = _pair("test", [f"t{i}" for i in range(20)])
    paths = [_write(tmp_path, "rgb", rgb), _write(tmp_path, "flow", flow)]
    assert main(["fuse", *map(str, paths), "--out", str(tmp_path / "fused")]) == 0
    out = capsys.readouterr().out
    for label in ("rgb:rgb", "rgb:off7", "flow:flow", "flow:off7", "fused"):
        assert label in out
    summary = json.loads((tmp_path / "fused" / "fusion.json").read_text())
    assert summary["splits"]["0"]["weights"] == [1.0, 1.0, 1.0, 1.0]
    fused = np.load(tmp_path / "fused" / "fused_scores.npz")
    expected = sum(r.scores[lvl].astype(np.float64) for r, lvl in
                   [(rgb, "rgb"), (rgb, "off7"), (flow, "flow"), (flow, "off7")])
    np.testing.assert_allclose(fused["scores"], expected, rtol=1e-5)


def test_fuse_weights_and_levels(tmp_path, capsys):
    rgb, flow = _pair("test", [f"t{i}" for i in range(10)])
    paths = [_write(tmp_path, "rgb", rgb), _write(tmp_path, "flow", flow)]
    code = main(["fuse", *map(str, paths), "--levels", "off7", "--weights", "0.5,2",
                 "--out", str(tmp_path / "o")])
    assert code == 0
    fused = np.load(tmp_path / "o" / "fused_scores.npz")["scores"]
    np.testing.assert_allclose(fused, 0.5 * rgb.scores["off7"] + 2 * flow.scores["off7"], rtol=1e-5)
    assert main(["fuse", *map(str, paths), "--weights", "1,2"]) == 1
    assert "2 weights for 4 streams" in capsys.readouterr().err


def test_fuse_names_missing_videos(tmp_path, capsys):
    rgb, _ = _pair("test", ["a", "b", "c"])
    _, flow = _pair("test", ["a", "b", "zz"])
    paths = [_write(tmp_path, "rgb", rgb), _write(tmp_path, "flow", flow)]
    assert main(["fuse", *map(str, paths)]) == 1
    err = capsys.readouterr().err
    assert "missing from it: c" in err and "only in it: zz" in err


def test_fuse_search_uses_validation_and_refuses_test(tmp_path, capsys):
    rgb, flow = _pair("test", [f"t{i}" for i in range(30)], seed=1)
    rgb_val, flow_val = _pair("val", [f"v{i}" for i in range(40)], seed=2)
    test_paths = [_write(tmp_path, "rgb", rgb), _write(tmp_path, "flow", flow)]
    val_paths = [_write(tmp_path, "rgb_val", rgb_val), _write(tmp_path, "flow_val", flow_val)]
    # refusing: the --val files are test scores
    assert main(["fuse", *map(str, test_paths), "--search", "--val", *map(str, test_paths)]) == 1
    assert "refusing to search fusion weights" in capsys.readouterr().err
    # refusing: --search without --val
    assert main(["fuse", *map(str, test_paths), "--search"]) == 1
    assert "never tuned on the test scores" in capsys.readouterr().err
    code = main(["fuse", *map(str, test_paths), "--search", "--val", *map(str, val_paths),
                 "--grid", "0,1,3", "--out", str(tmp_path / "s")])
    assert code == 0
    out = capsys.readouterr().out
    assert "weights searched on validation scores" in out and "applied unchanged to the test scores" in out
    summary = json.loads((tmp_path / "s" / "fusion.json").read_text())["splits"]["0"]
    assert summary["search"]["method"] == "grid" and summary["search"]["evaluated"] == 27
    weights = summary["weights"]
    assert weights[0] == 1.0 and weights[3] > max(weights[1:3])  # flow:off7 is the informative stream
    plain = sum(r.scores[lvl] for r, lvl in [(rgb_val, "rgb"), (rgb_val, "off7"), (flow_val, "flow"),
                                               (flow_val, "off7")])
    assert summary["search"]["val_top1"] > (plain.argmax(1) == rgb_val.labels).mean()


def test_fuse_preset(tmp_path, capsys):
    rgb, flow = _pair("test", [f"t{i}" for i in range(8)])
    rgb = make_result({**rgb.scores, "off14": rgb.scores["off7"] * 0},
                      rgb.labels.tolist(), list(rgb.names))
    paths = [_write(tmp_path, "flow", flow), _write(tmp_path, "rgb", rgb)]
    assert main(["fuse", *map(str, paths), "--preset", "code-rgb-flow"]) == 0
    out = capsys.readouterr().out
    assert "rgb:off14" in out and "1.6" in out and "0.9" in out


def test_fuse_split_average(tmp_path, capsys):
    paths = []
    for split in (1, 2, 3):
        rgb, _ = _pair("test", [f"s{split}_{i}" for i in range(12)], split=split, seed=split)
        paths.append(_write(tmp_path, f"rgb{split}", rgb))
    assert main(["fuse", *map(str, paths), "--split-average", "--out", str(tmp_path / "avg")]) == 0
    out = capsys.readouterr().out
    assert "split 1:" in out and "split 3:" in out and "mean over splits [1, 2, 3]" in out
    summary = json.loads((tmp_path / "avg" / "fusion.json").read_text())
    per_split = [summary["splits"][s]["fused"]["top1"] for s in ("1", "2", "3")]
    assert summary["mean"]["top1"] == pytest.approx(np.mean(per_split))
    assert main(["fuse", str(paths[0]), "--split-average"]) == 1
    assert "at least two splits" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ offnet test
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 2-class miniature UCF-101 tree and a run directory holding an untrained tiny OFF checkpoint."""
    from eval_fixtures import write_tiny_checkpoint, write_ucf_mini

    base = tmp_path_factory.mktemp("tiny_run")
    data_root = write_ucf_mini(base / "data")
    run = base / "run"
    write_tiny_checkpoint(run / "stage2" / "best.pt", data_root)
    return run, data_root


@pytest.mark.slow
def test_offnet_test_end_to_end(tiny_run, capsys):
    from offnet.engine.evaluate import load_eval

    run, _ = tiny_run
    args = ["test", str(run), "--crops", "3", "--workers", "0", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "off7*" in out and "off14+off7" in out and "backbone+final" in out and "mean-class" in out
    folder = run / "test-split1"
    for name in ("scores.npz", "metrics.json", "confusion.png"):
        assert (folder / name).is_file()
    result = load_eval(folder)
    assert result.levels == ("rgb", "off28", "off14", "off7") and result.final_level == "off7"
    assert sorted(result.names) == ["v_StillBlock_g01_c01", "v_WanderingBall_g01_c01"]
    assert result.meta["subset"] == "test" and result.meta["split"] == 1 and result.meta["crops"] == 3
    assert result.meta["segments"] == 3 and result.meta["stage"] == 2
    assert all(np.isfinite(s).all() and s.shape == (2, 2) for s in result.scores.values())
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["final"]["level"] == "off7" and 0.0 <= metrics["final"]["top1"] <= 1.0


def test_offnet_test_in_bf16_stays_close_to_fp32(tiny_run, tmp_path, capsys):
    """--precision bf16 autocasts the forward passes; scores move by bf16 rounding only, fp16 needs CUDA."""
    from offnet.engine.evaluate import load_eval

    run, _ = tiny_run
    common = ["--workers", "0", "--device", "cpu", "--no-progress"]
    assert main(["test", str(run), "--out", str(tmp_path / "fp32"), *common]) == 0
    assert main(["test", str(run), "--out", str(tmp_path / "bf16"), "--precision", "bf16", *common]) == 0
    fp32, bf16 = load_eval(tmp_path / "fp32"), load_eval(tmp_path / "bf16")
    assert bf16.meta["precision"] == "bf16" and fp32.meta["precision"] == "fp32"
    for level in fp32.levels:
        scale = float(np.abs(fp32.scores[level]).max()) + 1e-6
        difference = float(np.abs(bf16.scores[level] - fp32.scores[level]).max())
        assert 0.0 < difference <= 0.05 * scale + 0.05, (level, difference, scale)  # really bf16, and close
    capsys.readouterr()
    assert main(["test", str(run), "--out", str(tmp_path / "fp16"), "--precision", "fp16", *common]) == 1
    assert "fp16 needs a CUDA device" in capsys.readouterr().err


def test_offnet_test_optimised_and_plain_forward_give_the_same_scores(tiny_run, tmp_path):
    """The default scores an optimised copy (folded BatchNorm, channels-last); --no-optimize the plain forward."""
    from offnet.engine.evaluate import load_eval

    run, _ = tiny_run
    common = ["--workers", "0", "--device", "cpu", "--no-progress"]
    assert main(["test", str(run), "--out", str(tmp_path / "fast"), *common]) == 0
    assert main(["test", str(run), "--out", str(tmp_path / "plain"), "--no-optimize", *common]) == 0
    fast, plain = load_eval(tmp_path / "fast"), load_eval(tmp_path / "plain")
    assert fast.meta["optimized"] is True and plain.meta["optimized"] is False
    assert fast.names == plain.names and list(fast.levels) == list(plain.levels)
    for level in plain.levels:
        np.testing.assert_allclose(fast.scores[level], plain.scores[level], rtol=1e-4, atol=1e-5)


def test_offnet_test_mirrored_crops_score_under_the_flip_map(tiny_run, tmp_path):
    """--crops 2 (centre + mirror) of a run trained with data.flip_map: the mirrored crop's scores are permuted
    by the map. With mean aggregation, 2·mapped - centre = P(2·plain - centre) for the same weights."""
    from eval_fixtures import write_tiny_checkpoint

    from offnet.engine.evaluate import load_eval

    _, data_root = tiny_run
    mapped_run = tmp_path / "mapped"
    write_tiny_checkpoint(mapped_run / "stage2" / "best.pt", data_root,
                          flip_map={"StillBlock": "WanderingBall"})
    plain_run = tmp_path / "plain"
    write_tiny_checkpoint(plain_run / "stage2" / "best.pt", data_root)  # same seed: same weights, plain flips
    common = ["--workers", "0", "--device", "cpu", "--no-progress", "--crop-agg", "mean"]
    assert main(["test", str(mapped_run), "--crops", "2", "--out", str(tmp_path / "m2"), *common]) == 0
    assert main(["test", str(plain_run), "--crops", "2", "--out", str(tmp_path / "p2"), *common]) == 0
    assert main(["test", str(plain_run), "--crops", "1", "--out", str(tmp_path / "p1"), *common]) == 0
    mapped, plain, centre = (load_eval(tmp_path / n) for n in ("m2", "p2", "p1"))
    assert mapped.meta["mirror_labels"] == [1, 0] and plain.meta["mirror_labels"] is None
    assert mapped.names == plain.names == centre.names
    for level in mapped.levels:
        mirror = 2 * plain.scores[level] - centre.scores[level]  # the mirrored crop's own scores
        scale = float(np.abs(centre.scores[level]).max())  # an untrained model: logits far below 1
        assert np.abs(mirror - centre.scores[level]).max() > 1e-2 * scale  # the mirror really differs
        np.testing.assert_allclose(2 * mapped.scores[level] - centre.scores[level], mirror[:, ::-1],
                                   rtol=0, atol=1e-4 * scale)


@pytest.mark.slow
def test_offnet_test_val_subset_then_search(tiny_run, tmp_path, capsys):
    from offnet.engine.evaluate import load_eval

    run, _ = tiny_run
    common = ["--workers", "0", "--device", "cpu", "--no-progress"]
    assert main(["test", str(run / "stage2" / "best.pt"), "--out", str(tmp_path / "t"), *common]) == 0
    assert main(["test", str(run), "--subset", "val", "--out", str(tmp_path / "v"), *common]) == 0
    test, val = load_eval(tmp_path / "t"), load_eval(tmp_path / "v")
    assert val.meta["subset"] == "val" and val.names and not set(val.names) & set(test.names)
    capsys.readouterr()
    assert main(["fuse", str(tmp_path / "t"), "--search", "--val", str(tmp_path / "v")]) == 0
    assert "weights searched on validation scores" in capsys.readouterr().out


def test_offnet_test_errors_name_the_problem(tiny_run, tmp_path, capsys):
    run, _ = tiny_run
    assert main(["test", str(tmp_path / "missing")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["test", str(run), "--data-root", str(tmp_path / "nowhere"), "--device", "cpu"]) == 1
    assert "nowhere" in capsys.readouterr().err


def test_offnet_test_samples_at_the_runs_fixed_interval(tiny_run, tmp_path, monkeypatch):
    """A run trained with data.interval is scored at that interval (not L // segments)."""
    import offnet.data.sampling as sampling
    import offnet.engine.checkpoint as checkpoint

    build = checkpoint.build_model_from_checkpoint

    def with_interval(path):
        model, payload = build(path)
        payload["config"]["data"]["interval"] = 2
        return model, payload

    seen = []
    make = sampling.make_sampler

    def recording(*args, **kwargs):
        sampler = make(*args, **kwargs)
        seen.append(sampler)
        return sampler

    monkeypatch.setattr(checkpoint, "build_model_from_checkpoint", with_interval)
    monkeypatch.setattr(sampling, "make_sampler", recording)
    run, _ = tiny_run
    assert main(["test", str(run), "--workers", "0", "--out", str(tmp_path / "t"), "--no-progress"]) == 0
    assert seen and all(s.interval == 2 and s.test for s in seen)
    assert set(np.diff(seen[0].offsets(32)).tolist()) == {2}
