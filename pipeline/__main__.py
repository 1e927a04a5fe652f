"""Command line: ``python -m pipeline main`` (the main job: theory verification, a small real deep-net
comparison on offline data, the report and the figures, all into one output folder; re-running
resumes the sweep) and ``python -m pipeline gpucheck`` (the GPU check beside the paper's Table 4;
``python -m pipeline gpucheck --help`` for its options)."""
from __future__ import annotations

import argparse
import sys

from common.helpformat import HelpFormatter, command_parser, example_epilog
from common.shutdown import freeze_at_exit
from pipeline import gpucheck, main_job


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("python -m pipeline", __doc__, ["python -m pipeline main --out out/main",
                                                          "python -m pipeline gpucheck --tiny --device cpu --out out/gpucheck"])
    sub = parser.add_subparsers(dest="command", required=True)
    main_job.add_parser(sub)
    # its arguments (--help included) go on to the GPU check's own parser (deepnet.gpucheck.cli)
    sub.add_parser("gpucheck", add_help=False, formatter_class=HelpFormatter,
                   help="the GPU check beside the paper's Table 4 (its options: python -m pipeline gpucheck --help)",
                   epilog=example_epilog(["python -m pipeline gpucheck --out out/gpucheck"]))
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
    freeze_at_exit()
    sys.exit(main())
