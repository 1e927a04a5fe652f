"""LP-FT slides: average ID and OOD accuracy of FT, LP and LP-FT (10 datasets), beside ours
(FT = our SGD fine-tuning)."""
from __future__ import annotations

from pathlib import Path

from experiments.paper.tables import load_table
from paper_figs import style
from paper_figs.fig1b import _bars
from paper_figs.ours import method_averages


def paper_values() -> dict[str, dict[str, float]]:
    id_t, ood_t = load_table("lpft:id"), load_table("lpft:ood")
    return {m: {"id": id_t.value("avg", method=m), "ood": ood_t.value("avg", method=m)} for m in ("ft", "lp", "lp_ft")}


def make(out_dir: Path, results=None) -> list[Path]:
    avg = method_averages(results)
    ours = {("ft" if m == "sgd" else m): {"id": avg[m].get("id_test"), "ood": avg[m].get("ood_avg")}
            for m in ("sgd", "lp", "lp_ft") if m in avg}
    fig, axes = style.plt.subplots(1, 2 if ours else 1, figsize=(9 if ours else 5, 3.2), squeeze=False)
    _bars(axes[0][0], paper_values(), "paper (slides): average over datasets")
    if ours:
        _bars(axes[0][1], ours, "ours")
    return [style.save(fig, out_dir / "lpft_bars.png")]
