"""Sweep engine: spec validation and expansion, run dirs that resume, launchers, result collection.

The engine is exercised with a fake trainer that follows the trainer contract (writes result.json
into the run dir, resumes from checkpoint.pt) and can be told to crash mid-run or diverge.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
import submitit

from deepnet.config import RunConfig
from common.io import append_jsonl, read_jsonl, write_json
from deepnet.sweep import SpecError, load_spec, parse_spec, plan, run_sweep
from deepnet.sweep import launchers
from deepnet.sweep.cli import main as sweep_main
from deepnet.sweep.collect import interval90, load_records, paired_differences, select_best, summarize
from deepnet.sweep.tables import differences_to_markdown, to_csv, to_markdown
from deepnet.run_files import SWEEP_RESULTS
from deepnet.sweep.runner import adopt_records, run_dir_of, run_one

REPO = Path(__file__).resolve().parents[2]
CRASH_LR = 0.5      # the fake trainer writes a checkpoint then raises on its first attempt
DIVERGE_LR = 0.9    # the fake trainer reports a diverged run
EXIT_LR = 0.7       # the fake trainer kills its process (as the OOM killer would)
SLEEP_LR = 0.8      # the fake trainer writes its pid into the run dir, then sleeps for a minute

# Submitit's LocalExecutor unpickles jobs in a fresh process: ship this module's fakes by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def fake_train(cfg: RunConfig, run_dir: Path, progress: bool = True, record_threads: bool = False) -> dict:
    """Contract-following stand-in for deepnet.train.train; counts its calls in the run dir. It
    imports torch only to record the process's torch threads (``record_threads``), so a worker that
    sets no threads starts without torch."""
    calls = run_dir / "calls"
    calls.write_text(str(int(calls.read_text()) + 1 if calls.exists() else 1))
    checkpoint = run_dir / "checkpoint.pt"
    resumed = checkpoint.exists()
    checkpoint.write_text("epoch 1")
    if cfg.lr == EXIT_LR:
        os._exit(1)
    if cfg.lr == SLEEP_LR:
        (run_dir / "pid").write_text(str(os.getpid()))
        time.sleep(60)
    if cfg.lr == CRASH_LR and not resumed:
        raise RuntimeError("simulated crash mid-run")
    diverged = cfg.lr == DIVERGE_LR
    record = {
        "config": cfg.to_dict(),
        "status": "diverged" if diverged else "ok",
        "best_epoch": 0,
        "metrics": {"id_val": 0.1 if diverged else 0.5 + cfg.lr / 10, "id_test": 0.5, "ood": {"ood_test": 0.3},
                    "ood_avg": 0.3, "worst_group": None},
        "history": [],
        "resumed": resumed,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "pid": os.getpid(),
    }
    if record_threads:
        import torch

        record["torch_threads"] = torch.get_num_threads()
    write_json(run_dir / "result.json", record)
    return record


def threads_recording_train(cfg: RunConfig, run_dir: Path, progress: bool = True) -> dict:
    """:func:`fake_train` recording the process's torch threads."""
    return fake_train(cfg, run_dir, progress, record_threads=True)


def configs(lrs=(0.1, 0.2), seeds=(0,)) -> list[RunConfig]:
    return [RunConfig(model="small_vit", dataset="digits", method="sgd", lr=lr, seed=s) for lr in lrs for s in seeds]


def calls(root: Path, cfg: RunConfig) -> int:
    path = run_dir_of(root, cfg) / "calls"
    return int(path.read_text()) if path.exists() else 0


# ---------------------------------------------------------------- spec

SPEC = {"name": "t", "models": ["small_vit", "effnet_lite0"], "datasets": ["digits"],
        "methods": ["sgd", "adamw"], "seeds": [0, 1], "lr_grid": {"sgd": [1e-3, 1e-2, 1e-1], "adamw": [1e-5]}}


def test_smoke_spec_loads_and_expands():
    spec = load_spec(REPO / "experiments" / "specs" / "smoke.toml")
    cfgs = spec.expand()
    assert len(cfgs) == len(spec.models) * len(spec.datasets) * sum(len(spec.lrs(m)) for m in spec.methods) * len(spec.seeds)
    assert all(c.pretrained is False for c in cfgs)


