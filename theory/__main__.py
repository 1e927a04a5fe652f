"""Command line of the theory simulator: `python -m theory verify | search`.

Tools:
  verify   run every registered claim check (C1-C8 from theory.claims, C9-C12 from
           theory.deep_claims, C13 from theory.optimizer_memory) on random problems; one row per claim.
  search   adversarial search (differential evolution) for a claim's worst instance, against
           random sampling with the same budget (theory.search).
Tools of their own:
  python -m theory.deep_experiment   the deep-linear-net table behind C9-C12 (pretrain x fine-tune)
  python -m theory.deep              drift of the exact invariants of deep linear nets along
                                     gradient flow and GD
  python benchmarks/bench_scale.py   time and memory at real-model sizes

Exit status: 0 done; 1 only when a statement the paper proves fails (C1, C2, C6 with perfect
features: numbers["proven_violations"] > 0); 2 a usage error, found before any computing (bad
numbers, unknown claims, a --json path that cannot be written); 3 an internal error while computing.
"""
from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable

from tqdm import tqdm

from common.helpformat import add_command, command_parser
from common.io import write_json
from common.shutdown import freeze_at_exit
from theory.search import OBJECTIVES, search
from theory.search import add_parser as add_search_parser
from theory.verdict import CLAIM_CHECKS, ClaimResult, load_claim_checks


def _claim_key(claim: str) -> tuple[int, str]:
    digits = "".join(ch for ch in claim if ch.isdigit())
    return (int(digits) if digits else 10 ** 6, claim)


def _fmt(x: object) -> str:
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)


def format_table(results: list[ClaimResult]) -> str:
    """One row per claim: claim, instances, violations, worst margin, verdict, numbers."""
    head = f"{'claim':<6}{'inst':>6}{'viol':>6}{'worst margin':>14}  {'verdict':<8} numbers"
    lines = [head, "-" * len(head)]
    for r in results:
        nums = ", ".join(f"{k}={_fmt(v)}" for k, v in r.numbers.items())
        margin = "-" if r.worst_margin is None else f"{r.worst_margin:.3g}"
        lines.append(f"{r.claim:<6}{r.instances:>6}{r.violations:>6}{margin:>14}  {r.verdict:<8} {nums}")
        if r.detail:
            lines.append(f"{'':<40}{r.detail}")
    return "\n".join(lines)



def run_claims(claims: list[str], instances: int, seed: int, workers: int) -> list[ClaimResult]:
    """Run the checks; checks that take `map_fn` spread their instances over a process pool."""
    parallel = [c for c in claims if "map_fn" in inspect.signature(CLAIM_CHECKS[c]).parameters]
    bar = tqdm(total=len(parallel) * instances + len(claims) - len(parallel), desc="claims", unit="inst",
               file=sys.stderr)
    results = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        def map_fn(fn: Callable[[int], dict], items: Iterable[int]) -> Iterable[dict]:
            items = list(items)
            for out in pool.map(fn, items, chunksize=max(1, len(items) // (8 * workers))):
                bar.update(1)
                yield out

        for claim in claims:
            bar.set_postfix_str(claim)
            check = CLAIM_CHECKS[claim]
            if claim in parallel:
                results.append(check(instances, seed, map_fn=map_fn))
            else:
                results.append(check(instances, seed))
                bar.update(1)
    bar.close()
    return results


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m theory`` parser: subcommands ``verify`` and ``search``."""
    p = command_parser("python -m theory", __doc__, ["python -m theory verify --instances 20 --claims C1 C2",
                                                     "python -m theory search C6 --budget 100",
                                                     "python -m theory COMMAND --help"])
    sub = p.add_subparsers(dest="command", required=True)
    v = add_command(sub, "verify", help="run the claim checks and print a verdict table",
                    description="Run claim checks on random linear-network problems. Each claim draws "
                                "`--instances` problems reproducibly from `--seed`; the table lists "
                                "violations, the worst margin (negative = violated) and the numbers "
                                "behind each verdict (pass / fail / vacuous / missing). Exit status 1 "
                                "only when a proven statement fails (C1, C2, C6 with perfect features); "
                                "2 on a usage error, before computing; 3 on an internal error.",
                    examples=["python -m theory verify",
                              "python -m theory verify --instances 200 --claims C1 C2 C6 --json verify.json"])
    v.add_argument("--instances", type=int, default=200, help="random problems per claim")
    v.add_argument("--seed", type=int, default=0, help="master seed")
    v.add_argument("--claims", nargs="+", default=None, metavar="CLAIM",
                   help="claim ids, e.g. C1 C3 (default: every registered claim)")
    v.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON to PATH")
    v.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="worker processes for the instances (at most 2, one per CPU)")
    add_search_parser(sub)
    return p


def _json_target_problem(path: str) -> str | None:
    """Why `path` cannot receive the --json output (None when it can), checked before computing."""
    if os.path.isdir(path):
        return f"--json {path!r} is a directory; give a file path"
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return f"--json {path!r}: folder {parent!r} does not exist"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"--json {path!r}: folder {parent!r} is not writable"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return f"--json {path!r} exists and is not writable"
    return None


def _search(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.claim not in OBJECTIVES:
        parser.error(f"unknown search claim {args.claim!r}; known: {', '.join(OBJECTIVES.names())}")
    if args.budget < 1 or args.seed < 0 or args.popsize < 1 or args.confirm < 0:
        parser.error(f"--budget and --popsize must be >= 1, --seed and --confirm >= 0; got {args.budget}, "
                     f"{args.popsize}, {args.seed}, {args.confirm}")
    print(search(args.claim, args.budget, args.seed, args.popsize, args.confirm).format())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run `python -m theory` with `argv`; returns the exit status (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "search":
        return _search(parser, args)
    if args.instances < 1 or args.workers < 1:
        parser.error(f"--instances and --workers must be >= 1, got {args.instances} and {args.workers}")
    if args.seed < 0:
        parser.error(f"--seed must be a non-negative integer, got {args.seed}")
    if args.json is not None and (why := _json_target_problem(args.json)):
        parser.error(why)
    known = sorted(load_claim_checks(), key=_claim_key)
    wanted = known if args.claims is None else [c.strip().upper() for c in args.claims if c.strip()]
    unknown = [c for c in wanted if c not in known]
    if unknown or not wanted:
        parser.error(f"unknown claim(s) {unknown or args.claims!r}; known: {', '.join(known)}")
    start = time.perf_counter()
    try:
        results = run_claims(wanted, args.instances, args.seed, args.workers)
    except Exception as exc:  # exit 1 is reserved for a failed proven statement
        traceback.print_exc()
        print(f"internal error while running the checks: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    elapsed = time.perf_counter() - start
    print(format_table(results))
    print(f"\n{len(results)} claims, {args.instances} instances each, seed {args.seed}, "
          f"{args.workers} workers: {elapsed:.1f} s")
    if args.json:
        write_json(args.json, {"instances": args.instances, "seed": args.seed, "seconds": elapsed,
                                      "results": [r.to_dict() for r in results]})
    proven = [r.claim for r in results if (r.numbers.get("proven_violations") or 0) > 0]
    if proven:
        print(f"PROVEN STATEMENT FAILED: {', '.join(proven)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    freeze_at_exit()
    sys.exit(main())
