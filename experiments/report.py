"""Render the claims ledger: a console table, a markdown report and a JSON dump (written atomically)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.io import write_text
from experiments.ledger import LedgerRow

LINKS = ("theory", "paper", "ours")



def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _numbers(result) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in result.numbers.items())


def console_table(rows: list[LedgerRow]) -> str:
    """One line per claim: id, the three verdicts, and the statement."""
    lines = [f"{'claim':<6}{'theory':<9}{'paper':<9}{'ours':<9}statement", "-" * 100]
    for r in rows:
        lines.append(f"{r.claim:<6}{r.theory.verdict:<9}{r.paper.verdict:<9}{r.ours.verdict:<9}{r.statement}")
    counts = {link: {} for link in LINKS}
    for r in rows:
        for link in LINKS:
            v = getattr(r, link).verdict
            counts[link][v] = counts[link].get(v, 0) + 1
    lines.append("-" * 100)
    for link in LINKS:
        lines.append(f"{link:<7}: " + ", ".join(f"{n} {v}" for v, n in sorted(counts[link].items())))
    return "\n".join(lines)


def console_details(rows: list[LedgerRow]) -> str:
    """The numbers behind each verdict, one block per claim."""
    out = []
    for r in rows:
        out.append(f"{r.claim}: {r.statement}")
        for link in LINKS:
            res = getattr(r, link)
            out.append(f"  {link:<6} {res.verdict:<8} {res.detail}")
            if res.numbers:
                out.append(f"         numbers: {_numbers(res)}")
    return "\n".join(out)


def markdown_report(rows: list[LedgerRow], header: str = "") -> str:
    """The ledger as markdown: a summary table, then each claim's details and numbers."""
    md = ["# Claims ledger", ""]
    if header:
        md += [header, ""]
    md += ["'missing' = the link is not built or has no data yet; it never counts as passing.", "",
           "| claim | statement | theory | paper | ours |", "|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r.claim} | {r.statement} | {r.theory.verdict} | {r.paper.verdict} | {r.ours.verdict} |")
    for r in rows:
        md += ["", f"## {r.claim}: {r.statement}", ""]
        for link in LINKS:
            res = getattr(r, link)
            extra = f" ({res.instances} instances, {res.violations} violations)" if res.instances else ""
            md.append(f"- **{link}: {res.verdict}**{extra}. {res.detail}")
            if res.numbers:
                md.append(f"  - numbers: {_numbers(res)}")
    return "\n".join(md) + "\n"


def write_reports(rows: list[LedgerRow], out_dir: Path, header: str = "") -> dict[str, Path]:
    """Write ``ledger.md`` and ``ledger.json`` into `out_dir`; returns their paths."""
    paths = {"markdown": out_dir / "ledger.md", "json": out_dir / "ledger.json"}
    write_text(paths["markdown"], markdown_report(rows, header))
    write_text(paths["json"], json.dumps([r.to_dict() for r in rows], indent=1, default=str) + "\n")
    return paths
