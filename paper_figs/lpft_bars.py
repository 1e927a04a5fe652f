"""LP-FT slides: average ID and OOD accuracy of FT, LP and LP-FT (10 datasets), beside ours: one
panel per cell of our runs with 90% intervals over seeds (FT = our SGD fine-tuning)."""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from experiments.paper.tables import load_table
from paper_figs import style
from paper_figs.fig1b import paper_and_cells


def paper_values() -> dict[str, dict[str, float]]:
    id_t, ood_t = load_table("lpft:id"), load_table("lpft:ood")
    return {m: {"id": id_t.value("avg", method=m), "ood": ood_t.value("avg", method=m)} for m in ("ft", "lp", "lp_ft")}


def figure(results=None) -> Figure:
    """The slides' bars beside our cells (:func:`paper_figs.fig1b.paper_and_cells`), SGD named FT."""
    return paper_and_cells(paper_values(), "paper (slides): average over datasets", results, ["sgd", "lp", "lp_ft"],
                           rename=lambda m: "ft" if m == "sgd" else m)


def make(out_dir: Path, results=None) -> list[Path]:
    """Write :func:`figure` as ``lpft_bars.png`` and ``.pdf`` in ``out_dir``; returns both paths."""
    return style.save(figure(results), out_dir / "lpft_bars.png")
