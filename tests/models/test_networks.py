"""TSN / OFF / Hyp-Net recognizers: shapes, channel plan, stages, gradients, determinism."""

import pytest
import torch

import offnet
from offnet.modalities import MODALITIES

ARCHS = offnet.list_models()
MODS = list(MODALITIES)


def _clip(modality, b=2, t=3, size=64):
    return torch.randn(b, t, MODALITIES[modality].data_channels, size, size)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("modality", MODS)
def test_output_levels_and_shapes_tiny(arch, modality):
    model = offnet.create_model(arch, num_classes=5, modality=modality, backbone="tiny")
    for mode in (model.train, model.eval):
        mode()
        out = model(_clip(modality))
        assert tuple(out) == model.levels
        assert all(v.shape == (2, 5) for v in out.values())
    assert model.levels[0] == modality == model.backbone_level
    expected = {"tsn": (), "off": ("off28", "off14", "off7"), "hypnet": ("hyp28", "hyp14", "hyp7")}[arch]
    assert model.subnet_levels == expected
    assert model.final_level == (expected[-1] if expected else modality)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("modality", MODS)
def test_output_shapes_bninception_224(arch, modality):
    torch.set_num_threads(2)
    model = offnet.create_model(arch, num_classes=101, modality=modality).eval()
    with torch.no_grad():
        out = model(_clip(modality, b=1, t=2, size=224))
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (1, 101) for k in model.levels}


@pytest.mark.slow
def test_off_bninception_seven_segments_224_and_unit_sizes():
    model = offnet.create_model("off", num_classes=101).eval()
    seen = {}
    for name, unit in model.subnet.units.items():
        unit.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, (i[0].shape, o.shape)))
    with torch.no_grad():
        out = model(torch.randn(1, 7, 3, 224, 224))
    assert out["off7"].shape == (1, 101)
    # 6 pairs; unit inputs (paper mode, 3 x 128 per tap) and outputs (spec §2, §8.2)
    assert seen["28"] == (torch.Size([6, 768, 28, 28]), torch.Size([6, 256, 14, 14]))
    assert seen["14"] == (torch.Size([6, 2176, 14, 14]), torch.Size([6, 512, 7, 7]))
    assert seen["7"] == (torch.Size([6, 1280, 7, 7]), torch.Size([6, 1024, 7, 7]))


@pytest.mark.parametrize("modality,spatial_mode,widths", [
    ("rgb", "official", (320, 1056, 832)),
    ("flow", "official", (256, 896, 768)),
    ("rgbdiff", "official", (256, 896, 768)),
    ("rgb", "paper", (768, 2176, 1280)),
    ("flow", "paper", (768, 2176, 1280)),
])
def test_subnet_channel_plan_matches_spec(modality, spatial_mode, widths):
    with torch.device("meta"):
        model = offnet.create_model("off", num_classes=101, modality=modality, spatial_mode=spatial_mode)
    units = model.subnet.units
    assert (units["28"].in_channels, units["14"].in_channels, units["7"].in_channels) == widths
    assert (units["28"].out_channels, units["14"].out_channels, units["7"].out_channels) == (256, 512, 1024)
    # the 14b quirk: last conv 3x3; unit 7 ends without ReLU (spec §8.8)
    assert units["14"].blocks[1].conv3.kernel_size == (3, 3)
    assert units["7"].blocks[-1].final_relu is False


def test_official_subnet_parameter_count_matches_spec():
    with torch.device("meta"):
        model = offnet.create_model("off", num_classes=101, spatial_mode="official")
    n = sum(p.numel() for name, p in model.named_parameters() if name.startswith(("subnet", "tap_ops")))
    assert abs(n / 1e6 - 9.87) < 0.01 * 9.87  # spec §2: ≈ 9.87 M including the three heads