def test_expansion_counts_and_order():
    cfgs = parse_spec(SPEC).expand()
    assert len(cfgs) == 2 * 1 * (3 + 1) * 2
    assert [(c.lr, c.seed) for c in cfgs[:2]] == [(1e-3, 0), (1e-3, 1)]
    assert {c.model for c in cfgs} == {"small_vit", "effnet_lite0"}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"colour": "red"}, "unknown keys \\['colour'\\]; known keys: .*'datasets'"),
        ({"models": ["no_such_net"]}, "unknown models \\['no_such_net'\\]; known models: .*clip_vit_b16"),
        ({"methods": ["sgd", "adam"]}, "unknown methods \\['adam'\\]; known methods: .*sgd_freeze_embed"),
        ({"datasets": ["imagenet"]}, "unknown datasets \\['imagenet'\\]; known datasets: .*waterbirds"),
        ({"models": []}, "must not be empty"),
        ({"lr_grid": {"lars": [1e-3]}}, "\\[lr_grid\\] has method 'lars' that the spec does not run"),
        ({"lr_grid": {"sgd": [0.0]}}, "finite numbers > 0"),
        ({"seeds": [0, 0]}, "duplicates"),
        ({"epochs": "ten"}, "'epochs' must be an integer, got 'ten'"),
        ({"run": {"lr": 1.0}}, "cannot set \\['lr'\\]; settable RunConfig fields: .*batch_size"),
        ({"run": {"batch_size": 0}}, "invalid run settings"),
    ],
)
def test_spec_errors_name_the_fix(change, message):
    with pytest.raises(SpecError, match=message):
        parse_spec({**SPEC, **change})


def test_missing_key_and_bad_toml(tmp_path):
    with pytest.raises(SpecError, match="missing required keys \\['methods'\\]"):
        parse_spec({k: v for k, v in SPEC.items() if k != "methods"})
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")


def test_keys_stable_and_distinct():
    first, second = parse_spec(SPEC).expand(), parse_spec(SPEC).expand()
    assert [c.key() for c in first] == [c.key() for c in second]
    assert len({c.key() for c in first}) == len(first)
    changed = parse_spec(SPEC).expand({"batch_size": 8})
    assert not {c.key() for c in changed} & {c.key() for c in first}
    # execution-only settings leave the run dirs (and so resuming) unchanged
    moved = parse_spec(SPEC).expand({"num_workers": 0, "device": "cpu"})
    assert [c.key() for c in moved] == [c.key() for c in first]
    with pytest.raises(SpecError, match="cannot set \\['colour'\\]"):
        parse_spec(SPEC).expand({"colour": 1})


# ---------------------------------------------------------------- runner


def test_resume_skip_and_retry(tmp_path):
    cfgs = configs(lrs=(0.1, CRASH_LR, 0.2))
    first = run_sweep(cfgs, tmp_path, train_fn=fake_train, progress=False)
    assert [o.status for o in first.outcomes] == ["ok", "failed", "ok"]
    assert "simulated crash" in first.failed[0].error
    assert (run_dir_of(tmp_path, cfgs[1]) / "error.txt").exists()
    assert dict((c.lr, s) for c, s in plan(cfgs, tmp_path)) == {0.1: "done", CRASH_LR: "failed", 0.2: "done"}

    second = run_sweep(cfgs, tmp_path, train_fn=fake_train, progress=False)
    assert second.done_before == 2 and [o.status for o in second.outcomes] == ["ok"]
    assert [calls(tmp_path, c) for c in cfgs] == [1, 2, 1]  # finished runs were not trained again
    crashed = json.loads((run_dir_of(tmp_path, cfgs[1]) / "result.json").read_text())
    assert crashed["resumed"] is True  # the second attempt started from the checkpoint
    assert not (run_dir_of(tmp_path, cfgs[1]) / "error.txt").exists()

    third = run_sweep(cfgs, tmp_path, train_fn=fake_train, progress=False)
    assert third.done_before == 3 and third.outcomes == []
    records = read_jsonl(tmp_path / SWEEP_RESULTS)
    assert sorted(r["config"]["lr"] for r in records) == sorted(c.lr for c in cfgs)
    # the run dirs are the source of truth: a line lost from results.jsonl is still collected
    (tmp_path / SWEEP_RESULTS).write_text("")
    assert sorted(r["config"]["lr"] for r in load_records(tmp_path)) == sorted(c.lr for c in cfgs)


