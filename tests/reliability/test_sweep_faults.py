"""Fault drill for sweeps: processes killed, launched twice, orphaned; corrupt state; bad input.

Faults about processes spawn real processes (``sweep_driver.py``); the others run in this process
with a contract-following fake trainer. See the README's Guarantees.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.io import read_jsonl, write_json
from deepnet.sweep import run_sweep
from deepnet.sweep.cli import main as sweep_main
from deepnet.run_files import LOCK, SWEEP_RESULTS
from deepnet.sweep.runner import run_dir_of
from tests.reliability.sweep_driver import configs, gated_train

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("sweep_driver.py")


def spawn(mode: str, root: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(DRIVER), mode, str(root)], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def started(root: Path) -> list[int]:
    """Pids of the trainers that have started, over all runs under ``root``."""
    return [int(p.name.split("-")[1]) for p in root.glob("*/started-*")]


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state != "Z"


def trained(root: Path, cfg) -> int:
    calls = run_dir_of(root, cfg) / "calls"
    return len(calls.read_text().split()) if calls.exists() else 0


def go(root: Path) -> None:
    (root / "GO").write_text("")


# ---------------------------------------------------------------- processes


def test_two_concurrent_sweeps_share_the_runs(tmp_path):
    first, second = spawn("share", tmp_path), spawn("share", tmp_path)
    try:
        # both processes are in a run at once (on the old code: the same run) before any run ends
        wait_for(lambda: len(set(started(tmp_path))) >= 2, "both sweeps to start a run")
        go(tmp_path)
        outputs = [p.communicate(timeout=60)[0] for p in (first, second)]
    finally:
        for p in (first, second):
            p.kill()
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    cfgs = configs(4)
    assert [trained(tmp_path, c) for c in cfgs] == [1, 1, 1, 1]
    assert len(read_jsonl(tmp_path / SWEEP_RESULTS)) == 4  # 4 records for 4 runs, not 8
    assert any("busy" in out for out in outputs)


def test_a_live_owner_keeps_its_run_and_a_killed_one_is_taken_over(tmp_path):
    holder = spawn("hold", tmp_path)
    (cfg,) = configs(1)
    run_dir = run_dir_of(tmp_path, cfg)
    try:
        wait_for(lambda: started(tmp_path), "the first sweep to start its run")
        go_now = tmp_path / "GO"
        assert not go_now.exists()
        report = run_sweep([cfg], tmp_path, train_fn=gated_train, progress=False)  # relaunch meanwhile
        (outcome,) = report.outcomes
        assert outcome.status == "busy" and f"{socket.gethostname()} {holder.pid}" in outcome.error
        assert trained(tmp_path, cfg) == 1
    finally:
        holder.send_signal(signal.SIGKILL)  # kill -9 mid-run
        holder.wait(timeout=30)
    assert (run_dir / LOCK).read_text().split() == [socket.gethostname(), str(holder.pid)]
    assert (run_dir / ".checkpoint.pt.killed.tmp").exists()
    go(tmp_path)
    with pytest.warns(UserWarning, match=f"took over the lock of {socket.gethostname()} {holder.pid}"):
        report = run_sweep([cfg], tmp_path, train_fn=gated_train, progress=False)
    assert [o.status for o in report.outcomes] == ["ok"]
    assert trained(tmp_path, cfg) == 2
    record = json.loads((run_dir / "result.json").read_text())
    assert record["resumed"] is True  # from the killed run's checkpoint
    assert (run_dir / LOCK).read_text() == ""
    assert len(read_jsonl(tmp_path / SWEEP_RESULTS)) == 1


def test_workers_die_with_their_killed_sweep(tmp_path):
    sweep = spawn("workers", tmp_path)
    try:
        wait_for(lambda: len(set(started(tmp_path))) == 2, "both workers to start their run")
        workers = set(started(tmp_path))
        assert sweep.pid not in workers
        sweep.send_signal(signal.SIGKILL)  # as the OOM killer does
        sweep.wait(timeout=30)
        wait_for(lambda: not any(alive(pid) for pid in workers), "the orphaned workers to die", timeout=15)
    finally:
        sweep.kill()
        go(tmp_path)  # releases any worker the test failed to see die
    assert not (tmp_path / SWEEP_RESULTS).exists()  # nothing finished: the runs are interrupted, not lost


# ---------------------------------------------------------------- corrupt state


def fake_train(cfg, run_dir, progress=True):
    with open(run_dir / "calls", "a") as f:
        f.write(f"{os.getpid()}\n")
    record = {"config": cfg.to_dict(), "status": "ok", "best_epoch": 0,
              "metrics": {"id_val": 0.5 + cfg.lr, "id_test": 0.5, "ood": {}, "ood_avg": None, "worst_group": None}}
    write_json(run_dir / "result.json", record)
    return record


def test_a_stale_temp_file_of_a_killed_writer_is_removed_when_its_run_starts(tmp_path):
    cfg, other = configs(2)
    for c in (cfg, other):
        run_dir_of(tmp_path, c).mkdir(parents=True)
    stale = run_dir_of(tmp_path, cfg) / ".checkpoint.pt.x1y2.tmp"
    stale.write_bytes(b"\0" * 1024)
    stale_append = tmp_path / f".{SWEEP_RESULTS}.k9.tmp"  # an appender killed mid-write
    stale_append.write_text("{")
    elsewhere = run_dir_of(tmp_path, other) / ".checkpoint.pt.live.tmp"  # another run's: not touched
    elsewhere.write_text("")
    run_sweep([cfg], tmp_path, train_fn=fake_train, progress=False)
    assert not stale.exists() and not stale_append.exists() and elsewhere.exists()


def test_a_truncated_result_is_named_set_aside_and_the_run_trains_again(tmp_path, capsys):
    cfgs = configs(3)
    run_sweep(cfgs, tmp_path, train_fn=fake_train, progress=False)
    bad = run_dir_of(tmp_path, cfgs[1]) / "result.json"
    bad.write_text(bad.read_text()[:40])  # truncated (disk full, a partial copy)

    assert sweep_main(["collect", str(tmp_path)]) == 0  # collect names it and goes on
    err = capsys.readouterr().err
    assert f"warning: {bad}: not valid JSON" in err
    assert sweep_main(["collect", str(tmp_path), "--strict"]) == 2
    assert str(bad) in capsys.readouterr().err

    with pytest.warns(UserWarning, match=f"{bad}: not valid JSON.*moved to result.json.corrupt"):
        report = run_sweep(cfgs, tmp_path, train_fn=fake_train, progress=False)
    assert report.done_before == 2 and [o.status for o in report.outcomes] == ["ok"]
    assert [trained(tmp_path, c) for c in cfgs] == [1, 2, 1]
    assert bad.with_name("result.json.corrupt").exists() and json.loads(bad.read_text())["config"]


def test_a_truncated_result_without_done_trains_again_instead_of_failing_forever(tmp_path):
    (cfg,) = configs(1)
    run_dir = run_dir_of(tmp_path, cfg)
    run_dir.mkdir(parents=True)
    (run_dir / "result.json").write_text('{"config": {"mod')
    with pytest.warns(UserWarning, match="not valid JSON"):
        report = run_sweep([cfg], tmp_path, train_fn=fake_train, progress=False)
    assert [o.status for o in report.outcomes] == ["ok"] and trained(tmp_path, cfg) == 1


def test_collect_skips_a_bad_jsonl_line_naming_it_and_is_strict_on_request(tmp_path, capsys):
    cfgs = configs(2)
    run_sweep(cfgs, tmp_path / "sweep", train_fn=fake_train, progress=False)
    lines = (tmp_path / "sweep" / SWEEP_RESULTS).read_text().splitlines()
    table = tmp_path / "all.jsonl"
    table.write_text("\n".join([lines[0], lines[1][:25], lines[1]]) + "\n")
    assert sweep_main(["collect", str(table)]) == 0
    captured = capsys.readouterr()
    assert f"skipped 1 malformed line(s): {table}:2" in captured.err
    assert captured.out.count("| small_vit |") == 1  # both runs: one cell
    assert sweep_main(["collect", str(table), "--strict"]) == 2
    assert f"{table}:2: not valid JSON" in capsys.readouterr().err


def test_collect_on_records_that_are_not_runs_says_so(tmp_path, capsys):
    (tmp_path / "claims.jsonl").write_text('{"claim": "C1", "ok": true}\n')
    assert sweep_main(["collect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not run records" in err and f"no run records (records with a 'config') in {tmp_path}" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------- files and exit codes


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_sweep_files_respect_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        (cfg,) = configs(1)
        run_sweep([cfg], tmp_path, train_fn=fake_train, progress=False)
    finally:
        os.umask(old)
    for path in (tmp_path / SWEEP_RESULTS, run_dir_of(tmp_path, cfg) / "config.json",
                 run_dir_of(tmp_path, cfg) / "result.json"):
        assert path.stat().st_mode & 0o777 == mode, path


SPEC = REPO / "experiments" / "specs" / "smoke.toml"


def test_sweep_usage_errors_exit_2_with_one_message_and_write_nothing(tmp_path, capsys):
    root = tmp_path / "root"
    assert sweep_main(["sweep", str(SPEC), "--root", str(root), "--max-runs", "-1"]) == 2
    assert "--max-runs must be >= 1, got -1" in capsys.readouterr().err
    afile = tmp_path / "afile"
    afile.write_text("")
    assert sweep_main(["sweep", str(SPEC), "--root", str(afile)]) == 2
    assert capsys.readouterr().err.strip() == f"error: --root {afile} exists and is not a directory"
    assert sweep_main(["sweep", str(SPEC), "--root", str(afile / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot create the sweep directory {afile / 'sub'}") and err.count("\n") == 1
    assert not root.exists()
