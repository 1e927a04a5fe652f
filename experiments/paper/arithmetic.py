"""Recompute every number the papers derive from their own cells, and list where they disagree.

Three kinds of derived numbers are checked:

* row averages ("Avg." columns) and the "(+x)" gains over the baseline row,
* cells that the papers print in more than one table (``[[same]]`` in ``stated.toml``),
* numbers stated in the text (``[[stated]]`` in ``stated.toml``), e.g. "SGD (freeze-embed) gets an
  average OOD accuracy of 76.7%".

Tolerances are exact rounding bounds, not fudge factors: every printed cell is rounded to 0.1, so a
cell is within +-0.05 of the paper's unrounded value and so is a mean of cells. A derived number
agrees when the interval of values it can take over those bounds (evaluated at the corners, the
functions used are monotone in each input) meets the interval of the stated, rounded, number
(+- half a unit of its last printed digit). A disagreement is a `Discrepancy`; the known ones are
recorded in ``errata.toml``, and the tests require the two lists to be identical.
"""
from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from typing import Any, Callable

from experiments.paper.tables import PAPER_DIR, PaperTable, load_table, table_ids

CELL_HALF_WIDTH = 0.05  # every printed accuracy / GB cell is rounded to one decimal


@dataclass(frozen=True)
class Discrepancy:
    """A derived number the paper states that its own cells do not reproduce within rounding."""

    table: str
    cell: str
    stated: float
    recomputed: float
    kind: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.table, self.cell)


def half_unit(text: str) -> float:
    """Half a unit of the last printed digit of a number written as text ("76.0" -> 0.05)."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    return 0.5 * 10.0 ** (-decimals)


def _interval(fn: Callable[..., float], values: list[float], half_widths: list[float]) -> tuple[float, float]:
    corners = [fn(*(v + s * h for v, s, h in zip(values, signs, half_widths)))
               for signs in itertools.product((-1.0, 1.0), repeat=len(values))]
    return min(corners), max(corners)


def rounding_bounds(fn: Callable[..., float], values: list[float]) -> tuple[float, float]:
    """(lowest, highest) of ``fn(*values)`` over the print rounding of each value (+-CELL_HALF_WIDTH).

    Parameters
    ----------
    fn : callable
        Monotone in each argument (evaluated at the corners), e.g. a difference of cell means.
    values : list of float
        Printed cells or means of printed cells (a mean of cells is within the same bound).
    """
    return _interval(fn, values, [CELL_HALF_WIDTH] * len(values))


def _agrees(fn: Callable[..., float], values: list[float], half_widths: list[float], stated: float, stated_half: float) -> bool:
    lo, hi = _interval(fn, values, half_widths)
    return lo - 1e-9 <= stated + stated_half and stated - stated_half <= hi + 1e-9


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def row_average_discrepancies(table: PaperTable) -> list[Discrepancy]:
    """Rows whose stated average is not the mean of their cells within rounding."""
    out = []
    if table.avg is None:
        return out
    for row in table.rows:
        cells = [row[c] for c in table.columns]
        if row[table.avg] is None or not all(isinstance(c, float) for c in cells):
            continue
        mean = _mean(cells)
        if not _agrees(lambda m: m, [mean], [CELL_HALF_WIDTH], row[table.avg], CELL_HALF_WIDTH):
            out.append(Discrepancy(table.id, f"{table.row_label(row)}/{table.avg}", row[table.avg], round(mean, 3), "row average"))
    return out


def delta_discrepancies(table: PaperTable) -> list[Discrepancy]:
    """Stated "(+x)" gains that are not cell minus baseline cell within rounding."""
    out = []
    if not table.has_deltas:
        return out
    columns = list(table.columns) + ([table.avg] if table.avg else [])
    for row in table.rows:
        group = {k: row[k] for k in table.delta_group}
        base = table.row(**group, **table.delta_baseline)
        if base is row:
            continue
        for col in columns:
            stated = row.get(f"{col}_delta")
            if stated is None:
                continue
            diff = row[col] - base[col]
            if not _agrees(lambda a, b: a - b, [row[col], base[col]], [CELL_HALF_WIDTH] * 2, stated, CELL_HALF_WIDTH):
                out.append(Discrepancy(table.id, f"{table.row_label(row)}/{col}_delta", stated, round(diff, 3), "gain over baseline"))
    return out


def _stated_spec() -> dict[str, Any]:
    with open(PAPER_DIR / "stated.toml", "rb") as f:
        return tomllib.load(f)


def selector_mean(sel: dict[str, Any]) -> float:
    """Mean of the cells a selector picks: ``{table = id, <key> = value..., columns = [...]}``."""
    sel = dict(sel)
    table = load_table(sel.pop("table"))
    columns = sel.pop("columns", None)
    cells = table.cells(columns, **sel)
    if not cells:
        raise ValueError(f"selector {sel} on {table.id} matches no numeric cell")
    return _mean(cells)


STATS: dict[str, Callable[..., float]] = {
    "mean": lambda a: a,
    "diff": lambda a, b: a - b,
    "pct_more": lambda a, b: 100.0 * (a / b - 1.0),
    "pct_less": lambda a, b: 100.0 * (1.0 - a / b),
    "error_reduction_pct": lambda a, b: 100.0 * (1.0 - (100.0 - a) / (100.0 - b)),
    "gap_closed_pct": lambda a, b, c: 100.0 * (a - b) / (c - b),
}


def stated_value(entry: dict[str, Any]) -> tuple[float, float, float]:
    """(recomputed value, lowest, highest) of one ``[[stated]]`` text number from the cells."""
    fn = STATS[entry["stat"]]
    n_args = fn.__code__.co_argcount
    values = [selector_mean(entry[name]) for name in "abc"[:n_args]]
    lo, hi = rounding_bounds(fn, values)
    return fn(*values), lo, hi


def text_discrepancies() -> list[Discrepancy]:
    """Numbers stated in the papers' text that their tables do not reproduce within rounding."""
    out = []
    for entry in _stated_spec().get("stated", []):
        if entry["stat"] not in STATS:
            raise ValueError(f"stated {entry['id']}: unknown stat {entry['stat']!r}; known: {sorted(STATS)}")
        value, lo, hi = stated_value(entry)
        stated = float(entry["stated"])
        h = half_unit(entry["stated"])
        if not (lo - 1e-9 <= stated + h and stated - h <= hi + 1e-9):
            out.append(Discrepancy("text", entry["id"], stated, round(value, 3), entry["where"]))
    return out


