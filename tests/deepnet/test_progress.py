"""Progress bars of a run (epochs, features, each evaluated split, the linear probe's C sweep) and
``--no-progress``: no bar, one line per epoch."""
from __future__ import annotations

from collections import OrderedDict

import pytest

from deepnet.__main__ import main
from deepnet.data import make_fixture
from deepnet.methods import linear_probe
from deepnet.progress import progress_bar, progress_bars

BARS = ("features", "linear probe C", "epoch 0", "eval id_val", "eval id_test", "eval ood_test")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return str(make_fixture("waterbirds", tmp_path_factory.mktemp("data"), n_per_class=2, image_size=16))


def _train(root: str, out, *flags: str) -> int:
    return main(["train", "--model", "small_vit", "--dataset", "waterbirds", "--method", "lp_ft", "--lr", "1e-6",
                 "--data-root", root, "--no-pretrained", "--epochs", "2", "--batch-size", "4",
                 "--num-workers", "0", "--out", str(out), *flags])


def test_a_run_shows_a_bar_for_each_stage_and_split(root, tmp_path, capsys, monkeypatch):
    # a probe fit remembered from an earlier test on the same data would skip the C sweep and its bar
    monkeypatch.setattr(linear_probe, "_FIT_CACHE", OrderedDict())
    assert _train(root, tmp_path / "run") == 0
    err = capsys.readouterr().err
    for desc in BARS:
        assert f"{desc}:" in err, desc
    assert "epoch 2/2 step" not in err  # the epoch lines are for runs without bars


def test_no_progress_shows_no_bar_and_one_line_per_epoch(root, tmp_path, capsys):
    assert _train(root, tmp_path / "run", "--no-progress") == 0
    err = capsys.readouterr().err
    assert not [desc for desc in BARS if f"{desc}:" in err]
    lines = [line for line in err.splitlines() if " epoch " in line]
    assert len(lines) == 2 and "epoch 1/2 step 3" in lines[0] and "epoch 2/2 step 6" in lines[1]


def test_bars_are_off_outside_a_run_and_restored_after_one(capsys):
    list(progress_bar(range(3), desc="outside"))
    with progress_bars(True):
        list(progress_bar(range(3), desc="inside"))
        with progress_bars(False):
            list(progress_bar(range(3), desc="nested"))
    list(progress_bar(range(3), desc="after"))
    err = capsys.readouterr().err
    assert "inside:" in err and not any(f"{desc}:" in err for desc in ("outside", "nested", "after"))
