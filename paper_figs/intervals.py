"""Our runs against each claim: every (claim, cell) paired difference with its 90% interval, as the
ledger judges it (green: supports, red: contradicts, grey: unresolved; a hollow marker: one seed,
no interval). Exact comparisons (memory accounting) have no interval and are left to the ledger."""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from paper_figs import style
from paper_figs.ours import claim_results

VERDICT_COLORS = {"supports": "#2ca02c", "contradicts": "#d62728", "unresolved": "#7f7f7f"}


def figure(results=None) -> Figure | None:
    """One panel per claim with interval cells in our runs, None when no claim has one.

    Returns
    -------
    matplotlib.figure.Figure or None
        Each axes holds one marker per cell (y = its row, x = the paired difference; an error bar
        of its 90% half-width, or a hollow marker for one seed) and a vertical line per threshold.
    """
    panels = [(spec, res) for spec, res in claim_results(results)
              if any(c.half != 0.0 for c in getattr(res, "cells", []))]
    if not panels:
        return None
    heights = [1.0 + 0.22 * sum(c.half != 0.0 for c in res.cells) for _, res in panels]
    fig, axes = style.plt.subplots(len(panels), 1, figsize=(8, sum(heights)), squeeze=False,
                                   gridspec_kw={"height_ratios": heights})
    for ax, (spec, res) in zip(axes[:, 0], panels):
        cells = [c for c in res.cells if c.half != 0.0]
        for y, c in enumerate(cells):
            color = VERDICT_COLORS[c.verdict]
            if c.half is None:
                ax.plot(c.diff, y, "o", mfc="none", color=color)
            else:
                ax.errorbar(c.diff, y, xerr=c.half, fmt="o", color=color, capsize=2, ms=3)
        for t in sorted({c.threshold for c in cells}):
            ax.axvline(t, color="black", lw=0.6)
        ax.set_yticks(range(len(cells)), [f"{c.comparison} {c.cell}" for c in cells], fontsize=5)
        ax.invert_yaxis()
        n = res.counts
        ax.set_title(f"{spec['id']}: {res.verdict} ({n['supports']} support / {n['contradicts']} contradict / "
                     f"{n['unresolved']} unresolved)", fontsize=7, loc="left")
        ax.tick_params(axis="x", labelsize=6)
    axes[-1, 0].set_xlabel("lhs - rhs, paired by seed (mean and 90% t-interval)")
    fig.tight_layout()
    return fig


def make(out_dir: Path, results=None) -> list[Path]:
    """Write :func:`figure` as ``ours_intervals.png`` and ``.pdf`` (nothing without a panel)."""
    fig = figure(results)
    return [] if fig is None else style.save(fig, out_dir / "ours_intervals.png")
