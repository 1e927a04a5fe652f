"""``python -m pipeline main`` (the main job, what ``scripts/main.sh`` runs): its defaults, and the
``gpucheck`` command handing its arguments to the GPU check."""
from __future__ import annotations

import pytest

from pipeline.__main__ import build_parser, main


def test_main_defaults():
    args = build_parser().parse_args(["main"])
    assert args.out == "out/main" and args.spec.name == "main_default.toml" and not args.quick
    assert args.instances is None  # each claim spec's count: C9-C12 run on 8 problems, not 3


def test_main_rejects_unknown_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["main", "--no-such-option"])
    assert exc.value.code == 2 and "--no-such-option" in capsys.readouterr().err


def test_gpucheck_help_is_the_checks(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["gpucheck", "--help"])
    assert exc.value.code == 0 and "--deadline-s" in capsys.readouterr().out
