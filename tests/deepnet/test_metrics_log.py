"""metrics.jsonl (per step, per evaluation, resume without duplicates) and ``python -m deepnet plot``."""
from __future__ import annotations

import json
import sys

import pytest

from deepnet.__main__ import main
from deepnet.config import RunConfig
from deepnet.metrics_log import grad_norm_scalars, read_metrics
from deepnet.run_files import METRICS, TENSORBOARD_DIR
from deepnet.plot import find_runs, plot_runs
from deepnet.run_files import RESULT
from deepnet.run_loop import RunLoop
from deepnet.train import train
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


def test_a_resumed_run_logs_each_step_once(waterbirds_root, tiny_full_run, tmp_path):
    cfg = tiny_run_config(waterbirds_root)
    full_dir, record = tiny_full_run  # the same config trained uninterrupted
    assert record["config"] == cfg.to_dict()
    with killed_after_checkpoint(saves=1, on_kill=_log_past_the_checkpoint), pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "resumed", progress=False)  # preempted after epoch 0
    assert [r["step"] for r in read_metrics(tmp_path / "resumed")[0]] == [1, 2, 3, 4]
    train(cfg, tmp_path / "resumed", progress=False)
    full, resumed = read_metrics(full_dir), read_metrics(tmp_path / "resumed")
    assert [r["step"] for r in resumed[0]] == list(range(1, 7)) and [r["step"] for r in resumed[1]] == [3, 6]
    assert [r["loss"] for r in resumed[0]] == pytest.approx([r["loss"] for r in full[0]])


def _tensorboard_scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` as TensorBoard reads ``run_dir/tensorboard``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / TENSORBOARD_DIR))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def _jsonl_scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    """The same mapping from ``run_dir/metrics.jsonl`` (tags ``train/NAME`` and ``eval/NAME``)."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    for prefix, records in zip(("train/", "eval/"), read_metrics(run_dir)):
        for record in records:
            for name, value in record.items():
                if name not in ("kind", "step", "epoch"):
                    scalars.setdefault(prefix + name, []).append((record["step"], value))
    return scalars


def test_tensorboard_events_equal_metrics_jsonl_after_a_resume(waterbirds_root, tmp_path, monkeypatch):
    out = tmp_path / "run"
    argv = ["train", "--model", "small_vit", "--dataset", "waterbirds", "--method", "sgd", "--lr", "0.01",
            "--data-root", waterbirds_root, "--no-pretrained", "--epochs", "2", "--batch-size", "4", "--num-workers", "0",
            "--out", str(out), "--no-progress", "--eval-every", "2", "--tensorboard"]
    original = RunLoop._save_checkpoint

    def save_then_crash(self, next_epoch):
        original(self, next_epoch)
        self.log.step(4, 1, 9.0, 1.0)  # logged (to both) after the checkpoint, so replayed on resume
        raise KeyboardInterrupt("simulated preemption after epoch 0")

    monkeypatch.setattr(RunLoop, "_save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    monkeypatch.setattr(RunLoop, "_save_checkpoint", original)
    assert main(argv) == 0
    expected = _jsonl_scalars(out)
    assert sorted(expected) == ["eval/id_test", "eval/id_val", "eval/ood/ood_test", "train/loss", "train/lr"]
    assert [step for step, _ in expected["train/loss"]] == list(range(1, 7))
    written = _tensorboard_scalars(out)
    assert sorted(written) == sorted(expected)
    for tag, points in expected.items():
        assert [step for step, _ in written[tag]] == [step for step, _ in points], tag
        assert [value for _, value in written[tag]] == pytest.approx([value for _, value in points], rel=1e-6), tag


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


def test_grad_norms_are_the_norms_of_each_kinds_gradients():
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    for p, value in zip(model.parameters(), (3.0, 4.0, 1.0, 2.0)):
        p.grad = torch.full_like(p, value)
    model[1].bias.grad = None  # a frozen parameter has no gradient
    kinds = {"0.weight": "embed", "0.bias": "middle", "1.weight": "head", "1.bias": "head"}
    norms = grad_norm_scalars(model, kinds, scale=2.0)
    assert list(norms) == ["grad_norm/embed", "grad_norm/middle", "grad_norm/head"]
    assert norms["grad_norm/embed"] == pytest.approx(3.0 * 2 / 2)  # ||3 * ones(2, 2)|| / scale
    assert norms["grad_norm/middle"] == pytest.approx(4.0 * 2 ** 0.5 / 2)
    assert norms["grad_norm/head"] == pytest.approx(1.0 * 2 ** 0.5 / 2)
    model[0].weight.grad = None
    assert "grad_norm/embed" not in grad_norm_scalars(model, kinds)


def test_log_grad_norms_logs_each_step_per_kind_and_changes_nothing_else(waterbirds_root, tmp_path):
    cfg = tiny_run_config(waterbirds_root, method="sgd_freeze_embed", epochs=1)
    logged = RunConfig.from_dict({**cfg.to_dict(), "log_grad_norms": True})
    assert logged.key() == cfg.key()  # execution-only: the same run directory
    plain = train(cfg, tmp_path / "plain", progress=False)
    train(logged, tmp_path / "logged", progress=False)
    steps, _ = read_metrics(tmp_path / "logged")
    assert len(steps) == 3
    for record in steps:  # the embedding is frozen: no gradient, no entry
        assert set(record) == {"kind", "step", "epoch", "loss", "lr", "grad_norm/middle", "grad_norm/head"}
        assert record["grad_norm/middle"] > 0 and record["grad_norm/head"] > 0
    assert [r["loss"] for r in steps] == [r["loss"] for r in read_metrics(tmp_path / "plain")[0]]
    assert read_json(tmp_path / "logged" / RESULT)["metrics"] == plain["metrics"]
    axes = {ax.get_title(): ax for ax in plot_runs([tmp_path / "logged"]).axes if ax.get_visible()}
    assert list(axes)[:4] == ["train loss", "lr", "grad_norm/middle", "grad_norm/head"]
    (head,) = axes["grad_norm/head"].get_lines()
    assert list(head.get_ydata()) == [r["grad_norm/head"] for r in steps]
