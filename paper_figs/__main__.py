"""``python -m paper_figs [FIG ...] --out DIR [--results PATH ...]``: regenerate the papers' figures and
tables from the digitized paper numbers and, beside them, from our result records."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.helpformat import command_parser
from common.shutdown import freeze_at_exit


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m paper_figs`` parser."""
    from paper_figs.build import FIGURES

    parser = command_parser("python -m paper_figs", __doc__, ["python -m paper_figs --out out/figures",
                                                              "python -m paper_figs fig2 tables --out out/figures"])
    parser.add_argument("figures", nargs="*", help=f"figures to make (default: all): {', '.join(FIGURES.names())}")
    parser.add_argument("--out", default="out/figures", help="output folder")
    parser.add_argument("--results", nargs="*", default=["experiments/results"],
                        help="our result records (.jsonl files or folders)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from paper_figs.build import build_figures

    args = build_parser().parse_args(argv)
    for path in build_figures(args.figures or None, Path(args.out), results=args.results):
        print(path)
    return 0


if __name__ == "__main__":
    freeze_at_exit()
    sys.exit(main())