def test_finished_bookkeeping_after_crash_between_result_and_done(tmp_path):
    cfg = configs(lrs=(0.1,))[0]
    run_dir = run_dir_of(tmp_path, cfg)
    run_dir.mkdir(parents=True)
    fake_train(cfg, run_dir)  # result.json written, then the process "died" before `done`
    assert plan([cfg], tmp_path)[0][1] == "interrupted"
    report = run_sweep([cfg], tmp_path, train_fn=fake_train, progress=False)
    assert report.outcomes[0].status == "ok" and calls(tmp_path, cfg) == 1
    assert len(read_jsonl(tmp_path / SWEEP_RESULTS)) == 1


def test_adopted_records_rebuild_a_lost_sweep_and_only_the_rest_trains(tmp_path):
    cfgs = configs(lrs=(0.1, 0.2, 0.3))
    run_sweep(cfgs[:2], tmp_path / "lost", train_fn=fake_train, progress=False)
    records = read_jsonl(tmp_path / "lost" / SWEEP_RESULTS)
    foreign = {**records[0], "config": {**records[0]["config"], "seed": 99}}  # no run of this sweep
    root = tmp_path / "rebuilt"
    assert adopt_records(cfgs, root, [*records, *records, foreign], dry_run=True) == (2, 1)
    assert not root.exists()
    newer = {**records[0], "note": "newer copy"}  # a config recorded twice: the last record is adopted
    assert adopt_records(cfgs, root, [*records, foreign, newer]) == (2, 1)
    assert json.loads((run_dir_of(root, cfgs[0]) / "result.json").read_text())["note"] == "newer copy"
    assert len(read_jsonl(root / SWEEP_RESULTS)) == 2
    assert [state for _, state in plan(cfgs, root)] == ["done", "done", "new"]
    assert adopt_records(cfgs, root, records) == (0, 0)  # already done: nothing twice
    report = run_sweep(cfgs, root, train_fn=fake_train, progress=False)
    assert report.done_before == 2 and [o.status for o in report.outcomes] == ["ok"]
    assert [calls(root, c) for c in cfgs] == [0, 0, 1]
    assert sorted(r["config"]["lr"] for r in read_jsonl(root / SWEEP_RESULTS)) == [0.1, 0.2, 0.3]
    lr_of = lambda record: record["config"]["lr"]  # noqa: E731
    assert sorted(load_records(root), key=lr_of) == sorted(load_records(root / SWEEP_RESULTS), key=lr_of)


def test_secondary_process_trains_but_keeps_no_books(tmp_path):
    ok, crash = configs(lrs=(0.1, CRASH_LR))
    for cfg in (ok, crash):
        run_dir_of(tmp_path, cfg).mkdir(parents=True)
    assert run_one(ok, tmp_path, fake_train, main_process=False).status == "secondary"
    assert run_one(crash, tmp_path, fake_train, main_process=False).status == "failed"
    assert calls(tmp_path, ok) == 1 and calls(tmp_path, crash) == 1
    assert not (tmp_path / SWEEP_RESULTS).exists()
    assert not any((run_dir_of(tmp_path, c) / name).exists() for c in (ok, crash) for name in ("done", "error.txt"))


def test_diverged_run_is_recorded_and_sweep_goes_on(tmp_path):
    cfgs = configs(lrs=(DIVERGE_LR, 0.1))
    report = run_sweep(cfgs, tmp_path, train_fn=fake_train, progress=False)
    assert [o.status for o in report.outcomes] == ["diverged", "ok"]
    assert (run_dir_of(tmp_path, cfgs[0]) / "done").exists()
    statuses = {r["config"]["lr"]: r["status"] for r in read_jsonl(tmp_path / SWEEP_RESULTS)}
    assert statuses == {DIVERGE_LR: "diverged", 0.1: "ok"}
    assert "1 diverged" in report.summary()


def test_max_runs_and_unknown_launcher(tmp_path):
    cfgs = configs(lrs=(0.1, 0.2, 0.3))
    report = run_sweep(cfgs, tmp_path, train_fn=fake_train, progress=False, max_runs=2)
    assert len(report.outcomes) == 2 and [s for _, s in plan(cfgs, tmp_path)].count("new") == 1
    with pytest.raises(KeyError, match="known: local, slurm"):
        run_sweep(cfgs, tmp_path, launcher="kubernetes")


# ---------------------------------------------------------------- launchers (submitit)


