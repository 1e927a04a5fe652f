"""Cost of the two-stage deep-linear-net table and how it scales with width and depth.

Why: the claims C9-C12 run this table inside ``python -m theory verify``; this script prints what one
full table (pretrainers x fine-tune methods x lr grid x seeds) costs, measured in one run, and the
per-seed cost for a few widths and depths, so the claim budget (MAX_PROBLEMS) can be chosen.
Figures are wall-clock seconds on this machine; ratios are to the default shape in the same run.
Runs single-threaded BLAS unless OPENBLAS_NUM_THREADS is set.

    python benchmarks/bench_deep.py [--seeds 2] [--widths 32 64 128] [--depths 1 2 3]
"""
from __future__ import annotations

import argparse
import os
import time

# The matrices are tiny (<= 128 wide): BLAS threads only add spin-wait overhead, which on a shared
# 2-core machine made width 128 take 50 s per seed instead of 3 s with one thread. Set before
# numpy loads; an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from theory.deep_experiment import DeepConfig, config_with, run_table
from theory.deep_methods import ADAMW_LRS, DEEP_METHODS, PRETRAINERS, SGD_LRS


def _time_table(cfg: DeepConfig, seeds: int) -> float:
    start = time.perf_counter()
    run_table(cfg, list(range(seeds)))
    return (time.perf_counter() - start) / seeds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2, help="problems per measurement (default 2)")
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128], help="middle-layer widths to time")
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3], help="middle-layer counts L to time")
    args = parser.parse_args(argv)

    cfg = DeepConfig()
    runs = sum(len(m.lrs) for m in DEEP_METHODS.values() if m.optimizer is not None)
    print(f"one table = {len(PRETRAINERS)} pretrainers x {len(DEEP_METHODS)} methods per seed: {len(PRETRAINERS)} "
          f"pretraining runs + {len(PRETRAINERS) * runs} fine-tuning runs (lr grids of {len(SGD_LRS)} for SGD, "
          f"{len(ADAMW_LRS)} for AdamW)")
    base = _time_table(cfg, args.seeds)
    print(f"default {cfg.widths}, d={cfg.d}: {base:.2f} s per seed; a table of 8 seeds {8 * base:.1f} s")
    print(f"\n{'widths':>18} {'s/seed':>8} {'x default':>9}")
    for w in args.widths:
        t = _time_table(config_with(widths=(w,) * len(cfg.widths)), args.seeds)
        print(f"{str((w,) * len(cfg.widths)):>18} {t:8.2f} {t / base:9.2f}")
    print(f"\n{'depth L':>18} {'s/seed':>8} {'x default':>9}")
    for L in args.depths:
        t = _time_table(config_with(widths=(cfg.widths[0],) * L), args.seeds)
        print(f"{L:>18} {t:8.2f} {t / base:9.2f}")


if __name__ == "__main__":
    main()
