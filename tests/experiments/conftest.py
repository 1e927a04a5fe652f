"""Fixtures: a small synthetic results file in the deepnet contract's record format."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import seeded_records, write_jsonl


@pytest.fixture
def results_file(tmp_path: Path) -> Path:
    """Three seeds of :data:`tests.helpers.RUNS` on (small_vit, digits)."""
    return write_jsonl(tmp_path / "results" / "synthetic.jsonl", seeded_records("small_vit", "digits"))
