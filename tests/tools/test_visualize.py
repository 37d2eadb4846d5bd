import numpy as np
import pytest
import torch

import offnet
from offnet.tools.visualize import denormalize, off_maps, plot_off


def test_off_maps_shapes_and_static_background_cancels(tmp_path):
    torch.manual_seed(0)
    model = offnet.create_model("off", num_classes=3, backbone="tiny")
    still = torch.randn(1, 3, 64, 64).expand(4, 3, 64, 64).clone()  # 4 identical segments
    maps = off_maps(model, still)
    assert maps["frames"].shape == (4, 64, 64, 3)
    assert maps["pixel_dt"].shape == (3, 64, 64) and np.allclose(maps["pixel_dt"], 0)
    assert maps["feat_dt"].shape == (3, 16, 16) and np.allclose(maps["feat_dt"], 0)
    assert set(maps["scores"]) == set(model.levels)
    out = plot_off(maps, tmp_path / "vis.png", class_names=["a", "b", "c"])
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"


def test_tsn_has_no_off_features_and_flow_is_refused():
    maps = off_maps(offnet.create_model("tsn", num_classes=3, backbone="tiny"), torch.randn(3, 3, 64, 64))
    assert maps["feat_dt"] is None
    with pytest.raises(ValueError, match="colour frames"):
        off_maps(offnet.create_model("off", num_classes=3, backbone="tiny", modality="flow"),
                 torch.randn(3, 10, 64, 64))


def test_denormalize_inverts_caffe_and_imagenet_specs():
    rgb = torch.rand(2, 3, 4, 4)
    for spec in (offnet.create_model("tsn", num_classes=2, backbone="tiny").input_spec,
                 offnet.models.BACKBONES["bninception"][0]().input_spec):
        mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
        std = torch.tensor(spec.std).view(1, 3, 1, 1)
        x = rgb.flip(1) if spec.bgr else rgb
        x = x * 255 if spec.scale255 else x
        assert np.allclose(denormalize((x - mean) / std, spec), rgb.permute(0, 2, 3, 1).numpy(), atol=1e-5)
