from offnet.cli import main


def test_models_lists_every_architecture_and_modality(capsys):
    assert main(["models", "--backbone", "tiny", "--segments", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[3:]]
    assert {(r[0], r[1]) for r in rows} == {(a, m) for a in ("tsn", "off", "hypnet")
                                            for m in ("rgb", "flow", "rawoff", "rgbdiff")}
    for r in rows:
        assert float(r[-2]) > 0 and float(r[-1]) > 0  # params (M), GFLOPs


def test_models_rejects_unknown_backbone(capsys):
    assert main(["models", "--backbone", "vgg"]) == 1
    assert "unknown backbone" in capsys.readouterr().err
