"""Sweep throughput on a CPU-only machine: one process with all cores vs ``--cpu-workers N``.

Why: the offline method table is hundreds of short runs of small models, which might use one core
each better than several cores together; this script measures how many runs per minute each launch
mode finishes, in one run of the script, on identical configs (the same run under different seeds),
so the README's advice for ``--cpu-workers`` rests on a figure. Worker start-up (a fresh Python with
torch per worker) is included, as a user pays it. Needs the offline data of the chosen dataset.

    python benchmarks/bench_cpu_workers.py [--runs 4] [--workers 2] [--model small_resnet_fmnist_sgd]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from deepnet.config import RunConfig
from deepnet.sweep import run_sweep


def _configs(args: argparse.Namespace, seeds: range, max_steps: int) -> list[RunConfig]:
    return [
        RunConfig(model=args.model, dataset=args.dataset, method=args.method, lr=args.lr, seed=seed, epochs=1,
                  batch_size=64, image_size=28, max_train_steps=max_steps, num_workers=0, device="cpu")
        for seed in seeds
    ]


def _timed_launch(cfgs: list[RunConfig], root: Path, workers: int) -> float:
    start = time.perf_counter()
    report = run_sweep(cfgs, root, progress=False, cpu_workers=workers)
    seconds = time.perf_counter() - start
    if report.failed or report.count("ok") + report.count("diverged") != len(cfgs):
        raise RuntimeError(f"benchmark runs did not all finish:\n{report.summary()}")
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=4, help="runs per launch mode (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="N of --cpu-workers (default 2)")
    parser.add_argument("--model", default="small_resnet_fmnist_sgd")
    parser.add_argument("--dataset", default="spurious_fmnist")
    parser.add_argument("--method", default="sgd")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps per run (default 100, as the table)")
    args = parser.parse_args(argv)

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        _timed_launch(_configs(args, range(1), 1), Path(tmp) / "warmup", 1)  # data and weights in the file cache
        sequential = _timed_launch(_configs(args, range(args.runs), args.steps), Path(tmp) / "sequential", 1)
        parallel = _timed_launch(_configs(args, range(args.runs), args.steps), Path(tmp) / "workers", args.workers)
    print(f"{args.runs} runs of {args.model} / {args.dataset} / {args.method}, {args.steps} steps each, {cores} cores")
    for label, seconds in ((f"1 process, {cores} threads", sequential),
                           (f"{args.workers} workers, {max(1, cores // args.workers)} thread(s) each", parallel)):
        print(f"  {label:28s} {seconds:7.1f} s  {60 * args.runs / seconds:6.1f} runs/min")
    print(f"  ratio (workers / 1 process, runs per minute): {sequential / parallel:.2f}x")


if __name__ == "__main__":
    main()