def test_slurm_launcher_debug_executor(tmp_path):
    cfgs = configs(lrs=(0.1, DIVERGE_LR))
    report = run_sweep(cfgs, tmp_path, launcher="slurm", train_fn=fake_train, progress=False,
                       cluster="debug", slurm_partition="ignored-off-slurm")
    assert sorted(o.status for o in report.outcomes) == ["diverged", "ok"]
    assert len(read_jsonl(tmp_path / SWEEP_RESULTS)) == 2


def test_slurm_launcher_local_executor_then_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(launchers, "POLL_S", 0.2)
    cfgs = configs(lrs=(0.1, CRASH_LR))
    first = run_sweep(cfgs, tmp_path, launcher="slurm", train_fn=fake_train, progress=False,
                      cluster="local", timeout_min=5)  # real subprocesses, as on a cluster node
    assert sorted(o.status for o in first.outcomes) == ["failed", "ok"]
    second = run_sweep(cfgs, tmp_path, launcher="slurm", train_fn=fake_train, progress=False, cluster="debug")
    assert second.done_before == 1 and [o.status for o in second.outcomes] == ["ok"]
    assert [calls(tmp_path, c) for c in cfgs] == [1, 2]


def test_local_launcher_pins_one_gpu_per_job(tmp_path, monkeypatch):
    monkeypatch.setattr(launchers, "POLL_S", 0.2)
    # submitit waits 15 s for the result file of a job that died; 1 s is plenty here
    monkeypatch.setattr(submitit.local.local.LocalJob, "_results_timeout_s", 1)
    cfgs = configs(lrs=(0.1, EXIT_LR, 0.3))
    report = run_sweep(cfgs, tmp_path, train_fn=fake_train, progress=False, gpus=[3, 5])
    pinned = {r["config"]["lr"]: r["cuda_visible_devices"] for r in read_jsonl(tmp_path / SWEEP_RESULTS)}
    assert pinned == {0.1: "3", 0.3: "3"}  # round-robin shares, one device per job
    # the job on GPU 5 died with its only run: reported failed, the other job finished its share
    assert sorted(o.status for o in report.outcomes) == ["failed", "ok", "ok"]
    assert "worker died" in report.failed[0].error and report.failed[0].key == cfgs[1].key()


def test_local_launcher_cpu_workers_share_runs_with_split_threads(tmp_path, monkeypatch):
    monkeypatch.setattr(launchers, "POLL_S", 0.2)
    monkeypatch.setattr(launchers, "visible_gpus", lambda: [])
    cfgs = configs(lrs=(0.1, 0.2, 0.3))
    report = run_sweep(cfgs, tmp_path, train_fn=threads_recording_train, progress=False, cpu_workers=2)
    assert [o.status for o in report.outcomes] == ["ok", "ok", "ok"]
    records = {r["config"]["lr"]: r for r in read_jsonl(tmp_path / SWEEP_RESULTS)}
    assert records[0.1]["pid"] == records[0.3]["pid"] != records[0.2]["pid"] != os.getpid()
    assert {r["torch_threads"] for r in records.values()} == {max(1, (os.cpu_count() or 1) // 2)}
    with pytest.raises(ValueError, match="cpu_workers"):
        run_sweep(configs(lrs=(0.4,)), tmp_path, train_fn=fake_train, cpu_workers=0)


def test_interrupted_local_sweep_stops_its_workers(tmp_path, monkeypatch):
    def interrupt_once_started(jobs, cfgs, root, progress):
        pid_file = run_dir_of(root, cfgs[0]) / "pid"
        while not pid_file.exists():
            time.sleep(0.1)
        raise KeyboardInterrupt

    monkeypatch.setattr(launchers, "_follow", interrupt_once_started)
    cfgs = configs(lrs=(SLEEP_LR, SLEEP_LR + 0.01))
    # two workers pinned to GPUs 0 and 1 (the fake uses none): the interrupt takes the path of CPU
    # workers, and a worker without threads to set starts without importing torch
    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfgs, tmp_path, train_fn=fake_train, progress=False, gpus=[0, 1])
    pid = int((run_dir_of(tmp_path, cfgs[0]) / "pid").read_text())
    for _ in range(100):  # the worker gets SIGINT; it must be gone well before its 60 s sleep ends
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"worker {pid} still runs 10 s after the sweep was interrupted")


# ---------------------------------------------------------------- collect


