import pytest

from offnet.cli import main
from offnet.tools.bench_models import bench_models, format_model_results


@pytest.mark.parametrize("mode", ["inference", "train"])
def test_bench_models_times_every_architecture(mode):
    results = bench_models(backbone="tiny", segments=3, size=64, repeats=2, warmup=0, mode=mode, num_classes=4)
    assert [r.arch for r in results] == ["tsn", "hypnet", "off"]
    assert all(len(r.seconds_all) == 2 and r.seconds > 0 for r in results)
    assert results[0].frames_per_s == pytest.approx(3 * results[0].clips_per_s)
    table = format_model_results(results)
    assert "time vs tsn" in table and table.count("x\n") + table.endswith("x") == 3


def test_bench_models_cli(capsys):
    assert main(["bench", "models", "--backbone", "tiny", "--segments", "2", "--size", "64", "--repeats", "1",
                 "--archs", "tsn,off"]) == 0
    out = capsys.readouterr().out
    assert "tsn" in out and "off" in out and "1.00x" in out
    with pytest.raises(ValueError, match="mode"):
        bench_models(mode="fast")