def same_cell_discrepancies() -> list[Discrepancy]:
    """Cells printed in two tables that differ (``[[same]]`` entries).

    For every row of table b (filtered by b's fixed keys) that has a row in table a with equal
    `join` keys (plus a's fixed keys), the `columns` of a must equal the `columns_b` of b; empty
    cells are skipped. An entry that compares nothing is an error (a typo in the spec).
    """
    out = []
    for entry in _stated_spec().get("same", []):
        fixed_a = {k: v for k, v in entry["a"].items() if k != "table"}
        fixed_b = {k: v for k, v in entry["b"].items() if k != "table"}
        a, b = load_table(entry["a"]["table"]), load_table(entry["b"]["table"])
        cols_b = entry.get("columns_b", entry["columns"])
        compared = 0
        for row_b in b.select(**fixed_b):
            rows_a = a.select(**fixed_a, **{k: row_b[k] for k in entry["join"]})
            if not rows_a:
                continue
            (row_a,) = rows_a
            for col_a, col_b in zip(entry["columns"], cols_b):
                va, vb = row_a[col_a], row_b[col_b]
                if va is None or vb is None:
                    continue
                compared += 1
                if va != vb:
                    cell = f"{a.row_label(row_a)}/{col_a} vs {b.id} {b.row_label(row_b)}/{col_b}"
                    out.append(Discrepancy(a.id, cell, va, vb, "same cell in two tables"))
        if compared == 0:
            raise ValueError(f"[[same]] {entry['a']} vs {entry['b']} compares no cell")
    return out


def all_discrepancies() -> list[Discrepancy]:
    """Every disagreement between the papers' derived numbers and their cells."""
    out: list[Discrepancy] = []
    for tid in table_ids():
        table = load_table(tid)
        out += row_average_discrepancies(table) + delta_discrepancies(table)
    return out + same_cell_discrepancies() + text_discrepancies()


def _errata_file() -> dict[str, Any]:
    with open(PAPER_DIR / "errata.toml", "rb") as f:
        return tomllib.load(f)


def load_errata() -> list[dict[str, Any]]:
    """The recorded discrepancies (``errata.toml``): table, cell, stated, recomputed, note."""
    return _errata_file().get("erratum", [])


def load_notes() -> list[dict[str, Any]]:
    """The recorded inconsistencies of the papers' text (``[[note]]`` in ``errata.toml``)."""
    return _errata_file().get("note", [])


def _side_value(sel: dict[str, Any]) -> float:
    return float(sel["value"]) if "value" in sel else selector_mean(sel)


def note_check(check: dict[str, Any]) -> tuple[bool, str]:
    """Evaluate one ``[[note.check]]`` on the digitized cells: (holds, the numbers as text).

    ``absent`` holds when its selector matches no row of its table; otherwise
    ``a [- a_minus] op b [- b_minus]`` on the printed cells (``==`` exactly, as printed).
    """
    if "absent" in check:
        sel = dict(check["absent"])
        rows = load_table(sel.pop("table")).select(**sel)
        return not rows, f"{check['absent']} matches {len(rows)} row(s)"
    lhs = _side_value(check["a"]) - (_side_value(check["a_minus"]) if "a_minus" in check else 0.0)
    rhs = _side_value(check["b"]) - (_side_value(check["b_minus"]) if "b_minus" in check else 0.0)
    ops = {">": lhs > rhs, "<": lhs < rhs, "==": abs(lhs - rhs) < 1e-9}
    if check["op"] not in ops:
        raise ValueError(f"note check op must be one of {sorted(ops)}, got {check['op']!r}")
    return ops[check["op"]], f"{lhs:.4g} {check['op']} {rhs:.4g}"

