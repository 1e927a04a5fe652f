"""Load the papers' digitized tables.

Each table is one CSV in this folder, indexed in ``tables.toml`` (id such as ``"sgd:table1"`` or
``"lpft:ood"`` -> file, caption, key columns, numeric columns, the stated row-average column, and
how the paper's "(+x)" deltas are defined). Cells are floats; an empty cell is ``None``; a
non-numeric cell (e.g. ``"oom"`` in Table 4) stays a string. Accuracies are percentages, as printed.
"""
from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

PAPER_DIR = Path(__file__).resolve().parent
Cell = float | str | None


def _parse_cell(text: str) -> Cell:
    text = text.strip()
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


@dataclass(frozen=True)
class PaperTable:
    """One digitized table: rows of key strings plus numeric cells."""

    id: str
    caption: str
    metric: str
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    avg: str | None = None
    delta_group: tuple[str, ...] | None = None
    delta_baseline: dict[str, str] = field(default_factory=dict)

    @property
    def has_deltas(self) -> bool:
        return self.delta_group is not None

    def select(self, **match: str) -> list[dict[str, Any]]:
        """Rows whose key columns equal every given value (no filter = all rows)."""
        unknown = set(match) - set(self.keys)
        if unknown:
            raise KeyError(f"{self.id}: unknown key column(s) {sorted(unknown)}; keys: {list(self.keys)}")
        return [r for r in self.rows if all(r[k] == v for k, v in match.items())]

    def row(self, **match: str) -> dict[str, Any]:
        """The single row matching `match`; raises if none or several."""
        found = self.select(**match)
        if len(found) != 1:
            raise KeyError(f"{self.id}: {len(found)} rows match {match}, expected 1")
        return found[0]

    def value(self, column: str, **match: str) -> Cell:
        if column not in self.row(**match):
            raise KeyError(f"{self.id}: no column {column!r}")
        return self.row(**match)[column]

    def cells(self, columns: list[str] | None = None, **match: str) -> list[float]:
        """All numeric cells of `columns` (default: the table's data columns) in matching rows."""
        cols = columns or list(self.columns)
        return [r[c] for r in self.select(**match) for c in cols if isinstance(r[c], float)]

    def row_label(self, row: dict[str, Any]) -> str:
        """Stable identifier of a row: its non-empty key values joined by '/'."""
        return "/".join(str(row[k]) for k in self.keys if row[k])


@lru_cache(maxsize=1)
def _index() -> dict[str, dict[str, Any]]:
    with open(PAPER_DIR / "tables.toml", "rb") as f:
        return tomllib.load(f)["tables"]


def table_ids() -> list[str]:
    """Every digitized table id, in index order."""
    return list(_index())


@lru_cache(maxsize=None)
def load_table(table_id: str) -> PaperTable:
    """Load one table by id (e.g. ``"sgd:table1"``); unknown ids list the known ones."""
    index = _index()
    if table_id not in index:
        raise KeyError(f"unknown paper table {table_id!r}; known: {', '.join(index)}")
    meta = index[table_id]
    with open(PAPER_DIR / meta["file"], newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        rows = []
        for raw in reader:
            rows.append({k: (v.strip() if k in meta["keys"] else _parse_cell(v)) for k, v in raw.items()})
    expected = list(meta["keys"]) + list(meta["columns"]) + ([meta["avg"]] if meta.get("avg") else [])
    missing = [c for c in expected if c not in header]
    if missing:
        raise ValueError(f"{meta['file']}: missing column(s) {missing}")
    return PaperTable(
        id=table_id,
        caption=meta["caption"],
        metric=meta["metric"],
        keys=tuple(meta["keys"]),
        columns=tuple(meta["columns"]),
        rows=tuple(rows),
        avg=meta.get("avg"),
        delta_group=tuple(meta["delta_group"]) if "delta_group" in meta else None,
        delta_baseline=dict(meta.get("delta_baseline", {})),
    )
