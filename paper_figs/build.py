"""The figure registry: name -> function(out_dir, results) -> written files, and `build_figures`."""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable, Iterable

from tqdm import tqdm

from common.registry import Registry
from paper_figs import fig1b, grad_norms, intervals, lpft_bars, tables, theory_figs

FigureFn = Callable[..., list[Path]]
FIGURES: Registry[FigureFn] = Registry("figure")
FIGURES.add("tables", tables.render_paper_tables)
FIGURES.add("our_tables", tables.render_our_tables)
FIGURES.add("fig1b", fig1b.make)
FIGURES.add("fig2", partial(grad_norms.make, normalization="raw"))          # Figs. 2, 3, 6
FIGURES.add("fig4", partial(grad_norms.make, normalization="param_norm"))   # Figs. 4, 7
FIGURES.add("fig5", partial(grad_norms.make, normalization="sqrt_numel"))   # Figs. 5, 8
FIGURES.add("lpft_bars", lpft_bars.make)
FIGURES.add("ours_intervals", intervals.make)                 # the ledger's paired intervals per claim
FIGURES.add("theory_ood_over_time", theory_figs.ood_over_time)
FIGURES.add("theory_ratio_vs_eps", theory_figs.ratio_vs_eps)
FIGURES.add("theory_bound_vs_actual", theory_figs.bound_vs_actual)


def build_figures(names: list[str] | None, out_dir: Path, results: Iterable[str | Path] | None = None,
                  progress: bool = True) -> list[Path]:
    """Make the named figures (all when `names` is None) into `out_dir`; returns the files written."""
    names = names or FIGURES.names()
    fns = [(n, FIGURES.get(n)) for n in names]  # unknown names fail before any work
    results = list(results or [])
    written: list[Path] = []
    for name, fn in tqdm(fns, desc="figures", unit="fig", disable=not progress):
        written += fn(Path(out_dir), results=results)
    return written
