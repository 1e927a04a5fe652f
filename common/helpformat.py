"""The help of every command line: defaults shown, examples kept as written.

:class:`HelpFormatter` formats a parser's help; :func:`command_parser` makes a command's parser
and :func:`add_command` adds a subcommand, each with it and an epilog of examples
(:func:`example_epilog`), so every ``--help`` ends the same way.
"""
from __future__ import annotations

import argparse
import textwrap
from typing import Sequence


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (except for required options, flags, defaults of None or ``[]``
    and helps that say their default themselves) and wraps the description's and epilog's paragraphs, except those laid out by hand: a
    paragraph that is indented, or has a line after its first that starts with a space or "-" (a
    list, a command, a numpydoc section's underline), is kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if (action.required or action.default is None or action.default is False or action.default == []
                or "default" in (action.help or "")):
            return action.help
        return super()._get_help_string(action)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(par if _laid_out(par)
                           else textwrap.fill(par, width, initial_indent=indent, subsequent_indent=indent)
                           for par in text.split("\n\n"))


def _laid_out(paragraph: str) -> bool:
    """Whether a help paragraph is laid out by hand (see :class:`HelpFormatter`)."""
    return paragraph.startswith(" ") or any(line.startswith((" ", "-")) for line in paragraph.splitlines()[1:])


def example_epilog(examples: Sequence[str], notes: str | None = None) -> str:
    """An epilog: ``notes`` (paragraphs, wrapped), then ``examples:`` and one indented line each.

    Parameters
    ----------
    examples : sequence of str
        Command lines (a long one may continue on indented lines after ``\\``).
    notes : str, optional
        Text before the examples.

    Examples
    --------
    >>> print(example_epilog(["python -m theory verify"], notes="Exit status 0."))
    Exit status 0.
    <BLANKLINE>
    examples:
      python -m theory verify
    """
    text = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    return f"{notes}\n\n{text}" if notes else text


def command_parser(prog: str, description: str, examples: Sequence[str]) -> argparse.ArgumentParser:
    """The parser of command ``prog`` formatted by :class:`HelpFormatter`, ending in its examples.

    Parameters
    ----------
    prog : str
        How the command is called, e.g. ``"python -m theory"``.
    description : str
        The paragraph(s) opening its help.
    examples : sequence of str
        Command lines (:func:`example_epilog`).

    Returns
    -------
    argparse.ArgumentParser
    """
    return argparse.ArgumentParser(prog=prog, description=description, epilog=example_epilog(examples),
                                   formatter_class=HelpFormatter)


def add_command(subparsers: argparse._SubParsersAction, name: str, help: str, description: str,
                examples: Sequence[str], notes: str | None = None) -> argparse.ArgumentParser:
    """Add subcommand ``name`` formatted by :class:`HelpFormatter`, ending in its examples.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.
    name, help, description : str
        The subcommand, its one line in the parent's help and the paragraph(s) opening its own.
    examples, notes : sequence of str, str or None
        The epilog (:func:`example_epilog`).

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser, to add its arguments to.
    """
    return subparsers.add_parser(name, help=help, description=description, epilog=example_epilog(examples, notes),
                                 formatter_class=HelpFormatter)