def record(lr: float, seed: int, id_val: float, ood: float, id_test: float = 0.9, status: str = "ok",
           method: str = "sgd") -> dict:
    cfg = RunConfig(model="small_vit", dataset="digits", method=method, lr=lr, seed=seed)
    return {"config": cfg.to_dict(), "status": status, "best_epoch": 0,
            "metrics": {"id_val": id_val, "id_test": id_test, "ood": {"ood_test": ood}, "ood_avg": ood,
                        "worst_group": None}}


def hand_made_results(path: Path) -> None:
    # lr 1e-3 is best on ID val for every seed; lr 1e-2 has the better OOD numbers (must not be chosen)
    for seed, (ood_a, ood_b) in enumerate([(0.80, 0.95), (0.82, 0.96), (0.84, 0.97)]):
        append_jsonl(path, record(1e-3, seed, id_val=0.90, ood=ood_a, id_test=0.88 + 0.01 * seed))
        append_jsonl(path, record(1e-2, seed, id_val=0.85, ood=ood_b))
    append_jsonl(path, record(1e-1, 0, id_val=0.99, ood=0.1, status="diverged", method="adamw"))


def test_collect_best_lr_on_id_val_and_interval(tmp_path):
    hand_made_results(tmp_path / "results.jsonl")
    rows = {r["method"]: r for r in summarize(select_best(load_records(tmp_path)))}
    sgd = rows["sgd"]
    assert sgd["lr"] == "0.001" and sgd["n_seeds"] == 3 and sgd["n_lrs"] == 2
    # OOD of the ID-val choice: values 0.80, 0.82, 0.84 -> mean 0.82, s = 0.02,
    # half-width = t_{0.95,2} * s / sqrt(3) with t_{0.95,2} = 2.919986 (Student-t table)
    assert sgd["ood/ood_test_mean"] == pytest.approx(0.82, abs=1e-12)
    assert sgd["ood/ood_test_ci90"] == pytest.approx(2.919986 * 0.02 / math.sqrt(3), rel=1e-6)
    assert sgd["id_test_mean"] == pytest.approx(0.89, abs=1e-12)
    assert sgd["worst_group_mean"] is None
    adamw = rows["adamw"]  # a single (diverged) run: reported, no interval
    assert adamw["n_diverged"] == 1 and adamw["ood_avg_mean"] == pytest.approx(0.1) and adamw["ood_avg_ci90"] is None
    markdown = to_markdown(list(rows.values()))
    assert "82.0 ± 3.4" in markdown and "worst_group" not in markdown
    assert to_csv(list(rows.values())).splitlines()[0].startswith("model,dataset,method,n_seeds,n_lrs")


def test_collect_selection_modes_and_duplicates(tmp_path):
    path = tmp_path / "r.jsonl"
    # per seed: seed 0 prefers lr 1e-3, seed 1 prefers 1e-2; mean ID val prefers 1e-2 (0.87 vs 0.86)
    for rec in (record(1e-3, 0, 0.90, 0.5), record(1e-2, 0, 0.89, 0.6),
                record(1e-3, 1, 0.82, 0.5), record(1e-2, 1, 0.85, 0.6)):
        append_jsonl(path, rec)
    append_jsonl(path, record(1e-3, 0, 0.90, 0.5))  # the same run recorded twice counts once
    records = load_records(path)
    assert len(records) == 4
    per_seed = summarize(select_best(records, "per_seed"))[0]
    assert per_seed["lr"] == "0.001 0.01" and per_seed["ood_avg_mean"] == pytest.approx(0.55)
    by_mean = summarize(select_best(records, "mean"))[0]
    assert by_mean["lr"] == "0.01" and by_mean["ood_avg_mean"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="known: per_seed, mean"):
        select_best(records, "oracle")


def test_paired_differences_pair_by_seed(tmp_path):
    hand_made_results(tmp_path / "results.jsonl")
    for seed, ood in enumerate([0.85, 0.87, 0.89]):  # 5 points above sgd's chosen run in every seed
        append_jsonl(tmp_path / "results.jsonl", record(1e-3, seed, id_val=0.9, ood=ood, method="sgd_freeze_embed"))
    cells = select_best(load_records(tmp_path))
    (row,) = paired_differences(cells, [("sgd_freeze_embed", "sgd"), ("adamw", "sgd")], "ood_avg")
    assert (row["model"], row["dataset"]) == ("small_vit", "digits")
    assert row["sgd_freeze_embed-sgd_mean"] == pytest.approx(0.05) and row["sgd_freeze_embed-sgd_n"] == 3
    assert row["sgd_freeze_embed-sgd_ci90"] == pytest.approx(0.0, abs=1e-12)  # unpaired: ± 3.4 each
    assert row["adamw-sgd_n"] == 1 and row["adamw-sgd_ci90"] is None  # adamw ran seed 0 only
    assert "| +5.0 ± 0.0 (3) | -70.0 (1) |" in differences_to_markdown([row])


