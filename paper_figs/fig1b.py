"""SGD paper Fig. 1b: ID and OOD accuracy per method on CLIP ViT-B/16 averaged over 5 datasets
(paper: SGD absolute, others SGD + printed gain), beside ours (per-method mean over our runs)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.paper.tables import load_table
from paper_figs import style
from paper_figs.ours import method_averages


def paper_values() -> dict[str, dict[str, float]]:
    table = load_table("sgd:fig1b")
    base = table.row(method="sgd")
    out = {}
    for row in table.rows:
        out[row["method"]] = {split: (row[split] if row[split] is not None else base[split] + row[f"{split}_delta"])
                              for split in ("id", "ood")}
    return out


def _bars(ax, values: dict[str, dict[str, float]], title: str) -> None:
    methods = list(values)
    x = np.arange(2)
    width = 0.8 / max(len(methods), 1)
    for j, m in enumerate(methods):
        ys = [values[m].get("id", np.nan), values[m].get("ood", np.nan)]
        bars = ax.bar(x + j * width, ys, width, label=style.label(m), color=style.color(m))
        ax.bar_label(bars, fmt="%.1f", fontsize=6)
    ax.set_xticks(x + width * (len(methods) - 1) / 2, ["ID", "OOD"])
    finite = [v for m in methods for v in values[m].values() if v == v]
    if finite:  # start the axis near the data so that the method gaps are visible
        ax.set_ylim(max(0.0, min(finite) - 10.0), min(100.0, max(finite) + 5.0))
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=7)


def make(out_dir: Path, results=None) -> list[Path]:
    ours = {m: {"id": v.get("id_test", np.nan), "ood": v.get("ood_avg", np.nan)} for m, v in method_averages(results).items()}
    fig, axes = style.plt.subplots(1, 2 if ours else 1, figsize=(9 if ours else 5, 3.2), squeeze=False)
    _bars(axes[0][0], paper_values(), "paper: CLIP ViT-B/16, 5 datasets")
    if ours:
        _bars(axes[0][1], ours, "ours: mean over our runs")
    return [style.save(fig, out_dir / "fig1b.png")]
