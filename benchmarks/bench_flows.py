"""Benchmark: reduced-coordinate vs full-space FT gradient flow (theory.flows).

The reduced integrator evolves B(t) = B0 + C(t) Q^T (Q a basis of S = rowspace(X)), so its cost
does not grow with d; the full one integrates all k x d entries of B with X itself. One run prints,
per d: the problem's construction time (shared by both and not in their times: O(d (m + k)^2)
with structured Sigma, see benchmarks/bench_scale.py), the wall time of each
integrator (best of --repeats), their ratio, RHS evaluations and the largest disagreement of v(t), B(t) and L_ood(t) on
the time grid. The solvers' error norm is an RMS over the state, so the full integrator's k (d - m)
entries that never move dilute it: at large d it takes fewer steps than the reduced one.

    python benchmarks/bench_flows.py [--dims 200 1000 4000] [--k 5] [--n 40] [--m 20]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from theory.flows import simulate
from theory.problem import make_problem


def _best_time(fn, repeats: int):
    best, out = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", type=int, nargs="+", default=[200, 1000, 4000], help="input dimensions d")
    ap.add_argument("--k", type=int, default=5, help="feature dimension")
    ap.add_argument("--n", type=int, default=40, help="training points")
    ap.add_argument("--m", type=int, default=20, help="dimension of the training subspace S")
    ap.add_argument("--method", default="ft", choices=["ft", "lp_ft"])
    ap.add_argument("--n-times", type=int, default=200, help="time-grid points recorded")
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats (best is reported)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rtol", type=float, default=1e-10, help="solver rtol (atol = rtol / 100)")
    args = ap.parse_args()

    print(f"{args.method} flow, k={args.k} n={args.n} m={args.m}, {args.n_times} grid points, DOP853 "
          f"rtol {args.rtol:g} atol {args.rtol / 100:g}, no early stop (both integrators cover the same grid)")
    print(f"{'d':>6} {'problem s':>10} {'full s':>9} {'reduced s':>10} {'ratio':>8} {'nfev full/red':>14} "
          f"{'max|dv|':>9} {'max|dB|':>9} {'max|dLood|':>11}")
    for d in args.dims:
        t_make, p = _best_time(lambda: make_problem(d, args.k, args.n, m=args.m, eps=0.2, seed=args.seed), 1)
        kw = dict(n_times=args.n_times, rtol=args.rtol, atol=args.rtol / 100, stop_factor=None)
        t_full, full = _best_time(lambda: simulate(p, args.method, integrator="full", **kw), args.repeats)
        t_red, red = _best_time(lambda: simulate(p, args.method, **kw), args.repeats)
        dv = np.abs(red.v - full.v).max()
        dB = max(np.abs(red.features(i) - full.features(i)).max() for i in range(len(red.t)))
        dL = np.abs(red.ood_loss - full.ood_loss).max()
        print(f"{d:>6} {t_make:>10.3f} {t_full:>9.3f} {t_red:>10.4f} {t_full / t_red:>8.1f} {full.n_rhs:>7}/{red.n_rhs:<6} "
              f"{dv:>9.2e} {dB:>9.2e} {dL:>11.2e}")


if __name__ == "__main__":
    main()
