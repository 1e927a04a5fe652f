"""Every sweep spec in experiments/specs/ loads and validates through the sweep engine's loader."""
from __future__ import annotations

from pathlib import Path

import pytest

from deepnet.sweep.spec import SpecError, load_spec
from experiments.paper.tables import table_ids

SPEC_DIR = Path(__file__).resolve().parents[2] / "experiments" / "specs"
SPECS = sorted(SPEC_DIR.glob("*.toml"))


def test_there_are_specs_for_the_papers_tables():
    names = {p.stem for p in SPECS}
    assert {"table1", "table5", "table7", "table9", "table11", "table13", "fig1b", "lpft_id_ood", "main_default"} <= names


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_loads_and_expands(path):
    spec = load_spec(path)
    assert spec.name == path.stem
    assert spec.expand(), f"{path.name} expands to no run"
    known = set(table_ids())
    assert set(spec.paper_tables) <= known, f"{path.name} links unknown paper tables"


def test_bad_spec_fails_with_known_names(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nmodels = ["no_such_model"]\ndatasets = ["digits"]\nmethods = ["sgd"]\n')
    with pytest.raises(SpecError, match="known models"):
        load_spec(bad)
