"""The test protocol: max over crops of per-segment logits, then mean over segments/pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from eval_fixtures import ConsensusOnlyToy, ToySegmentModel, make_result

from offnet.engine.evaluate import EvalResult, aggregate_crops, result_metrics, save_eval, score_clips


def _clips() -> torch.Tensor:
    """``(B=1, crops=2, T=3, C=3, H=2, W=2)`` with flat frames: channel values per (crop, segment)."""
    values = torch.tensor(
        [
            # crop 0: segments 0, 1, 2 (3 channel values each)
            [[4.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 5.0]],
            # crop 1
            [[0.0, 2.0, 1.0], [3.0, 0.0, 1.0], [1.0, 1.0, 1.0]],
        ]
    )  # (crops, T, C)
    return values[None, :, :, :, None, None].expand(1, 2, 3, 3, 2, 2).contiguous()


def test_max_over_crops_then_mean_over_segments_by_hand():
    scores = score_clips(ToySegmentModel(num_classes=3).eval(), _clips(), crop_agg="max")
    # backbone: per segment max over crops: [4,2,1], [3,1,1], [1,1,5] -> mean [8/3, 4/3, 7/3]
    torch.testing.assert_close(scores["rgb"], torch.tensor([[8 / 3, 4 / 3, 7 / 3]]))
    # pairs per crop: crop0 [-4,1,0], [0,-1,4]; crop1 [3,-2,0], [-2,1,0]
    # max over crops: [3,1,0], [0,1,4] -> mean [1.5, 1, 2]
    torch.testing.assert_close(scores["off7"], torch.tensor([[1.5, 1.0, 2.0]]))


def test_mean_over_crops():
    scores = score_clips(ToySegmentModel(num_classes=3).eval(), _clips(), crop_agg="mean")
    # mean over both crops and segments: crop0 mean [4/3, 1/3, 7/3], crop1 [4/3, 1, 1]
    torch.testing.assert_close(scores["rgb"], torch.tensor([[4 / 3, 2 / 3, 5 / 3]]))


def test_order_matters_for_max_and_the_consensus_only_fallback_differs():
    exact = score_clips(ToySegmentModel(num_classes=3).eval(), _clips(), crop_agg="max")
    fallback = score_clips(ConsensusOnlyToy(num_classes=3).eval(), _clips(), crop_agg="max")
    # consensus first: crop0 [4/3, 1/3, 7/3], crop1 [4/3, 1, 1] -> max [4/3, 1, 7/3]
    torch.testing.assert_close(fallback["rgb"], torch.tensor([[4 / 3, 1.0, 7 / 3]]))
    assert not torch.allclose(fallback["rgb"], exact["rgb"])
    same = score_clips(ConsensusOnlyToy(num_classes=3).eval(), _clips(), crop_agg="mean")
    torch.testing.assert_close(same["rgb"], score_clips(ToySegmentModel(), _clips(), crop_agg="mean")["rgb"])


@pytest.mark.parametrize("chunk_images", [1, 3, 6, 1000])
def test_chunking_crops_changes_nothing(chunk_images):
    torch.manual_seed(0)
    clips = torch.randn(2, 10, 3, 3, 8, 8)
    reference = score_clips(ToySegmentModel().eval(), clips, chunk_images=10_000)
    chunked = score_clips(ToySegmentModel().eval(), clips, chunk_images=chunk_images)
    for level in reference:
        torch.testing.assert_close(chunked[level], reference[level])


@pytest.mark.parametrize("arch", ["off", "hypnet", "tsn"])
def test_chunking_segments_gives_the_scores_of_one_forward(arch):
    """25 segments in windows of a few (overlapping by one): every OFF pair and segment counted once."""
    from offnet import create_model

    torch.manual_seed(0)
    model = create_model(arch, num_classes=4, backbone="tiny").eval()
    clips = torch.randn(1, 2, 25, 3, 32, 32)  # (B, crops, T, C, H, W)
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[1]))
    with torch.no_grad():
        whole = score_clips(model, clips, chunk_images=10_000)
        assert calls == [25]
        calls.clear()
        windowed = score_clips(model, clips, chunk_images=4)
    assert max(calls) == 4 and len(calls) > 2 * 7  # memory bounded by the budget, not by T
    for level in whole:
        torch.testing.assert_close(windowed[level], whole[level], rtol=1e-5, atol=1e-5)


def test_single_crop_clip_shape_is_accepted():
    clips = _clips()[:, 0]  # (B, T, C, H, W)
    scores = score_clips(ToySegmentModel(num_classes=3).eval(), clips)
    torch.testing.assert_close(scores["rgb"], torch.tensor([[4 / 3, 1 / 3, 7 / 3]]))


def test_bad_inputs():
    with pytest.raises(ValueError, match="crop aggregation 'median'"):
        aggregate_crops(torch.zeros(1, 2, 3), "median")
    with pytest.raises(ValueError, match=r"\(B, crops, T, C, H, W\)"):
        score_clips(ToySegmentModel(), torch.zeros(2, 3, 4))


def test_eval_result_checks_shapes_and_unique_names():
    with pytest.raises(ValueError, match="expected \\(2, 2\\)"):
        make_result({"rgb": [[0, 1, 2], [0, 1, 2]], "off7": [[0, 1], [0, 1]]}, [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="'a' occurs more than once"):
        make_result({"rgb": [[0, 1], [0, 1]], "off7": [[0, 1], [0, 1]]}, [0, 1], ["a", "a"])
    with pytest.raises(ValueError, match="level 'off7' has no scores"):
        make_result({"rgb": [[0, 1]]}, [0], ["a"])


def test_metrics_per_level_and_plain_sum(tmp_path):
    # rgb right on v1 only, off7 right on v2 only; their sum is right on both.
    result = make_result({"rgb": [[2.0, 0.0], [1.0, 0.5]], "off7": [[0.0, 1.0], [0.0, 3.0]]},
                         [0, 1], ["v1", "v2"])
    metrics = result_metrics(result)
    assert metrics["rgb"].top1 == 0.5 and metrics["off7"].top1 == 0.5
    assert metrics["backbone+final"].top1 == 1.0
    save_eval(result, tmp_path)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["final"]["level"] == "off7" and report["final"]["top1"] == 0.5
    assert report["fused_backbone_final"]["top1"] == 1.0
    assert set(report["levels"]) == {"rgb", "off7"}
    assert report["levels"]["rgb"]["per_class_accuracy"] == {"a": 1.0, "b": 0.0}


def test_off14_plus_off7_is_reported_beside_the_final_level(tmp_path):
    # off7 right on v1 only, off14 right on v2 only (and surer): their sum is right on both; off28 is left out
    result = make_result({"rgb": [[0, 1], [0, 1]], "off28": [[0, 9], [9, 0]], "off14": [[0, 1], [0, 3]],
                          "off7": [[2, 0], [2, 0]]}, [0, 1], ["v1", "v2"])
    metrics = result_metrics(result)
    assert metrics["off7"].top1 == 0.5 and metrics["off14"].top1 == 0.5 and metrics["off14+off7"].top1 == 1.0
    save_eval(result, tmp_path)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["fused_deep"]["levels"] == ["off14", "off7"] and report["fused_deep"]["top1"] == 1.0
    assert report["final"]["level"] == "off7" and report["final"]["top1"] == 0.5


def test_tsn_result_has_no_plain_sum(tmp_path):
    result = EvalResult(scores={"rgb": np.eye(2, dtype=np.float32)}, labels=np.array([0, 1]),
                        names=("x", "y"), class_names=("a", "b"), backbone_level="rgb", final_level="rgb")
    assert "backbone+final" not in result_metrics(result)
    save_eval(result, tmp_path)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["fused_backbone_final"] is None and report["fused_deep"] is None


@pytest.fixture(scope="module")
def mini_records(tmp_path_factory):
    from eval_fixtures import write_ucf_mini

    from offnet.data.datasets import load_split

    root = write_ucf_mini(tmp_path_factory.mktemp("mini") / "data")
    return load_split("ucf101", root, split=1, subset="train")


def test_evaluate_on_decoded_videos(mini_records):
    from offnet.engine.evaluate import evaluate
    from offnet.models.backbone import IMAGENET_SPEC

    records = mini_records.records
    kwargs = dict(modality="rgb", segments=3, crops=3, size=48, sampler="off", input_spec=IMAGENET_SPEC,
                  num_workers=0, device="cpu", progress=False)
    names = mini_records.class_names
    result = evaluate(ToySegmentModel(num_classes=2), records, names, batch_size=2, **kwargs)
    assert result.names == tuple(r.name for r in records)
    np.testing.assert_array_equal(result.labels, [r.label for r in records])
    assert result.levels == ("rgb", "off7") and result.meta["crop_then_consensus"] is True
    assert all(s.shape == (len(records), 2) and np.isfinite(s).all() for s in result.scores.values())
    # Batching and chunking change nothing; the toy model's RGB level is the mean colour, so the two
    # appearance classes (light still block vs. dark background) must not all score alike.
    again = evaluate(ToySegmentModel(num_classes=2), records, mini_records.class_names, batch_size=1,
                     chunk_images=3, **kwargs)
    for level in result.levels:
        np.testing.assert_allclose(again.scores[level], result.scores[level], rtol=1e-5, atol=1e-6)
    assert np.ptp(result.scores["rgb"][:, 0]) > 0


def test_evaluate_rejects_bad_arguments(mini_records):
    from offnet.engine.evaluate import evaluate
    from offnet.models.backbone import IMAGENET_SPEC

    kwargs = dict(modality="rgb", size=48, sampler="off", input_spec=IMAGENET_SPEC, device="cpu",
                  progress=False)
    with pytest.raises(ValueError, match="crops must be one of"):
        evaluate(ToySegmentModel(), mini_records.records, ["a", "b"], crops=5, **kwargs)
    with pytest.raises(ValueError, match="record list is empty"):
        evaluate(ToySegmentModel(), [], ["a", "b"], **kwargs)
    with pytest.raises(ValueError, match="3 class names for a model with 2 classes"):
        evaluate(ToySegmentModel(num_classes=2), mini_records.records[:1], ["a", "b", "c"], segments=3,
                 **kwargs)


def test_evaluate_skip_leaves_out_unreadable_videos_and_fail_names_them(mini_records, tmp_path):
    import dataclasses

    from offnet.data.decode import VideoDecodeError
    from offnet.engine.evaluate import evaluate
    from offnet.models.backbone import IMAGENET_SPEC

    records = list(mini_records.records)
    corrupt = tmp_path / "v_Broken_g01_c01.avi"
    corrupt.write_bytes(b"not a video at all" * 100)
    broken = dataclasses.replace(records[1], path=corrupt)
    kwargs = dict(modality="rgb", segments=3, crops=1, size=48, sampler="off", input_spec=IMAGENET_SPEC,
                  num_workers=0, device="cpu", progress=False)
    names = mini_records.class_names
    good_only = evaluate(ToySegmentModel(num_classes=2), [records[0], *records[2:]], names, **kwargs)
    skipped = evaluate(ToySegmentModel(num_classes=2), [records[0], broken, *records[2:]], names,
                       on_bad_video="skip", **kwargs)
    assert skipped.names == good_only.names and broken.name not in skipped.names
    assert len(skipped.meta["skipped_videos"]) == 1 and "v_Broken_g01_c01.avi" in skipped.meta["skipped_videos"][0]
    for level in good_only.levels:
        np.testing.assert_allclose(skipped.scores[level], good_only.scores[level], rtol=1e-6)
    np.testing.assert_array_equal(skipped.labels, good_only.labels)
    with pytest.raises((VideoDecodeError, RuntimeError, ValueError), match="v_Broken_g01_c01.avi"):
        evaluate(ToySegmentModel(num_classes=2), [records[0], broken, *records[2:]], names, **kwargs)


def test_memory_budget_sets_frames_per_forward():
    from offnet import create_model
    from offnet.engine.evaluate import frames_for_memory

    model = create_model("off", num_classes=4, backbone="tiny")
    small, large = (frames_for_memory(model, size=64, budget_mb=mb) for mb in (1, 64))
    assert 2 <= small < large
    assert frames_for_memory(create_model("off", num_classes=4, backbone="tiny"), size=128, budget_mb=64) < large
    with pytest.raises(ValueError, match="--max-memory must be positive"):
        frames_for_memory(model, size=64, budget_mb=0)


def test_inference_layout_is_channels_last_on_a_cpu_and_for_reduced_precision_on_a_gpu():
    from offnet.engine.evaluate import for_inference, inference_memory_format
    from offnet.models import create_model

    assert inference_memory_format("cpu") == torch.channels_last
    assert inference_memory_format("cpu", "bf16") == torch.channels_last
    assert inference_memory_format("cuda:0") == torch.contiguous_format
    assert inference_memory_format("cuda:0", "fp16") == torch.channels_last
    assert inference_memory_format("cpu", optimize=False) == torch.contiguous_format
    assert inference_memory_format("cpu", "bf16", optimize=False) == torch.channels_last
    model = create_model("off", num_classes=4, backbone="tiny", modality="rgb").train()
    fast = for_inference(model, "cpu")
    assert fast is not model and not fast.training
    conv = next(m for m in fast.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())  # folded into the convolutions
    # the caller's model is left as it was: training mode, default layout, its BatchNorm
    own = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert model.training and not own.weight.is_contiguous(memory_format=torch.channels_last)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 7
    plain = for_inference(model, "cpu", optimize=False)
    conv = next(m for m in plain.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous() and not conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules()) == 7
    bf16 = for_inference(model, "cpu", "bf16", optimize=False)  # reduced precision keeps its channels-last layout
    assert next(m for m in bf16.modules() if isinstance(m, torch.nn.Conv2d)).weight.is_contiguous(
        memory_format=torch.channels_last)


@pytest.mark.parametrize("arch,mode", [("tsn", "paper"), ("off", "paper"), ("off", "official"), ("hypnet", "paper")])
def test_optimised_inference_scores_equal_the_plain_forward_within_float_tolerance(arch, mode):
    from offnet.engine.evaluate import for_inference
    from offnet.models import create_model

    torch.manual_seed(0)
    model = create_model(arch, num_classes=5, backbone="tiny", modality="rgb", spatial_mode=mode)
    for m in model.modules():  # BatchNorm statistics far from the identity, so that folding has work to do
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    plain = for_inference(model, "cpu", optimize=False)
    fast = for_inference(model, "cpu")
    x = torch.randn(2, 2, 4, 3, 64, 64)  # (B, crops, T, C, H, W)
    with torch.inference_mode():
        a, b = score_clips(plain, x), score_clips(fast, x)
    assert set(a) == set(b) == set(model.levels)
    for level in a:
        torch.testing.assert_close(b[level], a[level], atol=1e-5, rtol=1e-5)
        assert not torch.equal(a[level], torch.zeros_like(a[level]))


def test_optimised_bninception_at_224_px_equals_the_plain_forward():
    """Folded BatchNorm, ceil-mode pooling and the inception branches' concatenation in channels-last."""
    from offnet.engine.evaluate import for_inference
    from offnet.models import create_model

    torch.manual_seed(0)
    model = create_model("off", num_classes=7, backbone="bninception", modality="rgb", spatial_mode="official")
    plain = for_inference(model, "cpu", optimize=False)
    fast = for_inference(model, "cpu")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    x = torch.randn(1, 1, 2, 3, 224, 224)
    with torch.inference_mode():
        a, b = score_clips(plain, x), score_clips(fast, x)
    for level in a:
        torch.testing.assert_close(b[level], a[level], atol=1e-4, rtol=1e-4)


