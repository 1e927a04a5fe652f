"""Render the papers' tables (and ours) as markdown and LaTeX, best entries in bold as the paper does.

"Best" is the highest value of each numeric column within a group of rows (the paper bolds per
model in Tables 1-2 and 11-12, per pretraining in 13-14, per column elsewhere); a smaller-is-better
metric (GPU memory) bolds the lowest. Ties are all bold. The paper additionally bolds entries
within its confidence intervals; we bold exact maxima only and say so in the caption.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from common.io import write_text
from experiments.paper.tables import PaperTable, load_table, table_ids

LOWER_IS_BETTER = {"memory_gb"}


def _group_keys(table: PaperTable) -> tuple[str, ...]:
    if table.delta_group is not None:
        return table.delta_group
    return tuple(k for k in table.keys if k in ("model", "pretrain", "split"))


def best_cells(table: PaperTable) -> set[tuple[int, str]]:
    """(row index, column) of every best entry."""
    cols = list(table.columns) + ([table.avg] if table.avg else [])
    pick = min if table.metric in LOWER_IS_BETTER else max
    best = set()
    groups: dict[tuple, list[int]] = {}
    for i, row in enumerate(table.rows):
        groups.setdefault(tuple(row[k] for k in _group_keys(table)), []).append(i)
    for members in groups.values():
        for col in cols:
            vals = [table.rows[i][col] for i in members if isinstance(table.rows[i][col], float)]
            if len(vals) < 2:
                continue
            target = pick(vals)
            best |= {(i, col) for i in members if table.rows[i][col] == target}
    return best


def _cell_text(row: dict[str, Any], col: str) -> str:
    v = row[col]
    if v is None:
        return ""
    text = f"{v:.1f}" if isinstance(v, float) else str(v)
    delta = row.get(f"{col}_delta")
    return f"{text} ({delta:+.1f})" if isinstance(delta, float) else text


def _columns(table: PaperTable) -> list[str]:
    return list(table.keys) + list(table.columns) + ([table.avg] if table.avg else [])


def to_markdown(table: PaperTable) -> str:
    bold = best_cells(table)
    cols = _columns(table)
    lines = [f"**{table.id}** - {table.caption}. Bold: best in its group (exact maximum).", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for i, row in enumerate(table.rows):
        cells = [(f"**{_cell_text(row, c)}**" if (i, c) in bold else _cell_text(row, c)) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    return text.replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")


def to_latex(table: PaperTable) -> str:
    bold = best_cells(table)
    cols = _columns(table)
    lines = [r"\begin{tabular}{" + "l" * len(table.keys) + "r" * (len(cols) - len(table.keys)) + "}", r"\toprule",
             " & ".join(_latex_escape(c) for c in cols) + r" \\", r"\midrule"]
    for i, row in enumerate(table.rows):
        cells = [_latex_escape(_cell_text(row, c)) for c in cols]
        cells = [rf"\textbf{{{t}}}" if (i, c) in bold and t else t for t, c in zip(cells, cols)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def render_paper_tables(out_dir: Path, results=None) -> list[Path]:
    """Every digitized table as ``<id>.md`` and ``<id>.tex`` (':' -> '_')."""
    paths = []
    for tid in table_ids():
        table = load_table(tid)
        stem = tid.replace(":", "_")
        for ext, fn in (("md", to_markdown), ("tex", to_latex)):
            path = out_dir / "tables" / f"{stem}.{ext}"
            write_text(path, fn(table))
            paths.append(path)
    return paths


def render_our_tables(out_dir: Path, results=None) -> list[Path]:
    """Our runs as one table (best LR on ID val, mean and 90% interval over seeds) in markdown and
    CSV, via ``experiments.ledger``; nothing is written when there are no records."""
    from paper_figs.ours import our_tables

    text = our_tables(results)
    if text is None:
        return []
    paths = [out_dir / "tables" / "ours.md", out_dir / "tables" / "ours.csv"]
    write_text(paths[0], text["md"])
    write_text(paths[1], text["csv"])
    return paths
