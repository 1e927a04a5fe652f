"""Fault drill for the trainer: loss explosion, truncated checkpoints, data that changed under a
sweep. Real (tiny) runs: a random-weight small ViT on a 12-image Waterbirds fixture."""
from __future__ import annotations

import math
import shutil

import pytest
import torch

from deepnet.config import RunConfig
from deepnet.data import make_fixture
from deepnet.sweep.cli import main as sweep_main
from deepnet.run_files import CHECKPOINT
from deepnet.run_loop import divergence_bound
from deepnet.train import train
from tests.helpers import killed_after_checkpoint, tiny_run_config


def cfg(root: str, **kw) -> RunConfig:
    return tiny_run_config(root, **{"device": "cpu", **kw})


# ---------------------------------------------------------------- divergence


def test_a_finite_loss_explosion_is_diverged_and_a_healthy_run_is_not(waterbirds_root, tmp_path):
    exploded = train(cfg(waterbirds_root, lr=1e3, epochs=1, max_train_steps=5), tmp_path / "exploded", progress=False)
    assert exploded["status"] == "diverged"
    where = exploded["divergence"]
    assert math.isfinite(where["loss"]) and where["loss"] > where["bound"] == pytest.approx(100 * math.log(2))
    healthy = train(cfg(waterbirds_root, epochs=1, max_train_steps=5), tmp_path / "healthy", progress=False)
    assert healthy["status"] == "ok" and "divergence" not in healthy
    assert max(h["train_loss"] for h in healthy["history"]) < divergence_bound(0.0, 2)


# ---------------------------------------------------------------- truncated checkpoints


def truncate(path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_truncated_checkpoint_is_set_aside_and_the_run_resumes_from_the_previous(waterbirds_root, tmp_path):
    run_dir = tmp_path / "run"
    with killed_after_checkpoint(saves=2), pytest.raises(KeyboardInterrupt):
        train(cfg(waterbirds_root), run_dir, progress=False)
    checkpoint, previous = run_dir / CHECKPOINT, run_dir / (CHECKPOINT + ".prev")
    before = torch.load(previous, weights_only=False)
    assert (before["epoch"], torch.load(checkpoint, weights_only=False)["epoch"]) == (1, 2)
    truncate(checkpoint)
    with pytest.warns(UserWarning, match=f"{checkpoint} is unreadable .*moved to checkpoint.pt.corrupt, "
                                         "resuming from checkpoint.pt.prev"):
        resumed = train(cfg(waterbirds_root), run_dir, progress=False)
    assert (run_dir / (CHECKPOINT + ".corrupt")).exists()
    assert not checkpoint.exists() and not previous.exists()
    assert resumed["status"] == "ok" and [h["epoch"] for h in resumed["history"]] == [0, 1]
    assert resumed["history"][0] == before["history"][0]  # epoch 0 kept from the previous checkpoint


def test_a_truncated_only_checkpoint_restarts_the_run_from_scratch(waterbirds_root, tmp_path):
    run_dir = tmp_path / "run"
    with killed_after_checkpoint(saves=1), pytest.raises(KeyboardInterrupt):
        train(cfg(waterbirds_root), run_dir, progress=False)
    truncate(run_dir / CHECKPOINT)
    with pytest.warns(UserWarning, match="moved to checkpoint.pt.corrupt, starting from scratch"):
        record = train(cfg(waterbirds_root), run_dir, progress=False)
    assert record["status"] == "ok" and [h["epoch"] for h in record["history"]] == [0, 1]


# ---------------------------------------------------------------- data that changed


def test_a_done_run_trained_on_other_data_stops_the_relaunch(waterbirds_root, tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text('name = "data"\nmodels = ["small_vit"]\ndatasets = ["waterbirds"]\nmethods = ["sgd"]\n'
                    'epochs = 1\n[lr_grid]\nsgd = [0.01]\n[run]\npretrained = false\nbatch_size = 4\n'
                    'max_train_steps = 1\nnum_workers = 0\ndevice = "cpu"\n')
    root = str(tmp_path / "sweep")
    launch = ["sweep", str(spec), "--root", root, "--no-progress", "--data-root"]
    assert sweep_main([*launch, waterbirds_root]) == 0
    copy = shutil.copytree(waterbirds_root, tmp_path / "elsewhere" / "waterbirds")  # the same data on another machine
    assert sweep_main([*launch, str(copy)]) == 0
    assert "1 done before this launch" in capsys.readouterr().out
    other = make_fixture("waterbirds", tmp_path / "other", n_per_class=3, image_size=16)  # a different copy
    assert sweep_main([*launch, str(other)]) == 2
    err = capsys.readouterr().err
    assert f"trained on {waterbirds_root} (data " in err and f"now gives {other} (data " in err
    assert "--accept-data-change" in err
    assert sweep_main([*launch, str(other), "--accept-data-change"]) == 0
    assert "1 done before this launch" in capsys.readouterr().out
