"""Every command line's help, for every parser and subparser: each option's default is shown and
there is an example.

The CLIs: ``python -m deepnet`` (with ``sweep`` and ``collect``), ``deepnet.data``,
``deepnet.measure``, ``deepnet.pretrain``, the GPU check (``pipeline gpucheck``), ``theory``
(with ``theory.deep`` and ``theory.deep_experiment``), ``experiments``, ``paper_figs`` and ``pipeline``.
"""
from __future__ import annotations

import argparse
from typing import Callable, Iterator

import pytest


def _builders() -> dict[str, Callable[[], argparse.ArgumentParser]]:
    from deepnet.__main__ import build_parser as deepnet_parser
    from deepnet.data.__main__ import build_parser as data_parser
    from deepnet.gpucheck.cli import build_parser as gpucheck_parser
    from deepnet.measure.cli import build_parser as measure_parser
    from deepnet.pretrain import build_parser as pretrain_parser
    from experiments.__main__ import build_parser as experiments_parser
    from paper_figs.__main__ import build_parser as paper_figs_parser
    from pipeline.__main__ import build_parser as pipeline_parser
    from theory.__main__ import build_parser as theory_parser
    from theory.deep import build_parser as theory_deep_parser
    from theory.deep_experiment import build_parser as deep_experiment_parser

    return {"deepnet": deepnet_parser, "deepnet.data": data_parser, "deepnet.measure": measure_parser,
            "deepnet.gpucheck": gpucheck_parser, "theory": theory_parser, "experiments": experiments_parser,
            "paper_figs": paper_figs_parser, "pipeline": pipeline_parser, "deepnet.pretrain": pretrain_parser,
            "theory.deep": theory_deep_parser, "theory.deep_experiment": deep_experiment_parser}


def _walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and, depth first, every subcommand's parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # an alias maps to the same parser
                yield from _walk(sub)


def _parsers() -> list:
    params = []
    for cli, build in _builders().items():
        params += [pytest.param(parser, id=parser.prog.removeprefix("python -m "))
                   for parser in _walk(build())]
    return params


def _shows_default(parser: argparse.ArgumentParser, action: argparse.Action) -> bool:
    """Whether the option's help, as printed, gives its default: in its own words, or as the
    formatter's ``(default: VALUE)``."""
    if not action.help:
        return False
    return "default" in action.help or f"(default: {action.default})" in parser._get_formatter()._expand_help(action)


@pytest.mark.parametrize("parser", _parsers())
def test_help_shows_every_default_and_an_example(parser):
    text = parser.format_help()
    assert "example" in text.lower(), parser.prog
    defaulted = [a for a in parser._actions
                 if a.option_strings and not a.required and a.default is not None and a.default is not False
                 and a.default != [] and a.default != argparse.SUPPRESS and a.help != argparse.SUPPRESS]
    missing = [a.option_strings[-1] for a in defaulted if not _shows_default(parser, a)]
    assert not missing, f"{parser.prog}: no default shown for {missing}"
