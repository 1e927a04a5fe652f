"""Command line: ``python -m experiments report``, the claims ledger (the main job, which also runs
the sweep and draws the figures, is ``python -m pipeline main``)."""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from common.helpformat import add_command, command_parser
from common.shutdown import freeze_at_exit


def report_usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with `report`'s arguments (checked before any computing), or None.

    Every ``--results`` path must exist and together they must hold at least one ``*.jsonl``
    file; ``--claims`` must be known ids exactly as written (``C4``, not ``c4``); ``--instances``
    must be >= 1; ``--out`` must not be a file.
    """
    from experiments.ledger import RESULTS_DIR, check_claim_ids

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
    from experiments.ledger import RESULTS_DIR, build_ledger
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

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    freeze_at_exit()
    sys.exit(main())
