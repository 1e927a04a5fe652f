"""Every ``python -m deepnet.measure`` command's ``--help`` shows its defaults and an example; the
amp options read as ``python -m deepnet train``'s (``--no-amp``; on by default on a GPU)."""
from __future__ import annotations

import argparse

import pytest
import torch

from deepnet.measure.cli import build_parser, use_amp


def _commands() -> dict[str, argparse.ArgumentParser]:
    (subparsers,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return subparsers.choices


@pytest.mark.parametrize("name", sorted(_commands()))
def test_help_shows_defaults_and_an_example(name):
    command = _commands()[name]
    text = command.format_help()
    assert "\nexamples:\n  python -m deepnet.measure " + name in text
    for action in command._actions:
        if action.option_strings and action.default not in (None, False, []) and not action.required \
                and action.dest != "help":
            assert f"(default: {action.default})" in " ".join(text.split()), (name, action.dest)


@pytest.mark.parametrize("name", ["memory", "throughput"])
def test_amp_is_on_by_default_on_a_gpu_only(name):
    for flags, cpu, cuda in (([], False, True), (["--amp"], True, True), (["--no-amp"], False, False)):
        a = build_parser().parse_args([name, "--out", "x", *flags])
        assert (use_amp(a.amp, torch.device("cpu")), use_amp(a.amp, torch.device("cuda"))) == (cpu, cuda), flags
