"""metrics.jsonl (per step, per evaluation, resume without duplicates) and ``python -m deepnet plot``."""
from __future__ import annotations

import json
import sys

import pytest

from deepnet.__main__ import main
from deepnet.metrics_log import METRICS, read_metrics
from deepnet.plot import find_runs, plot_runs
from deepnet.train import RESULT, train
from common.io import read_json
from tests.helpers import killed_after_checkpoint, tiny_run_config


def test_every_step_and_evaluation_is_logged_and_plotted(waterbirds_root, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--model", "small_vit", "--dataset", "waterbirds", "--method", "sgd", "--lr", "0.01",
            "--data-root", waterbirds_root, "--no-pretrained", "--epochs", "2", "--batch-size", "4", "--num-workers", "0",
            "--out", str(out), "--no-progress", "--eval-every", "2"]
    assert main(argv) == 0
    history = read_json(out / RESULT)["history"]
    steps, evals = read_metrics(out)
    assert [r["step"] for r in steps] == list(range(1, 7)) and [r["epoch"] for r in steps] == [0] * 3 + [1] * 3
    assert all(a["lr"] > b["lr"] for a, b in zip(steps, steps[1:]))  # cosine decay
    assert steps[-1]["lr"] == pytest.approx(history[-1]["last_lr"])
    assert [r["step"] for r in evals] == [2, 3, 4, 6]  # every 2 steps, plus each epoch's end
    epoch_ends = [r for r in evals if r["step"] in (3, 6)]
    assert [r["id_val"] for r in epoch_ends] == [h["id_val"] for h in history]
    assert [r["ood/ood_test"] for r in epoch_ends] == [h["ood"]["ood_test"] for h in history]
    err = capsys.readouterr().err
    assert err.count(" epoch ") == 2 and "epoch 2/2 step 6" in err  # one line per epoch

    capsys.readouterr()
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig.png").exists() and (tmp_path / "fig.pdf").exists()
    axes = {ax.get_title(): ax for ax in plot_runs(find_runs([tmp_path])).axes if ax.get_visible()}
    assert list(axes) == ["train loss", "lr", "id_val", "id_test", "ood/ood_test"]
    (loss,) = axes["train loss"].get_lines()
    assert list(loss.get_xdata()) == list(range(1, 7))
    assert list(loss.get_ydata()) == [r["loss"] for r in steps]
    assert loss.get_label() == tiny_run_config(waterbirds_root).run_name()
    (val,) = axes["id_val"].get_lines()
    assert list(val.get_ydata()) == [r["id_val"] for r in evals]


def _log_past_the_checkpoint(run_dir) -> None:
    """A step logged after the checkpoint, then a torn line."""
    with open(run_dir / METRICS, "a") as f:
        f.write(json.dumps({"kind": "step", "step": 4, "epoch": 1, "loss": 9.0, "lr": 1.0}) + "\n{\"kind")


def test_a_resumed_run_logs_each_step_once(waterbirds_root, tmp_path):
    cfg = tiny_run_config(waterbirds_root)
    train(cfg, tmp_path / "full", progress=False)
    with killed_after_checkpoint(saves=1, on_kill=_log_past_the_checkpoint), pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "resumed", progress=False)  # preempted after epoch 0
    assert [r["step"] for r in read_metrics(tmp_path / "resumed")[0]] == [1, 2, 3, 4]
    train(cfg, tmp_path / "resumed", progress=False)
    full, resumed = read_metrics(tmp_path / "full"), read_metrics(tmp_path / "resumed")
    assert [r["step"] for r in resumed[0]] == list(range(1, 7)) and [r["step"] for r in resumed[1]] == [3, 6]
    assert [r["loss"] for r in resumed[0]] == pytest.approx([r["loss"] for r in full[0]])


def test_tensorboard_without_the_package_is_one_clear_error(waterbirds_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    argv = ["train", "--model", "small_vit", "--dataset", "waterbirds", "--method", "sgd", "--lr", "0.01",
            "--data-root", waterbirds_root, "--no-pretrained", "--epochs", "1", "--num-workers", "0",
            "--out", str(tmp_path / "run"), "--tensorboard"]
    assert main(argv) == 2
    assert "pip install tensorboard" in capsys.readouterr().err
    assert not (tmp_path / "run" / RESULT).exists()


def test_plot_without_runs_is_a_clear_error(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 2
    assert f"no {METRICS} in {tmp_path}" in capsys.readouterr().err
    assert not (tmp_path / "curves.png").exists()
