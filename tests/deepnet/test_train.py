"""The training loop end to end on a fixture dataset, plus RunConfig, results files and metrics."""
from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest
import torch

from deepnet.__main__ import main
from deepnet.config import RunConfig
from deepnet.evaluate import metrics_from_counts
from common.io import append_jsonl, read_json, read_jsonl, write_json
from deepnet.run_files import CHECKPOINT, RESULT
from deepnet.train import train
from tests.helpers import killed_after_checkpoint, tiny_run_config

CONTRACT_KEYS = {"config", "status", "best_epoch", "metrics", "history", "commit", "data", "env", "time_s"}
METRIC_KEYS = {"id_val", "id_test", "ood", "ood_avg", "worst_group"}


def test_cli_run_writes_the_contract_record_and_a_rerun_returns_it(waterbirds_root, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--model", "small_vit", "--dataset", "waterbirds", "--method", "sgd_freeze_embed",
            "--lr", "0.01", "--data-root", str(Path(waterbirds_root).parent),  # parent of waterbirds/
            "--no-pretrained", "--epochs", "2",
            "--batch-size", "4", "--num-workers", "0", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    record = read_json(out / RESULT)
    assert set(record) == CONTRACT_KEYS and record["status"] == "ok"
    assert set(record["metrics"]) == METRIC_KEYS and set(record["metrics"]["ood"]) == {"ood_test"}
    assert RunConfig.from_dict(record["config"]).method == "sgd_freeze_embed"
    history = record["history"]
    assert [h["epoch"] for h in history] == [0, 1] and history[-1]["steps"] == 2 * 3  # 12 images / 4
    best = max(range(2), key=lambda e: history[e]["id_val"])
    assert record["best_epoch"] == best
    assert record["metrics"] == {k: history[best][k] for k in METRIC_KEYS}
    m = record["metrics"]
    assert all(0 <= v <= 1 for v in (m["id_val"], m["id_test"], m["ood_avg"], m["worst_group"]))
    assert m["worst_group"] == m["ood"]["ood_test"] <= history[best]["ood_acc"]["ood_test"]
    assert not (out / CHECKPOINT).exists()
    assert json.loads(capsys.readouterr().out)["status"] == "ok"
    assert main(argv) == 0 and read_json(out / RESULT) == record  # finished: returned, not retrained


def test_resume_after_interruption_matches_an_uninterrupted_run(waterbirds_root, tiny_full_run, tmp_path):
    cfg = tiny_run_config(waterbirds_root, method="sgd")  # momentum: the optimizer state must survive too
    full_dir, full = tiny_full_run  # the same config trained uninterrupted
    assert full["config"] == cfg.to_dict()
    with killed_after_checkpoint(saves=1), pytest.raises(KeyboardInterrupt):  # preempted after epoch 0
        train(cfg, tmp_path / "resumed", progress=False, keep_checkpoint=True)
    assert torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=False)["epoch"] == 1
    # resuming elsewhere may change execution-only fields (device, workers, data location)
    moved = RunConfig.from_dict({**cfg.to_dict(), "device": "cpu", "data_root": str(Path(waterbirds_root).parent)})
    resumed = train(moved, tmp_path / "resumed", progress=False, keep_checkpoint=True)
    with pytest.raises(ValueError, match="different config"):
        train(tiny_run_config(waterbirds_root, lr=0.5), tmp_path / "resumed", progress=False)

    a = torch.load(full_dir / CHECKPOINT, weights_only=False)
    b = torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=False)
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    drop = ("time_s",)
    assert [{k: v for k, v in h.items() if k not in drop} for h in full["history"]] == \
           [{k: v for k, v in h.items() if k not in drop} for h in resumed["history"]]
    assert resumed["metrics"] == full["metrics"]


def test_gradient_accumulation_matches_the_full_batch(waterbirds_root, tmp_path):
    runs = {}
    for accum in (1, 2):
        cfg = tiny_run_config(waterbirds_root, epochs=1, grad_accum=accum, max_train_steps=2)
        train(cfg, tmp_path / str(accum), progress=False, keep_checkpoint=True)
        runs[accum] = torch.load(tmp_path / str(accum) / CHECKPOINT, weights_only=False)["model"]
    for name, w in runs[1].items():
        torch.testing.assert_close(runs[2][name], w, rtol=1e-4, atol=1e-6, msg=name)


def test_a_diverging_run_is_recorded_not_raised(waterbirds_root, tmp_path):
    record = train(tiny_run_config(waterbirds_root, lr=1e12, epochs=1), tmp_path / "run", progress=False)
    assert record["status"] == "diverged"
    assert read_json(tmp_path / "run" / RESULT)["status"] == "diverged"
    assert record["history"] == [] and record["best_epoch"] is None
    assert record["metrics"] == {k: None for k in METRIC_KEYS}


