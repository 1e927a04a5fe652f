"""``python -m deepnet.data``: exit codes and output on fixture trees."""
from __future__ import annotations

from deepnet.data.__main__ import main


def test_list_names_every_benchmark(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("living17", "waterbirds", "domainnet", "fmow", "camelyon", "cifar10",
                 "digits", "fmnist_subpop", "spurious_fmnist"):
        assert name in out


def test_fixture_then_check_and_probe(tmp_path, capsys):
    assert main(["fixture", "camelyon", str(tmp_path), "--n-per-class", "3", "--image-size", "8"]) == 0
    root = capsys.readouterr().out.strip()
    assert main(["check", "camelyon", "--data-root", root, "--image-size", "8"]) == 0
    assert "train" in capsys.readouterr().out
    assert main(["probe", "camelyon", "--data-root", root, "--image-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "ood_test" in out and "worst-group" in out  # camelyon items carry hospital groups


def test_check_bad_root_exits_2_with_layout(tmp_path, capsys):
    assert main(["check", "waterbirds", "--data-root", str(tmp_path)]) == 2
    assert "Expected layout" in capsys.readouterr().err
