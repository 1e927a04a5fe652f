"""The collected rows as tables: CSV, JSON, markdown, LaTeX, a paper-style pivot, paired differences.

Rows are the output of :func:`deepnet.sweep.collect.summarize` (or of
:func:`deepnet.sweep.collect.paired_differences` for :func:`differences_to_markdown`): settings,
then ``<metric>_mean`` / ``<metric>_ci90`` pairs with accuracies as fractions. Machine formats
(CSV, JSON) keep the fractions; formats for reading show percent as ``mean ± 90% half-width``.
"""
from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("md", "csv", "latex", "json")
_LATEX_SPECIALS = {c: "\\" + c for c in "&%$#_{}"}


def to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a DataFrame, one column per key in order of appearance (None where a row has no
    value; accuracies as fractions)."""
    import pandas as pd  # imported here: every command line imports this module for FORMATS

    frame = pd.DataFrame(rows)
    return frame.astype(object).where(frame.notna(), None)


def display_frame(rows: list[dict[str, Any]], pm: str = "±", text=str) -> pd.DataFrame:
    """The rows for reading: settings as ``text(value)``, each metric with a value in some row as
    one column of ``mean pm half-width`` in percent (empty where there is none)."""
    import pandas as pd

    frame = to_frame(rows)
    settings = [c for c in frame.columns if not c.endswith(("_mean", "_ci90"))]
    metrics = [c[: -len("_mean")] for c in frame.columns if c.endswith("_mean") and frame[c].notna().any()]
    shown = pd.DataFrame({c: [text("" if v is None else v) for v in frame[c]] for c in settings})
    for m in metrics:
        halves = frame[f"{m}_ci90"] if f"{m}_ci90" in frame else [None] * len(frame)
        shown[text(m)] = [_percent(c, h, pm) for c, h in zip(frame[f"{m}_mean"], halves)]
    return shown


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV (accuracies as fractions in [0, 1]; empty cells where there is no value)."""
    return to_frame(rows).to_csv(index=False, lineterminator="\n")


def to_json(rows: list[dict[str, Any]]) -> str:
    """The rows as a JSON list of objects (accuracies as fractions; null where there is no value)."""
    return json.dumps(to_frame(rows).to_dict(orient="records"), indent=2) + "\n"


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table, accuracies in percent as ``mean ± 90% half-width``."""
    if not rows:
        return "(no results)\n"
    shown = display_frame(rows)
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(values) + " |" for values in shown.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def to_latex(rows: list[dict[str, Any]]) -> str:
    """The rows as a LaTeX ``tabular`` (booktabs rules), accuracies in percent as
    ``mean $\\pm$ 90% half-width``, special characters of names escaped."""
    if not rows:
        return "% no results\n"
    shown = display_frame(rows, pm="$\\pm$", text=lambda v: "".join(_LATEX_SPECIALS.get(c, c) for c in str(v)))
    return shown.to_latex(index=False, escape=False)


def to_pivot_markdown(rows: list[dict[str, Any]], metric: str, methods: list[str] | None = None) -> str:
    """One metric as a paper-style table: a row per (model, dataset, other varying settings), a
    column per method (``methods`` in that order, else as they appear), cells ``mean ± 90%
    half-width`` in percent."""
    if not rows:
        return "(no results)\n"
    if not any(f"{metric}_mean" in row for row in rows):
        known = sorted({c[: -len("_mean")] for row in rows for c in row if c.endswith("_mean")})
        raise ValueError(f"no metric {metric!r} in these results; known: {', '.join(known)}")
    settings = [c for c in rows[0] if c not in ("method", "n_seeds", "n_lrs", "n_diverged", "lr")
                and not c.endswith(("_mean", "_ci90"))]
    methods = methods or list(dict.fromkeys(row["method"] for row in rows))
    table: dict[tuple, dict[str, str]] = {}
    for row in rows:
        cells = table.setdefault(tuple(str(row[c]) for c in settings), {})
        cells[row["method"]] = _percent(row.get(f"{metric}_mean"), row.get(f"{metric}_ci90"))
    lines = [
        f"| {' | '.join(settings + methods)} |",
        "|" + "---|" * (len(settings) + len(methods)),
    ]
    lines += [f"| {' | '.join(list(key) + [cells.get(m, '') for m in methods])} |" for key, cells in table.items()]
    return "\n".join(lines) + "\n"


def differences_to_markdown(rows: list[dict[str, Any]]) -> str:
    """Paired differences as markdown, in percentage points: ``+mean ± 90% half-width (n)``."""
    if not rows:
        return "(no results)\n"
    settings = [c for c in rows[0] if not c.endswith(("_mean", "_ci90", "_n"))]
    pairs = [c[: -len("_mean")] for c in rows[0] if c.endswith("_mean")]
    lines = [f"| {' | '.join(settings + [p.replace('-', ' − ') for p in pairs])} |",
             "|" + "---|" * (len(settings) + len(pairs))]
    for row in rows:
        cells = [str(row[c]) for c in settings]
        for p in pairs:
            centre, half, n = row[f"{p}_mean"], row[f"{p}_ci90"], row[f"{p}_n"]
            cells.append("" if centre is None else
                         f"{100 * centre:+.1f}" + (f" ± {100 * half:.1f}" if half is not None else "") + f" ({n})")
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def _percent(centre: float | None, half: float | None, pm: str = "±") -> str:
    if centre is None or (isinstance(centre, float) and math.isnan(centre)):
        return ""
    has_half = half is not None and not (isinstance(half, float) and math.isnan(half))
    return f"{100 * centre:.1f}" + (f" {pm} {100 * half:.1f}" if has_half else "")