def test_interval_single_value_and_empty():
    assert interval90([0.5]) == (0.5, None)
    with pytest.raises(ValueError):
        interval90([])


# ---------------------------------------------------------------- CLI


def test_cli_dry_run_collect_and_errors(tmp_path, capsys):
    spec = REPO / "experiments" / "specs" / "smoke.toml"
    assert sweep_main(["sweep", str(spec), "--root", str(tmp_path), "--dry-run", "--set", "batch_size=4"]) == 0
    out = capsys.readouterr().out
    assert "4 runs under" in out and "4 new" in out
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nmodels = ["nope"]\ndatasets = ["digits"]\nmethods = ["sgd"]\n')
    assert sweep_main(["sweep", str(bad)]) == 2
    assert "unknown models ['nope']" in capsys.readouterr().err

    hand_made_results(tmp_path / "results.jsonl")
    assert sweep_main(["collect", str(tmp_path), "--out", str(tmp_path / "table.csv")]) == 0
    assert (tmp_path / "table.csv").read_text().startswith("model,dataset,method")
    assert sweep_main(["collect", str(tmp_path)]) == 0
    assert "| model | dataset | method |" in capsys.readouterr().out
    assert sweep_main(["collect", str(tmp_path / "nowhere")]) == 2

    # the pivot: a column per method, in the order asked for; the interval is the one of the table
    assert sweep_main(["collect", str(tmp_path), "--pivot", "ood_avg", "--methods", "sgd", "adamw"]) == 0
    header, rule, row = capsys.readouterr().out.splitlines()
    assert header == "| model | dataset | sgd | adamw |"
    assert row == f"| small_vit | digits | {82.0:.1f} ± {100 * interval90([0.80, 0.82, 0.84])[1]:.1f} | 10.0 |"
    assert sweep_main(["collect", str(tmp_path), "--pivot", "nope"]) == 2
    assert "no metric 'nope'" in capsys.readouterr().err
    assert sweep_main(["collect", str(tmp_path), "--diff", "adamw-sgd"]) == 0
    assert "| small_vit | digits | -70.0 (1) |" in capsys.readouterr().out
    assert sweep_main(["collect", str(tmp_path), "--diff", "foo-sgd"]) == 2


def test_cli_several_specs_make_one_sweep(tmp_path, capsys):
    specs = []
    for name, method in (("one", "sgd"), ("two", "adamw")):
        specs.append(tmp_path / f"{name}.toml")
        specs[-1].write_text(f'name = "{name}"\nmodels = ["small_vit"]\ndatasets = ["digits"]\n'
                             f'methods = ["{method}"]\n[lr_grid]\n{method} = [0.1]\n')
    args = ["sweep", *map(str, specs), "--dry-run"]
    assert sweep_main(args) == 2 and "need --root" in capsys.readouterr().err
    assert sweep_main([*args, "--root", str(tmp_path / "both")]) == 0
    assert "2 runs under" in capsys.readouterr().out
    assert sweep_main(["sweep", str(specs[0]), "--cpu-workers", "0"]) == 2


