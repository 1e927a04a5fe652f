"""Command line: ``python -m pipeline main`` (the main job: theory verification, a small real deep-net
comparison on offline data, the report and the figures, all into one output folder; re-running
resumes the sweep) and ``python -m pipeline gpucheck`` (the GPU check beside the paper's Table 4;
``python -m pipeline gpucheck --help`` for its options)."""
from __future__ import annotations

import argparse
import sys

from pipeline import gpucheck, main_job


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    main_job.add_parser(sub)
    check = sub.add_parser("gpucheck", add_help=False, help="the GPU check beside the paper's Table 4 "
                                                            "(its options: python -m pipeline gpucheck --help)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "gpucheck":
        return gpucheck.main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