def test_reduced_precision_scores_stay_close():
    from offnet.engine.evaluate import bf16_supported, for_inference, precision_autocast
    from offnet.models import create_model

    torch.manual_seed(0)
    model = for_inference(create_model("off", num_classes=4, backbone="tiny", modality="rgb"), "cpu")
    x = torch.randn(1, 1, 3, 3, 56, 56)  # (B, crops, T, C, H, W)
    with torch.inference_mode():
        plain = score_clips(model, x)
    with torch.inference_mode(), precision_autocast("bf16", torch.device("cpu")):
        reduced = score_clips(model, x)
    for level, scores in plain.items():  # bf16 rounding only (8-bit mantissa)
        torch.testing.assert_close(reduced[level].float(), scores, atol=0.15, rtol=0.05)
    assert isinstance(bf16_supported("cpu"), bool)


def test_default_chunk_is_small_on_a_cpu_and_scores_equal_one_whole_forward():
    from offnet.engine.evaluate import default_chunk_images
    from offnet.models import create_model

    assert default_chunk_images("cpu") == 32 and default_chunk_images("cuda:0") == 128
    torch.manual_seed(0)
    model = create_model("off", num_classes=3, backbone="tiny", modality="rgb").eval()
    x = torch.randn(1, 3, 20, 3, 32, 32)  # 60 frames: 1 crop (20 frames) per forward by default
    default, whole = score_clips(model, x), score_clips(model, x, chunk_images=60)
    for level in whole:
        torch.testing.assert_close(default[level], whole[level], atol=1e-5, rtol=1e-5)