def test_hypnet_and_tsn_are_order_invariant_off_is_not():
    torch.manual_seed(0)
    x = _clip("rgb", b=1, t=4)
    perm = x[:, [3, 1, 0, 2]]
    for arch in ARCHS:
        model = offnet.create_model(arch, num_classes=3, backbone="tiny", dropout=0.0).eval()
        for head in model.heads.values():  # non-trivial heads so the scores are not ~0
            torch.nn.init.normal_(head.fc.weight, std=0.5)
        if model.subnet is not None:
            for head in model.subnet.heads.values():
                torch.nn.init.normal_(head.fc.weight, std=0.5)
        a, b = model(x), model(perm)
        assert torch.allclose(a[model.backbone_level], b[model.backbone_level], atol=1e-5)
        if arch == "off":
            assert not torch.allclose(a["off7"], b["off7"], atol=1e-4)
        elif arch == "hypnet":
            assert torch.allclose(a["hyp7"], b["hyp7"], atol=1e-5)


@pytest.mark.parametrize("arch,stage", [("tsn", 1), ("off", 1), ("off", 2), ("off", 3), ("hypnet", 2)])
def test_gradients_reach_trainable_and_only_trainable_parameters(arch, stage):
    torch.manual_seed(0)
    model = offnet.create_model(arch, num_classes=4, backbone="tiny", dropout=0.0)
    model.set_stage(stage, partial_bn=True)
    model.train()
    out = model(_clip("rgb"))
    loss = sum(torch.nn.functional.cross_entropy(out[k], torch.tensor([0, 3])) for k in model.loss_levels(stage))
    loss.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable, "nothing trains"
    for name, p in model.named_parameters():
        if name in trainable:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name
    backbone_trains = any(n.startswith("backbone.") for n in trainable)
    assert backbone_trains == (stage != 2)
    assert any(n.startswith("subnet.") for n in trainable) == (stage != 1)


def test_stage2_freezes_backbone_bn_statistics_and_partial_bn_keeps_first():
    model = offnet.create_model("off", num_classes=4, backbone="tiny")
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for stage, kwargs, first_moves, others_move in [
        (2, {}, False, False),
        (2, {"partial_bn_train_conv1": True}, True, False),
        (1, {"partial_bn": True}, True, False),
        (1, {"partial_bn": False}, True, True),
    ]:
        model.set_stage(stage, **kwargs)
        model.train()
        before = [bn.running_mean.clone() for bn in bns]
        model(_clip("rgb"))
        moved = [not torch.equal(b, bn.running_mean) for b, bn in zip(before, bns)]
        assert moved[0] == first_moves, (stage, kwargs)
        assert any(moved[1:]) == others_move, (stage, kwargs)


@pytest.mark.parametrize("stage", [1, 3])
def test_partial_bn_freezes_scale_and_shift_of_every_bn_but_the_first(stage):
    """TSN's partial BN: only the first BN layer adapts, statistics AND affine parameters (spec §6)."""
    model = offnet.create_model("off", num_classes=4, backbone="tiny")
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    model.set_stage(stage, partial_bn=True)
    assert bns[0].weight.requires_grad and bns[0].bias.requires_grad
    assert not any(p.requires_grad for bn in bns[1:] for p in (bn.weight, bn.bias))
    names = {id(p): n for n, p in model.named_parameters()}
    optimised = {names[id(p)] for g in model.param_groups(weight_decay=1e-4) for p in g["params"]}
    assert not any(names[id(p)] in optimised for bn in bns[1:] for p in (bn.weight, bn.bias))
    model.set_stage(stage, partial_bn=False)
    assert all(p.requires_grad for bn in bns for p in (bn.weight, bn.bias))


def test_tsn_has_only_stage_one():
    model = offnet.create_model("tsn", num_classes=4, backbone="tiny")
    with pytest.raises(ValueError, match="only stage 1"):
        model.set_stage(2)
    with pytest.raises(ValueError, match="only stage 1"):
        model.loss_levels(3)


def test_eval_mode_is_deterministic_train_mode_is_not():
    torch.manual_seed(0)
    model = offnet.create_model("off", num_classes=4, backbone="tiny").eval()
    x = _clip("rgb")
    first = model(x)
    second = model(x)
    assert all(torch.equal(first[k], second[k]) for k in first)
    for head in model.subnet.heads.values():
        torch.nn.init.normal_(head.fc.weight, std=0.5)
    model.train()
    assert not torch.equal(model(x)["off7"], model(x)["off7"])  # dropout 0.8


