"""Config loading, overrides, validation and the shipped configs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from offnet.config import Config, apply_overrides, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_defaults_are_valid_and_follow_the_paper():
    config = Config.from_dict({})
    assert config.stages == [1, 2, 3]
    assert config.stage2.lr == 0.02 and config.stage2.milestones == [10000, 15000, 18000]
    assert config.stage2.iterations == 20000
    assert config.optim.momentum == 0.9 and config.optim.weight_decay == 5e-4
    assert config.optim.clip_grad_norm == 40.0
    assert config.data.num_segments == 7 and config.data.test_segments == 25


def test_override_keeps_the_other_fields_of_a_section():
    config = load_config(None, ["stage2.lr=0.01", "data.flip=false", "data.scales=[1, 0.5]"])
    assert config.stage2.lr == 0.01
    assert config.stage2.milestones == [10000, 15000, 18000]  # untouched default of that section
    assert config.data.flip is False
    assert config.data.scales == [1.0, 0.5]


def test_off_stays_a_string_in_files_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  name: off\ndata:\n  sampler: off\n  flip: false\n")
    config = load_config(path, ["data.sampler=off"])
    assert config.model.name == "off" and config.data.sampler == "off"
    assert config.data.flip is False


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=1", "unknown key optim.lrr"),
        ("bogus=1", "unknown key bogus"),
        ("data.flip=3", "data.flip=3 must be true or false"),
        ("data.num_segments=1.5", "must be an integer"),
        ("model.name=resnet", "model.name='resnet' is not valid"),
        ("stages=[2, 1]", "increasing subset"),
        ("data.val_fraction=1.5", "data.val_fraction"),
        ("train.amp=fp8", "train.amp='fp8'"),
        ("stage2.iterations=null", "stage2 needs stage2.iterations or stage2.epochs"),
        ("noequals", "key=value"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ValueError) as info:
        load_config(None, [override])
    assert message in str(info.value)


def test_unknown_key_lists_the_valid_ones():
    with pytest.raises(ValueError) as info:
        load_config(None, ["optim.lrr=1"])
    assert "clip_grad_norm" in str(info.value) and "momentum" in str(info.value)


def test_tsn_needs_stage_one_only():
    with pytest.raises(ValueError, match="tsn has only stage 1"):
        load_config(None, ["model.name=tsn"])
    assert load_config(None, ["model.name=tsn", "stages=[1]"]).stages == [1]


def test_missing_file_and_bad_top_level(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="top level must be a mapping"):
        load_config(bad)


def test_yaml_round_trip():
    config = load_config(None, ["stage3.loss_weights={off7: 2.0}", "model.pretrained=/w.pt"])
    again = Config.from_dict(yaml.safe_load(config.to_yaml()))
    assert again == config
    assert again.to_dict()["stage3"]["loss_weights"] == {"off7": 2.0}


def test_apply_overrides_does_not_mutate_its_input():
    data = {"optim": {"momentum": 0.9}}
    out = apply_overrides(data, ["optim.momentum=0.5"])
    assert data == {"optim": {"momentum": 0.9}} and out["optim"]["momentum"] == 0.5


def test_configs_are_shipped():
    names = {p.stem for p in CONFIGS}
    for required in ("off_bninception_ucf101_rgb", "off_bninception_ucf101_flow", "off_bninception_hmdb51_rgb",
                     "tsn_bninception_ucf101_rgb", "hypnet_bninception_ucf101_rgb", "off_bninception_ucf101_rawoff",
                     "off_tiny_synth_rgb", "tsn_tiny_synth_rgb", "off_bninception_ucf101_rgbdiff",
                     "tsn_bninception_ucf101_rgbdiff", "off_bninception_hmdb51_rgbdiff", "off_tiny_motion_rgb",
                     "tsn_tiny_motion_rgb", "hypnet_tiny_motion_rgb", "off_tiny_motion_rawoff"):
        assert required in names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_is_valid(path):
    config = load_config(path)
    assert config.name == path.stem
    arch, backbone, dataset, modality = path.stem.split("_")[:4]
    assert config.model.name == arch and config.model.backbone == backbone
    assert config.model.modality == modality
    if backbone == "bninception" and "official" not in path.stem and arch == "off":
        # paper settings (spec 6.3 / 6.4): 7/25 segments, batch 128 by accumulation, 20k iterations
        assert (config.data.num_segments, config.data.test_segments) == (7, 25)
        assert config.train.batch_size * config.train.accum_steps == 128
        assert config.stage2.milestones == [10000, 15000, 18000] and config.stage2.iterations == 20000
        assert config.stage2.lr == (0.05 if modality == "flow" else 0.02)
        assert config.stage3.lr == (5e-4 if modality == "flow" else 2e-4)
    if arch == "tsn":
        assert config.stages == [1]
    if backbone == "bninception" and arch != "tsn" and 1 in config.stages:
        # stage 1 is the paper's TSN: the same data settings as the TSN config of the modality and dataset
        tsn = load_config(path.with_name(f"tsn_bninception_{dataset}_{modality}.yaml"))
        one = config.stage_settings(1)
        assert (one.sampler, one.num_segments) == (tsn.data.sampler, tsn.data.num_segments) == ("tsn", 3)
        assert (one.batch_size, one.accum_steps) == (tsn.train.batch_size, tsn.train.accum_steps)
        assert one.clip_grad_norm == tsn.optim.clip_grad_norm
        assert (config.stage1.lr, config.stage1.iterations) == (tsn.stage1.lr, tsn.stage1.iterations)
        for number in (2, 3):
            later = config.stage_settings(number)
            assert (later.sampler, later.num_segments) == (config.data.sampler, config.data.num_segments)


@pytest.mark.parametrize("raw, expected",
                         [("1e-3", 1e-3), ("2E-4", 2e-4), ("0.02", 0.02), ("3", 3.0), ("1.5e+1", 15.0)])
def test_every_float_a_user_would_write_is_accepted(tmp_path, raw, expected):
    """YAML 1.1 reads ``1e-3`` (no dot) as a string: overrides and files both accept it."""
    assert load_config(None, [f"stage2.lr={raw}"]).stage2.lr == pytest.approx(expected)
    path = tmp_path / "c.yaml"
    path.write_text(f"stage2:\n  lr: {raw}\n")
    assert load_config(path).stage2.lr == pytest.approx(expected)


@pytest.mark.parametrize("raw", [".nan", ".inf", "-.inf", "nan", "inf"])
def test_non_finite_numbers_are_refused(raw):
    with pytest.raises(ValueError, match="stage1.lr.*finite"):
        load_config(None, [f"stage1.lr={raw}"])


def test_a_word_is_still_not_a_number():
    with pytest.raises(ValueError, match="must be a number"):
        load_config(None, ["stage1.lr=fast"])


def test_stage_settings_inherit_the_run_and_override_per_stage():
    config = load_config(None, ["stage1.sampler=tsn", "stage1.num_segments=3", "stage1.batch_size=32",
                                "stage1.clip_grad_norm=20", "stage3.clip_grad_norm=0", "train.accum_steps=2"])
    one, two, three = (config.stage_settings(n) for n in (1, 2, 3))
    assert (one.sampler, one.num_segments, one.batch_size, one.accum_steps, one.clip_grad_norm) == (
        "tsn", 3, 32, 2, 20.0)
    assert (two.sampler, two.num_segments, two.batch_size, two.clip_grad_norm) == ("off", 7, 16, 40.0)
    assert three.clip_grad_norm is None  # 0 turns clipping off in that stage
    assert all(s.test_segments == 25 for s in (one, two, three))
    assert "stage 1: sampler tsn, 3 segments" in config.describe_stages()


@pytest.mark.parametrize(("override", "message"), [
    ("stage1.sampler=tsm", "stage1.sampler='tsm' is not valid"),
    ("stage2.num_segments=1", "stage 2 of model.name=off needs at least 2 segments"),
    ("stage3.batch_size=0", "stage3.batch_size=0 must be at least 1"),
    ("stage1.clip_grad_norm=-1", "stage1.clip_grad_norm=-1.0 must be >= 0"),
    ("optim.clip_grad_norm=0", "optim.clip_grad_norm=0.0 must be positive"),
    ("data.interval=0", "data.interval=0 must be at least 1 frame"),
    ("data.interval_max=6", "data.interval_max=6 must be at least data.interval, which must be set"),
    ("data.flip_map=mirror", "data.flip_map='mirror' is not valid; give 'auto' or a mapping"),
    ("data.flip_map=[a, b]", "data.flip_map=['a', 'b'] must be a mapping"),
    ("data.reverse_map=backwards", "data.reverse_map='backwards' is not valid; give 'auto' or a mapping"),
])
def test_bad_stage_settings_name_the_key(override, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_config(None, [override])


def test_one_segment_is_fine_for_a_tsn_stage_one_of_an_off_run():
    config = load_config(None, ["stage1.num_segments=1", "stage1.sampler=tsn"])
    assert config.stage_settings(1).num_segments == 1


def test_a_fixed_off_interval_is_a_data_setting():
    config = load_config(None, ["data.interval=5", "data.test_segments=8"])
    assert config.data.interval == 5
    assert load_config(None, []).data.interval is None  # the paper's L // test_segments
    assert load_config(None, ["data.interval=4", "data.interval_max=7"]).data.interval_max == 7
    with pytest.raises(ValueError, match="data.interval_max=3 must be at least data.interval"):
        load_config(None, ["data.interval=4", "data.interval_max=3"])


def test_label_maps_for_flips_and_time_reversal():
    assert load_config(None, ["data.flip_map=auto"]).data.flip_map == "auto"
    assert load_config(None, ["data.flip_map={MoveLeft: MoveRight}"]).data.flip_map == {"MoveLeft": "MoveRight"}
    with pytest.raises(ValueError, match="data.flip_map is set but data.flip is false"):
        load_config(None, ["data.flip=false", "data.flip_map=auto"])
    assert load_config(None, ["data.reverse_map=auto"]).data.reverse_map == "auto"
    with pytest.raises(ValueError, match="data.reverse_map cannot reverse flow clips"):
        load_config(None, ["model.modality=flow", "data.reverse_map=auto"])
