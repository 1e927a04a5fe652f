"""Benchmark: what a user of the theory simulator waits for, at the sizes of real models.

One run prints every figure of the scale targets:

1. end-to-end instance time (make_problem + LP + FT + LP-FT flows + the FT lower bound and the
   principal angle) and peak memory (the child process's max RSS, and above an idle child that
   only imported the simulator), for d in --dims, n = 200, k = 5, m = --m, identity and rank-10
   random Sigma; against the dense reference (dense X and Sigma, full-space integrator) where
   d <= --dense-max-d, with the largest relative disagreement of the final OOD losses.
   Target: d = 20,000 <= 1 s and <= 0.5 GB.
2. the stiff case: FT at d = 2,000, n = m = 200 (square, ill-conditioned in-S data), with the
   solver `simulate` chooses. Target <= 2 s.
3. `python -m theory verify` instances per second (--verify-instances, 2 workers), and the time
   that gives for --instances 1000. Target < 2 min.

Each configuration runs in a fresh process, so memory figures do not accumulate; times are wall
times of one run (the machine's load shows in them: compare runs on an idle machine).

    python benchmarks/bench_scale.py            # full run
    python benchmarks/bench_scale.py --quick    # seconds: small sizes, random Sigma, for the smoke test
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import subprocess
import sys
import time

TARGETS = {"end_to_end_d20000_s": 1.0, "end_to_end_d20000_gb": 0.5, "stiff_ft_s": 2.0, "verify_1000_s": 120.0}


def _instance(d: int, n: int, k: int, m: int, ood: str, dense: bool) -> dict:
    """One end-to-end instance; with dense, the reference: dense X and Sigma, full integrator."""
    from theory.flows import simulate
    from theory.problem import Problem, make_problem
    from theory.quantities import cos_max_angle, ft_lower_bound

    start = time.perf_counter()
    p = make_problem(d, k, n, m=m, eps=0.2, ood=ood, ood_rank=10 if ood == "random" else None, seed=0)
    integrator = "reduced"
    if dense:
        p = Problem(p.X, p.Y, p.B_star, p.v_star, p.B0, p.v0, p.Sigma.dense())
        integrator = "full"
    made = time.perf_counter() - start
    runs = {meth: simulate(p, meth, integrator=integrator) for meth in ("lp", "ft", "lp_ft")}
    bound, angle = ft_lower_bound(p), cos_max_angle(p.B0, p.S_basis)
    total = time.perf_counter() - start
    return dict(seconds=total, make_s=made, ood={meth: float(tr.ood_loss[-1]) for meth, tr in runs.items()},
                solver=runs["ft"].solver, converged=runs["ft"].stopped_at is not None, bound=bound, angle=angle)


def _stiff(d: int, n: int, k: int) -> dict:
    from theory.flow_scales import stiffness_index
    from theory.flows import simulate
    from theory.problem import make_problem

    p = make_problem(d, k, n, eps=0.2, seed=0)
    start = time.perf_counter()
    tr = simulate(p, "ft")
    return dict(seconds=time.perf_counter() - start, solver=tr.solver, n_rhs=tr.n_rhs,
                stiffness=stiffness_index(p, "ft"), converged=tr.stopped_at is not None,
                ood=float(tr.ood_loss[-1]))


def _idle() -> dict:
    import theory.flows  # noqa: F401  (the imports every configuration pays)
    return {}


def _child(queue: mp.Queue, fn, args) -> None:
    out = fn(*args)
    out["max_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    queue.put(out)


def _in_child(fn, *args) -> dict:
    """Run fn(*args) in a fresh process; its result with the process's peak RSS (GB)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, fn, args))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def _verify(instances: int, workers: int, claims: list[str] | None) -> dict:
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "theory", "verify", "--instances", str(instances), "--workers", str(workers)]
    res = subprocess.run(cmd + ([] if claims is None else ["--claims", *claims]), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if res.returncode not in (0, 1):
        raise RuntimeError(f"theory verify exited {res.returncode}: {res.stderr[-2000:]}")
    return dict(seconds=seconds, rc=res.returncode)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="small sizes and the random Sigma only (a smoke run of seconds)")
    ap.add_argument("--dims", type=int, nargs="+", default=None, help="d values (default 200 2000 20000 200000)")
    ap.add_argument("--m", type=int, default=50, help="dim S for the end-to-end instances (default 50)")
    ap.add_argument("--dense-max-d", type=int, default=2000, help="largest d for the dense reference")
    ap.add_argument("--verify-instances", type=int, default=100, help="instances for the verify rate")
    args = ap.parse_args(argv)
    n, k = (40, 3) if args.quick else (200, 5)
    dims = args.dims or ([60] if args.quick else [200, 2_000, 20_000, 200_000])
    m = min(args.m, n // 2) if args.quick else args.m
    stiff_d, stiff_n = (60, 12) if args.quick else (2_000, 200)
    verify_n, workers = (2, 1) if args.quick else (args.verify_instances, 2)
    oods = ("random",) if args.quick else ("identity", "random")

    idle = _in_child(_idle)["max_rss_gb"]
    print(f"1. end-to-end instance (make_problem + LP + FT + LP-FT + bound), n={n}, k={k}, m={m}, eps=0.2")
    print(f"   peak memory = child max RSS; 'above idle' subtracts an idle child ({idle:.3f} GB)")
    head = f"   {'d':>8} {'Sigma':<9} {'kind':<9} {'total s':>8} {'make s':>7} {'RSS GB':>7} {'above':>7} " \
           f"{'FT solver':<9} {'max rel diff vs dense':>22}"
    print(head)
    figures = {}
    for d in dims:
        for ood in oods:
            fast = _in_child(_instance, d, n, k, m, ood, False)
            diff = "-"
            rows = [("reduced", fast)]
            if d <= args.dense_max_d:
                ref = _in_child(_instance, d, n, k, m, ood, True)
                rows.append(("dense", ref))
                diff = f"{max(abs(fast['ood'][x] - ref['ood'][x]) / ref['ood'][x] for x in ref['ood']):.2e}"
            for kind, r in rows:
                print(f"   {d:>8} {ood:<9} {kind:<9} {r['seconds']:>8.3f} {r['make_s']:>7.3f} {r['max_rss_gb']:>7.3f} "
                      f"{r['max_rss_gb'] - idle:>7.3f} {r['solver']:<9} {diff if kind == 'dense' else '':>22}"
                      + ("" if r["converged"] else "  (FT not converged)"))
            if d == 20_000:
                figures[f"end_to_end_d20000_s[{ood}]"] = fast["seconds"]
                figures[f"end_to_end_d20000_gb[{ood}]"] = fast["max_rss_gb"]

    st = _in_child(_stiff, stiff_d, stiff_n, k)
    print(f"\n2. stiff FT: d={stiff_d}, n=m={stiff_n}, k={k}: {st['seconds']:.3f} s with {st['solver']} "
          f"(stiffness index {st['stiffness']:.3g}, {st['n_rhs']} RHS, converged {st['converged']}, "
          f"final OOD {st['ood']:.10g})")
    figures["stiff_ft_s"] = st["seconds"]

    claims = ["C1", "C5"] if args.quick else None
    v = _verify(verify_n, workers, claims)
    rate = verify_n / v["seconds"]
    print(f"\n3. python -m theory verify --instances {verify_n} --workers {workers}"
          f"{'' if claims is None else ' --claims ' + ' '.join(claims)}: {v['seconds']:.1f} s "
          f"(exit {v['rc']}), {rate:.2f} instances/s per claim set; --instances 1000 would take "
          f"~{1000 / rate:.0f} s (linear in instances; C9-C13's fixed cost makes this an upper estimate)")
    figures["verify_1000_s"] = 1000 / rate

    if args.quick:
        print("\n(--quick: small sizes, the targets apply to the full run)")
        return 0
    print("\ntargets:")
    for key, val in figures.items():
        target = TARGETS[key.split("[")[0]]
        print(f"   {key:<34} {val:>9.3f}  target <= {target:g}  {'met' if val <= target else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
