"""Smoke subset of the offline evidence pipeline that CI runs (seconds each on 2 cores): pretraining,
the three measurement commands (``python -m deepnet.measure``) on real offline data, and the
committed result files' structure."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from deepnet import pretrain
from deepnet.measure import cli as measure
from deepnet.models import small

RESULTS = Path(__file__).resolve().parents[2] / "experiments" / "results" / "offline"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.fashion_mnist
def test_pretrain_writes_a_loadable_checkpoint(tmp_path, monkeypatch):
    cfg = pretrain.PretrainConfig(arch="small_resnet", optimizer="adamw", train_images=200, epochs=1,
                                  batch_size=50, warmup_steps=2, test_images=100)
    state, record = pretrain.pretrain(cfg, progress=False)
    assert record["config"]["lr"] == 1e-3 and record["config"]["weight_decay"] == 0.05
    assert len(record["log"]) == 1 and 0.0 <= record["test_acc"] <= 1.0
    pretrain.save_checkpoint("tiny", state, record, tmp_path)
    monkeypatch.setattr(small, "CHECKPOINT_DIR", tmp_path)
    monkeypatch.setattr(small, "MANIFEST", tmp_path / "MANIFEST.json")
    arch, loaded = small.load_checkpoint("tiny")
    assert arch == "small_resnet" and all(torch.equal(loaded[k], state[k].float()) for k in state)


def test_pretrain_rejects_bad_config():
    with pytest.raises(ValueError, match="optimizer"):
        pretrain.PretrainConfig(arch="small_vit", optimizer="rmsprop").resolved()
    with pytest.raises(ValueError, match="multiple"):
        pretrain.balanced_subset(torch.arange(10).numpy() % 10, 15, 0)


def test_memory_command_counts_optimizer_bytes(tmp_path, saved_figures):
    measure.main(["memory", "--models", "small_vit", "--methods", "sgd_no_momentum", "sgd", "adamw",
                      "sgd_freeze_embed", "--device", "cpu", "--out", str(tmp_path)])
    rows = {r["method"]: r for r in _rows(tmp_path / "memory_cpu.jsonl")}
    assert rows["sgd_no_momentum"]["bytes_per_trainable_param"] == pytest.approx(8.0)
    assert rows["sgd"]["bytes_per_trainable_param"] == pytest.approx(12.0)
    assert rows["adamw"]["bytes_per_trainable_param"] == pytest.approx(16.0)
    assert rows["sgd_freeze_embed"]["num_trainable"] < rows["sgd"]["num_trainable"]
    assert rows["sgd"]["saved_activation_bytes"] > 0
    assert (tmp_path / "memory_cpu.png").exists()
    (ax,) = saved_figures[-1].axes
    assert [bar.get_height() for bar in ax.patches] == pytest.approx([r["static_bytes"] / 2**30 for r in rows.values()])
    assert ax.get_legend_handles_labels()[1] == list(rows)


def test_gradnorms_command_on_real_digits(tmp_path, saved_figures):
    models = ["small_vit_fmnist_adamw", "small_resnet_fmnist_sgd"]
    measure.main(["gradnorms", "--models", *models, "--dataset", "digits", "--batches", "2",
                      "--batch-size", "16", "--image-size", "28", "--out", str(tmp_path)])
    rows = _rows(tmp_path / "gradnorms.jsonl")
    for model in models:
        mrows = [r for r in rows if r["model"] == model]
        assert mrows[0]["kind"] == "embed" and mrows[-1]["kind"] == "head"
        assert all(r["grad_norm"] > 0 and r["num_batches"] == 2 for r in mrows)
    summary = json.loads((tmp_path / "gradnorms_summary.json").read_text())["summary"]
    s = summary[models[0]]["grad_norm"]
    assert s["ratio_to_max_middle"] == pytest.approx(s["embed"] / s["max_middle"])
    assert (tmp_path / "gradnorms.png").exists()
    axes = saved_figures[-1].axes  # one row per normalization, one column per model
    for j, model in enumerate(models):
        mrows = [r for r in rows if r["model"] == model and r["label"] != "tokens"]
        assert axes[j].get_title() == model
        assert [tuple(c.get_offsets()[0]) for c in axes[j].collections] == [
            (float(x), r["grad_norm"]) for x, r in enumerate(mrows)]


def test_distortion_command_on_real_digits(tmp_path, monkeypatch, saved_figures):
    """FT and LP-FT for 3 steps on 64 random examples of each split at 16 px, 2 eval batches."""
    monkeypatch.setenv("DEEPNET_OFFLINE", "1")  # must not switch off the shipped checkpoint
    measure.main(["distortion", "--model", "small_resnet_fmnist_adamw", "--dataset", "digits",
                      "--ft-lr", "0.03", "--lpft-lr", "0.003", "--epochs", "1", "--max-train-steps", "3",
                      "--batch-size", "16", "--image-size", "16", "--subset", "64", "--eval-batches", "2",
                      "--eval-batch-size", "16", "--out", str(tmp_path)])
    rows = _rows(tmp_path / "distortion.jsonl")
    assert {(r["method"], r["kind"]) for r in rows} == {("sgd", "id"), ("sgd", "ood"), ("lp_ft", "id"), ("lp_ft", "ood")}
    assert all(r["mean"] > 0 and r["n"] == 32 for r in rows)  # three SGD steps move every backbone
    summary = json.loads((tmp_path / "distortion_summary.json").read_text())
    assert summary["ft_id_over_ood"] == pytest.approx(summary["ft_id_change"] / summary["ft_ood_change"])
    assert summary["subset"] == 64 and summary["command"].startswith("python -m deepnet.measure distortion")
    for method in ("sgd", "lp_ft"):
        run = summary["runs"][method]
        assert run["status"] == "ok" and (tmp_path / "runs" / run["run_dir"] / "checkpoint.pt").exists()
    assert (tmp_path / "distortion.png").exists()
    (ax,) = saved_figures[-1].axes
    assert [bar.get_height() for bar in ax.patches] == [r["mean"] for r in rows]  # rows: run-major, by split
    assert ax.get_legend_handles_labels()[1] == ["FT", "LP-FT"]


def test_committed_sweep_results_are_complete_records():
    files = sorted((RESULTS / "sweeps").glob("*.jsonl"))
    assert files
    for path in files:
        for r in _rows(path):
            assert r["status"] in {"ok", "diverged"} and r["commit"]
            assert r["config"]["model"] and 0.0 <= (r["metrics"]["id_val"] or 0.0) <= 1.0
