"""Training / validation datasets built from a config: the OFF interval is the test interval."""

import numpy as np

from offnet.config import Config
from offnet.data.sampling import make_sampler
from offnet.data.synth import write_synthetic_dataset
from offnet.engine.datasets import build_train_data, load_train_records
from offnet.models.backbone import IMAGENET_SPEC


def test_training_clips_use_the_test_interval(tmp_path):
    root = write_synthetic_dataset(tmp_path / "synth", classes=["SlideRight", "SlideLeft"], videos_per_class=6,
                                   num_frames=32, progress=False)
    config = Config.from_dict({
        "stages": [2], "model": {"name": "off", "backbone": "tiny"},
        "data": {"dataset": "ucf101", "root": str(root), "sampler": "off", "num_segments": 3,
                 "test_segments": 16, "size": 56, "num_workers": 0, "val_fraction": 0.3},
    })
    records, class_names = load_train_records(config)
    data = build_train_data(config, records=records, class_names=class_names, input_spec=IMAGENET_SPEC)
    sampler = data.train.sampler
    indices = sampler(32, np.random.default_rng(0))  # (T, new_length)
    assert indices.shape == (3, 1)
    assert set(np.diff(indices[:, 0]).tolist()) == {32 // 16}  # paper Sec. 4.2: interval L // beta
    clip, label = data.train[0]
    assert clip.shape == (3, 3, 56, 56) and label in (0, 1)
    # validation samples exactly as the test protocol: 16 segments at the same interval, same positions
    test_protocol = make_sampler("off", num_segments=3, new_length=1, test=True, test_segments=16)
    assert data.val is not None
    assert np.array_equal(data.val.sampler(32), test_protocol(32))
    assert set(np.diff(data.val.sampler(300)[:, 0]).tolist()) == {300 // 16}  # not 300 // 3
    # val_segments keeps the interval and takes the first segments of the test clip
    config.data.val_segments = 4
    data = build_train_data(config, records=records, class_names=class_names, input_spec=IMAGENET_SPEC)
    assert np.array_equal(data.val.sampler(300), test_protocol(300)[:4])
    # a fixed interval (data.interval) holds for training and validation at any video length
    config.data.interval = 3
    data = build_train_data(config, records=records, class_names=class_names, input_spec=IMAGENET_SPEC)
    for length in (32, 300):
        assert set(np.diff(data.train.sampler(length, np.random.default_rng(0))[:, 0]).tolist()) == {3}
    assert set(np.diff(data.val.sampler(300)[:, 0]).tolist()) == {3}
    # 16 test segments 3 frames apart do not fit in 32 frames: the interval shortens to 31 // 15
    assert set(np.diff(data.val.sampler(32)[:, 0]).tolist()) == {2}
    # an interval range (data.interval_max) varies the training clips' interval; validation keeps data.interval
    config.data.interval_max = 5
    data = build_train_data(config, records=records, class_names=class_names, input_spec=IMAGENET_SPEC)
    rng = np.random.default_rng(0)
    steps = {int(np.diff(data.train.sampler(300, rng)[:, 0])[0]) for _ in range(100)}
    assert steps == {3, 4, 5}
    assert set(np.diff(data.val.sampler(300)[:, 0]).tolist()) == {3}


def test_each_stage_samples_with_its_own_sampler(tmp_path, monkeypatch):
    """The paper's plan: stage 1 is TSN (segments over the whole video), stage 2 the OFF sampler."""
    import offnet.engine.trainer as trainer
    from offnet.engine.datasets import build_stage_data

    root = write_synthetic_dataset(tmp_path / "synth", classes=["SlideRight", "SlideLeft"], videos_per_class=4,
                                   num_frames=32, progress=False)
    config = Config.from_dict({
        "stages": [1, 2], "model": {"name": "off", "backbone": "tiny", "dropout": 0.0},
        "data": {"dataset": "ucf101", "root": str(root), "sampler": "off", "num_segments": 3,
                 "test_segments": 16, "size": 56, "num_workers": 0, "val_fraction": 0.0, "flip": False},
        "train": {"batch_size": 2, "device": "cpu", "tensorboard": False},
        "stage1": {"lr": 0.01, "iterations": 1, "milestones": [], "sampler": "tsn", "num_segments": 2},
        "stage2": {"lr": 0.01, "iterations": 1, "milestones": []},
    })
    built = {}

    def spy(config, **kwargs):
        data = build_stage_data(config, **kwargs)
        built[kwargs["stage"]] = data
        return data

    monkeypatch.setattr(trainer, "build_stage_data", spy)
    trainer.train(config, run_dir=tmp_path / "run", progress=False)
    assert (built[1].train.sampler.name, built[1].train.sampler.num_segments) == ("tsn", 2)
    assert built[1].train[0][0].shape[0] == 2  # two segments per stage-1 clip
    assert built[2].train.sampler.name == "off" and built[2].train[0][0].shape[0] == 3
    assert set(np.diff(built[2].train.sampler(32, np.random.default_rng(0))[:, 0]).tolist()) == {2}


def test_a_flip_label_map_swaps_mirrored_classes_in_training_only(tmp_path):
    from offnet.data.transforms import RandomHorizontalFlip

    root = write_synthetic_dataset(tmp_path / "synth", classes=["SlideRight", "SlideLeft", "StillBlock"],
                                   videos_per_class=4, num_frames=32, progress=False)

    def data(**flip):
        config = Config.from_dict({
            "stages": [3], "model": {"name": "off", "backbone": "tiny"},
            "data": {"dataset": "ucf101", "root": str(root), "num_segments": 3, "test_segments": 4, "size": 56,
                     "num_workers": 0, "val_fraction": 0.3, **flip},
        })
        records, class_names = load_train_records(config)
        return build_train_data(config, records=records, class_names=class_names, input_spec=IMAGENET_SPEC)

    mapped = data(flip=True, flip_map="auto")
    index = {name: i for i, name in enumerate(mapped.class_names)}
    assert mapped.train.flip_labels[index["SlideRight"]] == index["SlideLeft"]
    assert mapped.train.flip_labels[index["StillBlock"]] == index["StillBlock"]
    assert mapped.val.flip_labels is None  # validation clips are the test protocol's
    # the dataset mirrors (it knows the label); the transform must not mirror again without swapping
    assert not any(isinstance(step, RandomHorizontalFlip) for step in mapped.train.transform.transforms)
    plain = data(flip=True)
    assert plain.train.flip_labels is None
    assert any(isinstance(step, RandomHorizontalFlip) for step in plain.train.transform.transforms)