def test_linear_probe_run_records_its_stage(waterbirds_root, tmp_path):
    record = train(tiny_run_config(waterbirds_root, method="lp", lr=1.0), tmp_path / "run", progress=False)
    assert record["status"] == "ok" and len(record["history"]) == 1 and record["best_epoch"] == 0
    assert record["stage_info"]["lp_id_val"] == pytest.approx(record["metrics"]["id_val"])
    assert 1e-7 <= record["stage_info"]["lp_C"] <= 1e2


def test_lp_ft_fine_tuning_starts_from_the_probe_predictions(waterbirds_root, tmp_path):
    """The FT stage of LP-FT starts from the probe exactly: with a negligible learning rate
    (1e-12 times gradients of order 1e2 moves no float32 weight), the run's ID-val accuracy is the
    probe's own ID-val accuracy recorded by the LP stage."""
    record = train(tiny_run_config(waterbirds_root, method="lp_ft", lr=1e-12, epochs=1), tmp_path / "run", progress=False)
    assert record["status"] == "ok"
    assert record["metrics"]["id_val"] == pytest.approx(record["stage_info"]["lp_id_val"], abs=1e-12)


def test_bad_batch_split_is_a_clear_error(waterbirds_root, tmp_path):
    with pytest.raises(ValueError, match="divisible by grad_accum"):
        train(tiny_run_config(waterbirds_root, batch_size=5, grad_accum=2), tmp_path / "run", progress=False)


def test_data_root_may_hold_one_directory_per_dataset(tmp_path):
    from deepnet.run_inputs import resolve_data_root

    (tmp_path / "waterbirds").mkdir()
    assert resolve_data_root(str(tmp_path), "waterbirds") == str(tmp_path / "waterbirds")
    assert resolve_data_root(str(tmp_path), "fmow") == str(tmp_path)
    assert resolve_data_root(None, "fmow") is None


def test_worst_group_accuracy_from_counts():
    # index = group + 1; index 0 collects items without a group
    correct = torch.tensor([0.0, 9.0, 1.0, 5.0])
    total = torch.tensor([0.0, 10.0, 4.0, 5.0])
    m = metrics_from_counts(correct, total)
    assert m.acc == pytest.approx(15 / 19)
    assert m.group_acc == {0: 0.9, 1: 0.25, 2: 1.0} and m.worst_group_acc == 0.25
    assert m.metric("worst_group_acc") == 0.25 and m.metric("acc") == m.acc
    ungrouped = metrics_from_counts(torch.tensor([3.0]), torch.tensor([4.0]))
    assert ungrouped.worst_group_acc is None
    with pytest.raises(ValueError, match="no group labels"):
        ungrouped.metric("worst_group_acc")


def test_run_config_key_is_stable_and_ignores_execution_fields():
    a = RunConfig("clip_vit_b16", "living17", "sgd", 3e-4)
    assert a.key() == RunConfig("clip_vit_b16", "living17", "sgd", 0.0003, num_workers=8, device="cuda").key()
    assert a.key() != RunConfig("clip_vit_b16", "living17", "sgd", 1e-3).key()
    assert a.key() != RunConfig("clip_vit_b16", "living17", "sgd", 3e-4, seed=1).key()
    assert RunConfig("m", "d", "sgd", 1).key() == RunConfig("m", "d", "sgd", 1.0).key()
    assert RunConfig.from_dict(a.to_dict()) == a
    with pytest.raises(ValueError, match="unknown RunConfig fields"):
        RunConfig.from_dict({**a.to_dict(), "lr_typo": 1})
    with pytest.raises(ValueError, match="lr must be > 0"):
        RunConfig("m", "d", "sgd", 0.0)


def _append_many(path: str, worker: int) -> None:
    for i in range(25):
        append_jsonl(path, {"worker": worker, "i": i})


def test_concurrent_jsonl_appends_lose_nothing(tmp_path):
    path = str(tmp_path / "results.jsonl")
    procs = [mp.get_context("fork").Process(target=_append_many, args=(path, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert all(p.exitcode == 0 for p in procs)
    records = read_jsonl(path)
    assert sorted((r["worker"], r["i"]) for r in records) == [(w, i) for w in range(4) for i in range(25)]
    write_json(tmp_path / "r.json", {"a": 1})
    assert read_json(tmp_path / "r.json") == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "results.jsonl", "results.jsonl.lock"]
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\nnot json\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        read_jsonl(tmp_path / "bad.jsonl")