def test_compiled_forward_gives_the_plain_scores():
    import shutil

    from offnet.engine.evaluate import compile_model
    from offnet.models import create_model

    torch.manual_seed(0)
    model = create_model("off", num_classes=4, backbone="tiny", modality="rgb").eval()
    x = torch.randn(1, 2, 3, 3, 48, 48)  # (B, crops, T, C, H, W)
    forward = compile_model(model)
    with torch.inference_mode():
        plain = score_clips(model, x)
        compiled = score_clips(model, x, forward=forward)
    for level, scores in plain.items():
        torch.testing.assert_close(compiled[level], scores, atol=1e-4, rtol=1e-4)
    if shutil.which("g++") or shutil.which("c++") or shutil.which("clang++"):
        assert forward.compiled  # a C++ compiler is there: the compiled kernels ran, not the fallback


def test_compile_failure_falls_back_to_the_plain_forward_and_model_errors_still_raise(monkeypatch, caplog):
    from offnet.engine.evaluate import compile_model
    from offnet.models import create_model

    def broken(*args, **kwargs):
        raise RuntimeError("no working C++ compiler")

    monkeypatch.setattr(torch, "compile", lambda model: broken)
    torch.manual_seed(0)
    model = create_model("off", num_classes=4, backbone="tiny", modality="rgb").eval()
    x = torch.randn(1, 1, 3, 3, 48, 48)
    forward = compile_model(model)
    with torch.inference_mode(), caplog.at_level("WARNING"):
        scores = score_clips(model, x, forward=forward)
        plain = score_clips(model, x)
    assert not forward.compiled
    assert "torch.compile failed (RuntimeError: no working C++ compiler)" in caplog.text
    for level in plain:
        torch.testing.assert_close(scores[level], plain[level])
    with torch.inference_mode(), pytest.raises(ValueError, match="expects C=3"):  # the model's own error
        forward(torch.randn(1, 3, 5, 48, 48))


