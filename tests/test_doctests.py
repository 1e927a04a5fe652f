"""The Examples sections of the public API run as tests: every module of the packages whose source
holds a ``>>>`` prompt is imported and its doctests executed (numpydoc Examples, as scipy writes them).
"""
from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "theory", "deepnet", "experiments", "paper_figs")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def modules_with_examples() -> list[str]:
    """Dotted names of the package modules whose source contains a doctest prompt."""
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "__main__.py" or ">>> " not in path.read_text(encoding="utf-8"):
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_the_packages_have_examples():
    """The collection is not silently empty (a renamed package folder would make it so)."""
    assert len(modules_with_examples()) >= 5


@pytest.mark.parametrize("module_name", modules_with_examples())
def test_examples_run(module_name):
    module = importlib.import_module(module_name)
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=FLAGS)
    tests = [t for t in finder.find(module, module_name) if t.examples]
    assert tests, f"{module_name} has a '>>> ' in its source but no doctest was found"
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {module_name}"
