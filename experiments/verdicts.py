"""The verdict words and how a comparison's cells are judged (see :mod:`experiments.ledger`).

A cell: ``supports`` (its interval excludes the claim's threshold, 0 unless stated, in the claimed
direction), ``contradicts`` (excludes it the other way) or ``unresolved`` (one seed, or the interval
contains it). A claim: ``supported`` (>= 1 cell supports, none contradicts), ``contradicted`` (>= 1
contradicts, none supports), ``mixed`` (both), ``inconclusive`` (every cell unresolved), ``missing``
(no cell: no link, or no data). No verdict comes from an unresolved cell.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any, Iterable

from scipy import stats

from theory.verdict import ClaimResult

OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
       "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)}
CELL_VERDICTS = ("supports", "contradicts", "unresolved")
CLAIM_VERDICTS = ("supported", "contradicted", "mixed", "inconclusive", "missing")
#: a difference this close to its threshold counts as touching it (float noise of printed cells).
_TOUCH = 1e-9


def judge(diff: float, half: float | None, op: str, threshold: float = 0.0) -> str:
    """One cell's verdict from a difference and its interval.

    Parameters
    ----------
    diff : float
        The difference lhs - rhs (centre of the interval).
    half : float or None
        The interval's half-width: 0 for an exact value, None when there is no interval (one seed).
    op : str
        The claimed relation of lhs to rhs, one of OPS: the claim is ``diff op threshold``.
    threshold : float, default 0
        What the difference is compared with.

    Returns
    -------
    str
        ``supports`` if the whole interval lies on the claimed side of the threshold (an exact value:
        if the relation holds), ``contradicts`` if it lies on the other side (for ``==``: if it
        excludes the threshold), else ``unresolved``.
    """
    if half is None:
        return "unresolved"
    if half == 0.0:
        return "supports" if OPS[op](diff, threshold) else "contradicts"
    above, below = diff - half > threshold + _TOUCH, diff + half < threshold - _TOUCH
    if op == "==":
        return "contradicts" if above or below else "unresolved"
    if op in (">", ">="):
        return "supports" if above else "contradicts" if below else "unresolved"
    return "supports" if below else "contradicts" if above else "unresolved"


def claim_verdict(cells: Iterable[str]) -> str:
    """A claim's verdict from its cells' verdicts (see the module docstring); no cell -> missing."""
    cells = list(cells)
    supports, contradicts = "supports" in cells, "contradicts" in cells
    if not cells:
        return "missing"
    if supports and contradicts:
        return "mixed"
    return "supported" if supports else "contradicted" if contradicts else "inconclusive"


@dataclass(frozen=True)
class CellVerdict:
    """One comparison in one cell: the difference, its interval and what it says about the claim.

    ``half`` is the interval's half-width (0: exact, None: no interval); ``n`` the seeds or problems
    it is over (0: not a sample, e.g. the print rounding of the papers' cells).
    """

    comparison: str
    cell: str
    diff: float
    half: float | None
    n: int
    op: str
    threshold: float = 0.0

    @property
    def verdict(self) -> str:
        return judge(self.diff, self.half, self.op, self.threshold)

    def text(self) -> str:
        """``+0.012 ± 0.008 (n=3) > 0: supports``."""
        spread = "exact" if self.half == 0.0 else "no interval" if self.half is None else f"± {self.half:.3g}"
        n = f" (n={self.n})" if self.n else ""
        return f"{self.diff:+.4g} {spread}{n} {self.op} {self.threshold:g}: {self.verdict}"

    def to_dict(self) -> dict[str, Any]:
        return {"comparison": self.comparison, "cell": self.cell, "diff": self.diff, "ci90": self.half,
                "n": self.n, "op": self.op, "threshold": self.threshold, "verdict": self.verdict}


@dataclass
class IntervalResult(ClaimResult):
    """A claim judged cell by cell (a ClaimResult with the claim words and its cells).

    ``counts`` gives the cells that support / contradict / are unresolved; ``indicative`` marks a
    statistical theory check run on fewer problems than are meaningful.
    """

    cells: list[CellVerdict] = field(default_factory=list)
    indicative: bool = False

    def __post_init__(self) -> None:
        if self.verdict not in CLAIM_VERDICTS:
            raise ValueError(f"verdict must be one of {CLAIM_VERDICTS}, got {self.verdict!r}")

    @property
    def counts(self) -> dict[str, int]:
        return {w: sum(c.verdict == w for c in self.cells) for w in CELL_VERDICTS}

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "counts": self.counts, "indicative": self.indicative,
                "cells": [c.to_dict() for c in self.cells]}


def judged(claim: str, cells: list[CellVerdict], detail: str, numbers: dict[str, Any] | None = None,
           indicative: bool = False) -> IntervalResult:
    """The IntervalResult of `cells` (numbers default to each cell's text)."""
    numbers = numbers if numbers is not None else {}
    for c in cells:
        numbers.setdefault(f"{c.comparison}[{c.cell}]" if c.cell else c.comparison, c.text())
    result = IntervalResult(claim, claim_verdict(c.verdict for c in cells), numbers=numbers, detail=detail,
                            instances=len(cells), cells=cells, indicative=indicative)
    result.violations = result.counts["contradicts"]
    return result


def t90(sem: float, n: int) -> float | None:
    """Half-width of the two-sided 90% t-interval from a standard error over `n` values."""
    return float(stats.t.ppf(0.95, n - 1) * sem) if n > 1 else None