def test_param_groups_follow_caffe_multipliers():
    model = offnet.create_model("off", num_classes=4, backbone="tiny")
    model.set_stage(2)
    groups = {g["name"]: g for g in model.param_groups(weight_decay=5e-4)}
    assert groups["weights"]["lr_mult"] == 1.0 and groups["weights"]["weight_decay"] == 5e-4
    assert groups["biases"]["lr_mult"] == 2.0 and groups["biases"]["weight_decay"] == 0.0
    n_groups = sum(len(g["params"]) for g in groups.values())
    assert n_groups == sum(1 for p in model.parameters() if p.requires_grad)


def test_wrong_input_is_refused_with_a_clear_message():
    model = offnet.create_model("off", num_classes=4, backbone="tiny", modality="flow")
    with pytest.raises(ValueError, match="C=10"):
        model(_clip("rgb"))
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        model(torch.randn(2, 10, 64, 64))
    with pytest.raises(ValueError, match="at least 2 segments"):
        model(_clip("flow", t=1))
    with pytest.raises(ValueError, match="unknown model"):
        offnet.create_model("i3d", num_classes=4)
    with pytest.raises(ValueError, match="unknown modality"):
        offnet.create_model("off", num_classes=4, modality="depth")


def test_reset_classifier_and_config_rebuilds():
    model = offnet.create_model("hypnet", num_classes=4, backbone="tiny", modality="rawoff")
    model.reset_classifier(7)
    assert model(_clip("rawoff"))["hyp7"].shape == (2, 7)
    rebuilt = offnet.create_model(**model.config)
    assert rebuilt.levels == model.levels and rebuilt.num_classes == 7


def test_fuse_scores():
    levels = {"rgb": torch.ones(2, 3), "off7": 2 * torch.ones(2, 3)}
    assert torch.equal(offnet.fuse_scores(levels), 3 * torch.ones(2, 3))
    assert torch.equal(offnet.fuse_scores(levels, {"rgb": 1.0, "off7": 1.6}), 4.2 * torch.ones(2, 3))
    with pytest.raises(ValueError, match="unknown level"):
        offnet.fuse_scores(levels, {"flow": 1.0})


def test_consensus_false_returns_per_segment_and_per_pair_logits():
    model = offnet.create_model("off", num_classes=4, backbone="tiny").eval()
    x = _clip("rgb", t=4)
    per = model(x, consensus=False)
    assert per["rgb"].shape == (2, 4, 4) and per["off7"].shape == (2, 3, 4)
    avg = model(x)
    assert all(torch.allclose(per[k].mean(dim=1), avg[k], atol=1e-6) for k in avg)
    hyp = offnet.create_model("hypnet", num_classes=4, backbone="tiny").eval()
    assert hyp(x, consensus=False)["hyp7"].shape == (2, 4, 4)


def test_backbone_head_grad_false_trains_the_head_on_detached_features():
    import torch

    from offnet.models import create_model

    torch.manual_seed(0)
    model = create_model("off", backbone="tiny", num_classes=3, modality="rgb")
    x = torch.randn(2, 3, 3, 48, 48)
    for grad, reaches_backbone in ((True, True), (False, False)):
        model.zero_grad(set_to_none=True)
        model.set_stage(3, partial_bn=False, backbone_head_grad=grad)
        model.train()
        model(x)["rgb"].logsumexp(1).sum().backward()  # the backbone level's loss alone
        head = model.heads["rgb"].fc.weight.grad
        assert head is not None and head.abs().sum() > 0  # the head learns either way
        conv = model.backbone.stem[0][0].weight.grad
        assert (conv is not None and bool(conv.abs().sum() > 0)) is reaches_backbone
    model.set_stage(2)
    assert model.detach_backbone_head is False  # only the end-to-end stage detaches
