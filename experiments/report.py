"""Render the claims ledger: a console table, a markdown report and a JSON dump (written atomically)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.io import write_text
from experiments.ledger import LedgerRow
from experiments.verdicts import IntervalResult

LINKS = ("theory", "paper", "ours")
LEGEND = ("s/c/u = cells that support / contradict / leave unresolved the claim (ours: 90% t-interval of the "
          "difference paired by seed; theory C9-C12: over random problems; paper: over the print rounding); "
          "* = indicative (too few problems); a verdict never comes from unresolved cells; 'missing' never "
          "counts as passing.")
_WIDTH = 24


def verdict_text(result) -> str:
    """The verdict word, with the cell counts ``s/c/u`` for an interval-judged link (``*``: indicative)."""
    if not isinstance(result, IntervalResult):
        return result.verdict
    n = result.counts
    return f"{result.verdict} {n['supports']}/{n['contradicts']}/{n['unresolved']}" + ("*" if result.indicative else "")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _numbers(result) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in result.numbers.items())


def console_table(rows: list[LedgerRow]) -> str:
    """One line per claim: id, the three verdicts (with their cell counts), and the statement."""
    lines = [f"{'claim':<6}{'theory':<{_WIDTH}}{'paper':<{_WIDTH}}{'ours':<{_WIDTH}}statement", "-" * 140]
    for r in rows:
        lines.append(f"{r.claim:<6}" + "".join(f"{verdict_text(getattr(r, link)):<{_WIDTH}}" for link in LINKS)
                     + r.statement)
    counts: dict[str, dict[str, int]] = {link: {} for link in LINKS}
    for r in rows:
        for link in LINKS:
            v = getattr(r, link).verdict
            counts[link][v] = counts[link].get(v, 0) + 1
    lines.append("-" * 140)
    for link in LINKS:
        lines.append(f"{link:<7}: " + ", ".join(f"{n} {v}" for v, n in sorted(counts[link].items())))
    return "\n".join(lines + [LEGEND])


def console_details(rows: list[LedgerRow]) -> str:
    """The numbers behind each verdict, one block per claim."""
    out = []
    for r in rows:
        out.append(f"{r.claim}: {r.statement}")
        for link in LINKS:
            res = getattr(r, link)
            out.append(f"  {link:<6} {verdict_text(res):<20} {res.detail}")
            if res.numbers:
                out.append(f"         numbers: {_numbers(res)}")
    return "\n".join(out)


def markdown_report(rows: list[LedgerRow], header: str = "") -> str:
    """The ledger as markdown: a summary table, then each claim's details and numbers."""
    md = ["# Claims ledger", ""]
    if header:
        md += [header, ""]
    md += [LEGEND, "", "| claim | statement | theory | paper | ours |", "|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r.claim} | {r.statement} | " + " | ".join(verdict_text(getattr(r, k)) for k in LINKS) + " |")
    for r in rows:
        md += ["", f"## {r.claim}: {r.statement}", ""]
        for link in LINKS:
            res = getattr(r, link)
            extra = f" ({res.instances} instances, {res.violations} violations)" if res.instances and not isinstance(res, IntervalResult) else ""
            md.append(f"- **{link}: {verdict_text(res)}**{extra}. {res.detail}")
            if res.numbers:
                md.append(f"  - numbers: {_numbers(res)}")
    return "\n".join(md) + "\n"


def write_reports(rows: list[LedgerRow], out_dir: Path, header: str = "") -> dict[str, Path]:
    """Write ``ledger.md`` and ``ledger.json`` into `out_dir`; returns their paths."""
    paths = {"markdown": out_dir / "ledger.md", "json": out_dir / "ledger.json"}
    write_text(paths["markdown"], markdown_report(rows, header))
    write_text(paths["json"], json.dumps([r.to_dict() for r in rows], indent=1, default=str) + "\n")
    return paths
