"""Every ``python -m deepnet`` command's ``--help`` shows its defaults and an example."""
from __future__ import annotations

import pytest

from deepnet.__main__ import build_parser


def _commands():
    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if a.choices and isinstance(a.choices, dict)]
    return subparsers.choices


@pytest.mark.parametrize("name", sorted(_commands()))
def test_help_shows_defaults_and_an_example(name):
    command = _commands()[name]
    text = command.format_help()
    assert "\nexamples:\n  python -m deepnet " + name in text
    for action in command._actions:
        if action.option_strings and action.default not in (None, False, []) and action.help != "==SUPPRESS==" \
                and not action.required and action.dest != "help":
            assert f"(default: {action.default})" in " ".join(text.split()), (name, action.dest)
