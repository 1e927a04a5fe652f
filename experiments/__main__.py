"""Command line: ``python -m experiments report`` (the claims ledger) and ``python -m experiments main``
(the main job: theory verification, a small real deep-net comparison on offline data, the report
and the figures, all into one output folder; re-running resumes the sweep)."""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from common.helpformat import add_command, command_parser

SPEC_DIR = Path(__file__).resolve().parent / "specs"
DEFAULT_SPEC = SPEC_DIR / "main_default.toml"
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _stage(name: str) -> None:
    print(f"\n=== {name} ===", flush=True)


def report_usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with `report`'s arguments (checked before any computing), or None.

    Every ``--results`` path must exist and together they must hold at least one ``*.jsonl``
    file; ``--claims`` must be known ids exactly as written (``C4``, not ``c4``); ``--instances``
    must be >= 1; ``--out`` must not be a file.
    """
    from experiments.ledger import check_claim_ids

    results = args.results or [RESULTS_DIR]
    absent = [str(p) for p in results if not p.exists()]
    if absent:
        return f"no results file or folder at {', '.join(absent)}"
    if not any(p.suffix == ".jsonl" if p.is_file() else any(p.rglob("*.jsonl")) for p in results):
        return f"no result records (*.jsonl) in {', '.join(map(str, results))}: nothing to report"
    if args.instances is not None and args.instances < 1:
        return f"--instances must be >= 1, got {args.instances}"
    if Path(args.out).is_file():
        return f"--out {args.out} is a file, not a folder"
    try:
        check_claim_ids(args.claims or [])
    except ValueError as err:
        return str(err)
    return None


def cmd_report(args: argparse.Namespace) -> int:
    from experiments.ledger import build_ledger
    from experiments.report import console_details, console_table, write_reports

    problem = report_usage_error(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    results = args.results or [RESULTS_DIR]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            rows = build_ledger(results, instances=args.instances, claims=args.claims, progress=True,
                                strict=args.strict)
        except ValueError as err:  # --strict and a malformed results line
            print(f"error: {err}", file=sys.stderr)
            return 2
    skipped = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    for message in skipped:
        print(f"warning: {message} (--strict to fail instead)", file=sys.stderr)
    print(console_table(rows))
    if args.details:
        print(console_details(rows))
    header = f"Results read from: {', '.join(map(str, results))}."
    if skipped:
        header += " Malformed lines skipped: " + "; ".join(skipped) + "."
    paths = write_reports(rows, Path(args.out), header=header)
    print(f"\nwrote {paths['markdown']} and {paths['json']}")
    return 0


def run_sweep_stage(spec_path: Path, root: Path, quick: bool) -> str:
    """Run (or resume) the deep-net sweep; returns a one-line status."""
    try:
        from deepnet.sweep import load_spec
        from deepnet.sweep.launchers import run_sweep
    except ImportError as err:
        return f"missing: the sweep engine is not importable ({err})"
    spec = load_spec(spec_path)
    overrides = {"max_train_steps": 10} if quick else {}
    report = run_sweep(spec.expand(overrides), root, progress=True)
    return report.summary()


def cmd_main(args: argparse.Namespace) -> int:
    from experiments.ledger import build_ledger
    from common.io import write_text
    from experiments.report import console_table, write_reports

    instances = 1 if args.quick else args.instances
    if instances is not None and instances < 1:
        print(f"error: --instances must be >= 1, got {instances}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    status = {}

    _stage(f"1/4 deep-net comparison on offline data ({args.spec.name})")
    sweep_root = out / "sweep"
    try:
        status["sweep"] = run_sweep_stage(args.spec, sweep_root, args.quick)
    except Exception as err:  # one broken stage must not hide the others' results
        status["sweep"] = f"failed: {type(err).__name__}: {err}"
    print(status["sweep"])

    per_claim = "each claim spec's count of" if instances is None else str(instances)
    _stage(f"2/4 theory verification ({per_claim} instances per claim) + claims ledger")
    results = [RESULTS_DIR, sweep_root]
    rows = build_ledger(results, instances=instances, progress=True)
    print(console_table(rows))

    _stage("3/4 report")
    header = (f"Main job: theory checks with {per_claim} instances per claim; our runs from "
              f"experiments/results/ and this job's sweep ({args.spec.name}: {status['sweep'].splitlines()[0]}).")
    paths = write_reports(rows, out, header=header)
    print(f"wrote {paths['markdown']}, {paths['json']}")

    _stage("4/4 figures and tables")
    try:
        from paper_figs.build import build_figures

        made = build_figures(None, out / "figures", results=results)
        status["figures"] = f"{len(made)} files in {out / 'figures'}"
    except Exception as err:
        status["figures"] = f"failed: {type(err).__name__}: {err}"
    print(status["figures"])

    summary = "\n".join(f"{k}: {v}" for k, v in status.items()) + f"\ntotal time: {time.time() - t0:.0f} s\n"
    write_text(out / "main_status.txt", summary)
    print(f"\n{summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m experiments`` parser: subcommands ``report`` and ``main``."""
    parser = command_parser("python -m experiments", __doc__, ["python -m experiments report --claims C4 C10",
                                                               "python -m experiments main --quick",
                                                               "python -m experiments COMMAND --help"])
    sub = parser.add_subparsers(dest="command", required=True)

    rep = add_command(sub, "report",
                      help="print the claims ledger (theory / paper / ours per claim) and write it as markdown + JSON",
                      description="For every claim C1-C13: run its theory check, evaluate the paper's numbers, and "
                                  "compare our result records. A link not built yet shows as 'missing'.",
                      examples=["python -m experiments report",
                                "python -m experiments report --claims C4 C10 --instances 20 --details"])
    rep.add_argument("--results", nargs="*", type=Path, help="results files or folders (default: experiments/results)")
    rep.add_argument("--instances", type=int, default=None, help="random problems per theory check (default: each claim spec's)")
    rep.add_argument("--claims", nargs="*", help="only these claims, exactly as the ids are written, e.g. C4 C10")
    rep.add_argument("--details", action="store_true", help="also print the numbers behind every verdict")
    rep.add_argument("--strict", action="store_true",
                     help="a malformed line in a results file is an error (default: skipped with a warning naming file:line)")
    rep.add_argument("--out", default="out/report", help="folder for ledger.md and ledger.json")
    rep.set_defaults(func=cmd_report)

    main = add_command(sub, "main", help="the main job: offline deep-net sweep, theory checks, report, figures",
                       description="Runs, into --out: a small real deep-net sweep on offline data (resumes if re-run), "
                                   "the theory checks, the claims ledger (ledger.md / ledger.json) and the figures.",
                       examples=["python -m experiments main", "python -m experiments main --quick --out out/quick"])
    main.add_argument("--out", default="out/main", help="output folder")
    main.add_argument("--quick", action="store_true", help="1 theory instance per claim and 10 optimizer steps per run")
    main.add_argument("--instances", type=int, default=None,
                      help="random problems per theory check (default: each claim spec's; C9-C12: 8, fewer is indicative)")
    main.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="sweep spec for the deep-net stage (default: experiments/specs/main_default.toml)")
    main.set_defaults(func=cmd_main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
