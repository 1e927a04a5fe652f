"""A sweep in its own process for the fault drill: ``python sweep_driver.py MODE ROOT``.

Its trainer follows the trainer contract of ``tests/deepnet/test_sweep.py``'s fake, but first
records its pid in ``started-<pid>`` in the run directory, leaves a checkpoint and a stale temporary
file (as a writer killed mid-write would), and waits until ``ROOT/GO`` exists before it finishes.
So a test knows when runs are under way, and decides when they may end (or kills them before).

MODE ``share``: four runs one after another (two such processes share them);
``workers``: two runs on two ``--cpu-workers`` processes; ``hold``: one run.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from common.io import write_json
from deepnet.config import RunConfig
from deepnet.sweep import launchers, run_sweep

WAIT_S = 60.0


def gated_train(cfg: RunConfig, run_dir: Path, progress: bool = True) -> dict:
    """Mark the start, leave a checkpoint and a temp file, wait for ``GO``, write the result."""
    resumed = (run_dir / "checkpoint.pt").exists()
    with open(run_dir / "calls", "a") as f:
        f.write(f"{os.getpid()}\n")
    (run_dir / "checkpoint.pt").write_text("epoch 1")
    (run_dir / ".checkpoint.pt.killed.tmp").write_text("half a checkpoint")
    (run_dir / f"started-{os.getpid()}").write_text("")
    deadline = time.time() + WAIT_S
    while not (run_dir.parent / "GO").exists() and time.time() < deadline:
        time.sleep(0.05)
    record = {"config": cfg.to_dict(), "status": "ok", "best_epoch": 0, "resumed": resumed, "pid": os.getpid(),
              "metrics": {"id_val": 0.5, "id_test": 0.5, "ood": {}, "ood_avg": None, "worst_group": None}}
    write_json(run_dir / "result.json", record)
    return record


def configs(n: int) -> list[RunConfig]:
    return [RunConfig(model="small_vit", dataset="digits", method="sgd", lr=0.1 * (i + 1)) for i in range(n)]


def main(mode: str, root: str) -> None:
    launchers.POLL_S = 0.1
    launchers.visible_gpus = lambda: []  # CPU workers even on a machine with GPUs
    n, workers = {"share": (4, 1), "workers": (2, 2), "hold": (1, 1)}[mode]
    report = run_sweep(configs(n), root, train_fn=gated_train, progress=False, cpu_workers=workers)
    print(report.summary())


if __name__ == "__main__":
    main(*sys.argv[1:])
