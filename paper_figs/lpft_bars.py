"""LP-FT slides: average ID and OOD accuracy of FT, LP and LP-FT (10 datasets), beside ours: one
panel per cell of our runs with 90% intervals over seeds (FT = our SGD fine-tuning)."""
from __future__ import annotations

from pathlib import Path

from experiments.paper.tables import load_table
from paper_figs.fig1b import paper_and_cells


def paper_values() -> dict[str, dict[str, float]]:
    id_t, ood_t = load_table("lpft:id"), load_table("lpft:ood")
    return {m: {"id": id_t.value("avg", method=m), "ood": ood_t.value("avg", method=m)} for m in ("ft", "lp", "lp_ft")}


def make(out_dir: Path, results=None) -> list[Path]:
    return paper_and_cells(paper_values(), "paper (slides): average over datasets", results, ["sgd", "lp", "lp_ft"],
                           out_dir / "lpft_bars.png", rename=lambda m: "ft" if m == "sgd" else m)