class _DirectionToy(torch.nn.Module):
    """Per-segment logits ``[m, -m, 0]`` where ``m`` is the left-to-right brightness slope of the frame: a
    mirrored frame swaps classes 0 and 1 ("right" and "left") and leaves class 2 as it was."""

    def forward(self, x: torch.Tensor, consensus: bool = True) -> dict[str, torch.Tensor]:
        W = x.shape[-1]
        ramp = torch.linspace(-1.0, 1.0, W)
        m = (x * ramp).mean(dim=(-3, -2, -1))  # (B, T)
        logits = torch.stack([m, -m, torch.zeros_like(m)], dim=-1)  # (B, T, 3)
        return {"rgb": logits.mean(dim=1) if consensus else logits}


def test_unmirror_crops_puts_mirrored_classes_back_by_hand():
    from offnet.engine.evaluate import unmirror_crops

    logits = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])  # (B=1, crops=2, K=3): crop 1 is the mirror
    torch.testing.assert_close(unmirror_crops(logits, (1, 0, 2)), torch.tensor([[[1.0, 2.0, 3.0], [5.0, 4.0, 6.0]]]))
    assert unmirror_crops(logits, None) is logits
    three = torch.zeros(1, 3, 3)
    assert unmirror_crops(three, (1, 0, 2)) is three  # 3 crops hold no mirror
    with pytest.raises(ValueError, match="flip label map has 2 classes; the model has 3"):
        unmirror_crops(logits, (1, 0))


