"""Every ``python -m deepnet`` command's ``--help`` ends in examples of itself (each option's default
shown: tests/test_help_texts.py, for every command line); ``--threads``."""
from __future__ import annotations

import pytest

from deepnet.__main__ import build_parser


def _commands():
    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if a.choices and isinstance(a.choices, dict)]
    return subparsers.choices


@pytest.mark.parametrize("name", sorted(_commands()))
def test_help_ends_in_examples_of_the_command(name):
    assert "\nexamples:\n  python -m deepnet " + name in _commands()[name].format_help()


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
