"""Every ``python -m deepnet`` and ``python -m deepnet.measure`` command's ``--help`` shows its
defaults and an example; ``--threads``."""
from __future__ import annotations

import pytest

from deepnet.__main__ import build_parser
from deepnet.measure.cli import build_parser as build_measure_parser

PARSERS = {"python -m deepnet": build_parser, "python -m deepnet.measure": build_measure_parser}


def _commands(prog: str = "python -m deepnet"):
    parser = PARSERS[prog]()
    (subparsers,) = [a for a in parser._actions if a.choices and isinstance(a.choices, dict)]
    return subparsers.choices


@pytest.mark.parametrize("prog, name", [(prog, name) for prog in PARSERS for name in sorted(_commands(prog))])
def test_help_shows_defaults_and_an_example(prog, name):
    command = _commands(prog)[name]
    text = command.format_help()
    assert f"\nexamples:\n  {prog} " + name in text
    for action in command._actions:
        if action.option_strings and action.default not in (None, False, []) and action.help != "==SUPPRESS==" \
                and not action.required and action.dest != "help":
            assert f"(default: {action.default})" in " ".join(text.split()), (name, action.dest)


@pytest.fixture
def restore_threads():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_train_threads_sets_torch_threads_and_rejects_zero(restore_threads, capsys):
    import torch

    from deepnet.__main__ import main

    argv = ["train", "--model", "small_vit", "--dataset", "digits", "--method", "no_such_method", "--lr", "0.1"]
    assert main(argv + ["--threads", "0"]) == 2 and "threads must be >= 1" in capsys.readouterr().err
    torch.set_num_threads(2)
    assert main(argv + ["--threads", "1"]) == 2  # threads set, then the unknown method stops the run
    assert torch.get_num_threads() == 1 and "no_such_method" in capsys.readouterr().err