@pytest.mark.parametrize("crop_agg", ["max", "mean"])
def test_mirrored_crops_under_the_flip_map_agree_with_the_unmirrored_clip(crop_agg):
    """Centre + mirror (2 crops) of a direction-sensitive model: with the flip label map the mirrored crop
    votes for the same class as the centre one; without it, it votes for the mirror image's class."""
    from offnet.data.functional import mirror_crop

    torch.manual_seed(0)
    frames = torch.rand(3, 3, 8, 8) + torch.linspace(0, 1, 8)  # (T, C, H, W), brighter to the right
    clips = mirror_crop(frames, 8, flow=False)[None]  # (B=1, crops=2, T, C, H, W)
    model = _DirectionToy()
    single = score_clips(model, frames[None])["rgb"]
    assert single.argmax(-1).item() == 0  # "right"
    mapped = score_clips(model, clips, crop_agg=crop_agg, flip_labels=(1, 0, 2))["rgb"]
    torch.testing.assert_close(mapped, single)
    plain = score_clips(model, clips, crop_agg=crop_agg)["rgb"]
    if crop_agg == "mean":  # the two crops cancel: "right" and "left" tie
        torch.testing.assert_close(plain[0, 0], plain[0, 1])
    else:
        torch.testing.assert_close(plain[0, 1], -single[0, 1])  # the mirror's "left" evidence is max'ed in


def test_test_flip_reads_the_run_config():
    from offnet.engine.evaluate import test_flip

    names = ["MoveLeft", "MoveRight", "ZoomIn"]
    assert test_flip({"flip": True, "flip_map": "auto"}, names, crops=2) == (True, (1, 0, 2))
    assert test_flip({"flip": True, "flip_map": {"ZoomIn": "MoveLeft"}}, names, crops=10) == (True, (2, 1, 0))
    assert test_flip({"flip": True, "flip_map": "auto"}, names, crops=1) == (True, None)  # no mirrored crop
    assert test_flip({"flip": True, "flip_map": "auto"}, names, crops=3) == (True, None)
    assert test_flip({"flip": True}, names, crops=10) == (True, None)  # plain flips: mirrors keep their labels
    assert test_flip({}, names, crops=10) == (True, None)  # data.flip defaults to true
    assert test_flip({"flip": False}, names, crops=2) == (False, None)
    with pytest.raises(ValueError, match="'Jump', which is not a class"):
        test_flip({"flip": True, "flip_map": {"Jump": "MoveLeft"}}, names, crops=2)
