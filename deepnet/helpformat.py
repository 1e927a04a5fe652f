"""The help formatter of every ``python -m deepnet`` command: defaults shown, examples kept."""
from __future__ import annotations

import argparse
import textwrap


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (except for required options, flags and defaults of None), wraps
    the description's and epilog's paragraphs and keeps those that start with "example" as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default in (None, False) or action.default == []:
            return action.help
        return super()._get_help_string(action)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(par if par.startswith("example")
                           else textwrap.fill(par, width, initial_indent=indent, subsequent_indent=indent)
                           for par in text.split("\n\n"))
