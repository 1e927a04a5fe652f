"""SGD paper Fig. 1b: ID and OOD accuracy per method on CLIP ViT-B/16 averaged over 5 datasets
(paper: SGD absolute, others SGD + printed gain), beside ours: one panel per cell of our runs
(model, dataset, ...), each method's best-on-ID-val accuracy with its 90% interval over seeds.
Unlike cells are never averaged together."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from matplotlib.figure import Figure

from experiments.paper.tables import load_table
from paper_figs import style
from paper_figs.ours import cell_groups

SPLITS = {"id": "id_test", "ood": "ood_avg"}


def paper_values() -> dict[str, dict[str, float]]:
    table = load_table("sgd:fig1b")
    base = table.row(method="sgd")
    out = {}
    for row in table.rows:
        out[row["method"]] = {split: (row[split] if row[split] is not None else base[split] + row[f"{split}_delta"])
                              for split in ("id", "ood")}
    return out


def bars(ax, values: dict[str, dict[str, float]], title: str,
         errors: dict[str, dict[str, float]] | None = None, legend: bool = True) -> None:
    """Grouped bars, ID and OOD, one bar per method (values in %); `errors`: 90% half-widths (error bars)."""
    methods = list(values)
    x = np.arange(2)
    width = 0.8 / max(len(methods), 1)
    for j, m in enumerate(methods):
        ys = [values[m].get("id", np.nan), values[m].get("ood", np.nan)]
        err = [errors[m].get(s, np.nan) for s in ("id", "ood")] if errors and m in errors else None
        drawn = ax.bar(x + j * width, ys, width, yerr=err, capsize=2, error_kw={"lw": 0.8},
                       label=style.label(m), color=style.color(m))
        ax.bar_label(drawn, fmt="%.1f", fontsize=5 if errors is not None else 6)
    ax.set_xticks(x + width * (len(methods) - 1) / 2, ["ID", "OOD"])
    finite = [v for m in methods for v in values[m].values() if v == v]
    if finite:  # start the axis near the data so that the method gaps are visible
        ax.set_ylim(max(0.0, min(finite) - 10.0), min(100.0, max(finite) + 5.0))
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=8)
    if legend:
        ax.legend(fontsize=6)


def paper_and_cells(paper: dict[str, dict[str, float]], paper_title: str, results, methods: list[str] | None,
                    rename: Callable[[str], str] = str) -> Figure:
    """The paper's panel, then one panel per cell of our runs (``methods``, all when None, in
    their order; ``rename`` maps our method names to the paper's).

    Returns
    -------
    matplotlib.figure.Figure
        Its first axes is the paper's panel; the next ones are our cells in sorted order, each
        titled ``ours: <cell>``; axes left over are switched off.
    """
    groups = cell_groups(results)
    ncols = min(4, 1 + len(groups))
    nrows = -(-(1 + len(groups)) // ncols)
    fig, axes = style.plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.3 * nrows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    bars(flat[0], paper, paper_title)
    for i, (key, by_method) in enumerate(sorted(groups.items())):
        chosen = [m for m in (methods or sorted(by_method, key=style.order)) if m in by_method]
        values = {rename(m): {s: 100.0 * (by_method[m].get(f"{k}_mean") or np.nan) for s, k in SPLITS.items()}
                  for m in chosen}
        errors = {rename(m): {s: 100.0 * (by_method[m].get(f"{k}_ci90") or np.nan) for s, k in SPLITS.items()}
                  for m in chosen}
        seeds = sorted({by_method[m]["n_seeds"] for m in chosen})
        spread = "90% interval" if seeds and seeds[0] > 1 else "no interval for one seed"
        bars(flat[1 + i], values, f"ours: {', '.join(key)}\n({spread}, {'/'.join(map(str, seeds))} seeds)",
             errors, legend=i == 0)
    for ax in flat[1 + len(groups):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def figure(results=None) -> Figure:
    """Fig. 1b: the paper's bars beside our cells (:func:`paper_and_cells`)."""
    return paper_and_cells(paper_values(), "paper: CLIP ViT-B/16, 5 datasets", results, None)


def make(out_dir: Path, results=None) -> list[Path]:
    """Write :func:`figure` as ``fig1b.png`` and ``.pdf`` in ``out_dir``; returns both paths."""
    return style.save(figure(results), out_dir / "fig1b.png")