def test_cli_adopt_then_sweep(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("deepnet.sweep.runner.default_train_fn", lambda: fake_train)
    spec = tmp_path / "two.toml"
    spec.write_text('name = "two"\nmodels = ["small_vit"]\ndatasets = ["digits"]\nmethods = ["sgd"]\n'
                    "[lr_grid]\nsgd = [0.1, 0.2]\n")
    first = ["sweep", str(spec), "--root", str(tmp_path / "a"), "--no-progress", "--max-runs", "1"]
    assert sweep_main(first) == 0
    adopt = ["sweep", str(spec), "--root", str(tmp_path / "b"), "--no-progress",
             "--adopt", str(tmp_path / "a" / SWEEP_RESULTS)]
    assert sweep_main([*adopt, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would adopt 1 recorded runs" in out and "0 done, 0 interrupted, 0 failed, 2 new" in out
    assert sweep_main(adopt) == 0
    out = capsys.readouterr().out
    assert "adopted 1 recorded runs" in out and "1 done before this launch, 1 ok" in out
    assert sweep_main(["sweep", str(spec), "--adopt", str(tmp_path / "missing.jsonl")]) == 2
    assert "error: --adopt" in capsys.readouterr().err


# ---------------------------------------------------------------- end to end, real trainer


def test_real_trainer_two_run_sweep_then_relaunch_skips(tmp_path):
    from deepnet.data.fixtures import make_fixture

    data_root = make_fixture("waterbirds", tmp_path / "data", n_per_class=2, image_size=16)
    spec = parse_spec({"name": "e2e", "models": ["small_vit"], "datasets": ["waterbirds"], "methods": ["sgd"],
                       "epochs": 1, "lr_grid": {"sgd": [1e-3, 1e-2]},
                       "run": {"pretrained": False, "batch_size": 4, "max_train_steps": 2, "num_workers": 0,
                               "device": "cpu", "data_root": str(data_root)}})
    root = tmp_path / "sweep"
    first = run_sweep(spec.expand(), root, progress=False)
    assert [o.status for o in first.outcomes] == ["ok", "ok"], first.summary()
    records = read_jsonl(root / SWEEP_RESULTS)
    assert len(records) == 2 and all(0.0 <= r["metrics"]["id_val"] <= 1.0 for r in records)
    again = run_sweep(spec.expand(), root, progress=False)
    assert again.done_before == 2 and again.outcomes == []
    assert len(read_jsonl(root / SWEEP_RESULTS)) == 2
    (row,) = summarize(select_best(load_records(root)))
    assert row["n_lrs"] == 2 and row["n_seeds"] == 1 and row["worst_group_mean"] is not None


def test_cli_takes_launchers_and_their_options_from_the_registry(tmp_path, monkeypatch):
    seen = {}

    def record(cfgs, root, train_fn=None, progress=True, **options):
        seen.update(options, runs=len(cfgs))
        return []

    entry = launchers.LauncherEntry(record, "records its options", lambda args, slurm: {"slurm": slurm, "gpus": args.gpus})
    monkeypatch.setitem(launchers.LAUNCHERS._items, "recorder", entry)
    spec = tmp_path / "tiny.toml"
    spec.write_text('name = "tiny"\nmodels = ["small_vit"]\ndatasets = ["digits"]\nmethods = ["sgd"]\n'
                    '[lr_grid]\nsgd = [0.1]\n[slurm]\nslurm_partition = "gpu"\n')
    args = ["sweep", str(spec), "--root", str(tmp_path / "sweep"), "--launcher", "recorder", "--gpus", "0", "1",
            "--slurm", "timeout_min=5"]
    assert sweep_main(args) == 0
    assert seen == {"slurm": {"slurm_partition": "gpu", "timeout_min": 5}, "gpus": [0, 1], "runs": 1}
    parsed = argparse.Namespace(cpu_workers=2, threads=None, gpus=[0, 1], no_wait=True, cluster="debug")
    assert launchers.LAUNCHERS["local"].options(parsed, {"x": 1}) == {"cpu_workers": 2, "threads": None, "gpus": [0, 1]}
    assert launchers.LAUNCHERS["slurm"].options(parsed, {"x": 1}) == {"x": 1, "wait": False, "cluster": "debug"}


def test_cli_sweep_runs_resumes_and_reports_failures(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("deepnet.sweep.runner.default_train_fn", lambda: fake_train)
    spec = tmp_path / "crashy.toml"
    spec.write_text('name = "crashy"\nmodels = ["small_vit"]\ndatasets = ["digits"]\nmethods = ["sgd"]\n'
                    f"[lr_grid]\nsgd = [0.1, {CRASH_LR}]\n")
    args = ["sweep", str(spec), "--root", str(tmp_path / "sweep"), "--no-progress", "--no-pretrained"]
    assert sweep_main(args) == 1  # one run crashed
    out = capsys.readouterr().out
    assert "1 ok, 1 failed" in out and "simulated crash" in out
    assert sweep_main(args) == 0  # the relaunch resumes the crashed run
    assert "1 done before this launch, 1 ok" in capsys.readouterr().out
    records = read_jsonl(tmp_path / "sweep" / SWEEP_RESULTS)
    assert [r["config"]["pretrained"] for r in records] == [False, False]
