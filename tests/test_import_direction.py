"""Imports go one way: pipeline -> paper_figs -> experiments -> {theory, deepnet} -> common.

Every ``.py`` file of the packages is parsed (ast) and each absolute import of another package of
the repository is checked against :data:`ALLOWED`, including imports inside functions.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: what each package may import besides itself
ALLOWED = {
    "common": set(),
    "theory": {"common"},
    "deepnet": {"common"},
    "experiments": {"common", "theory", "deepnet"},
    "paper_figs": {"common", "theory", "deepnet", "experiments"},
    "pipeline": {"common", "theory", "deepnet", "experiments", "paper_figs"},
}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in the file at ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def violations(package: str) -> list[str]:
    """``file:line imports X`` for every import of ``package``'s files against :data:`ALLOWED`."""
    others = set(ALLOWED) - {package}
    return [f"{path.relative_to(ROOT)}:{line} imports {name}"
            for path in sorted((ROOT / package).rglob("*.py"))
            for line, name in imported_packages(path)
            if name in others and name not in ALLOWED[package]]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_go_one_way(package):
    assert violations(package) == []


def test_a_wrong_way_import_is_found(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\ndef f():\n    from experiments.paper import tables\n    import paper_figs.build\n")
    assert imported_packages(bad) == [(1, "os"), (4, "experiments"), (5, "paper_figs")]
