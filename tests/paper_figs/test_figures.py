"""Each figure script draws the paper's numbers and a synthetic results file's (checked on the
plotted data) and writes them as PNG and PDF; tables render to markdown and LaTeX with the best
entries bold."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from experiments.paper.tables import load_table
from paper_figs import fig1b, grad_norms, intervals, lpft_bars, style, theory_figs
from paper_figs.build import FIGURES, build_figures
from paper_figs.ours import cell_groups, claim_results
from paper_figs.tables import best_cells, to_latex, to_markdown
from tests.helpers import seeded_records, write_jsonl

PNG_MAGIC = b"\x89PNG"
PDF_MAGIC = b"%PDF"
PAPER_FIGS = Path(__file__).resolve().parents[2] / "paper_figs"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> list[Path]:
    """A synthetic results folder, written once for the module; the tests only read it."""
    res = tmp_path_factory.mktemp("results")
    write_jsonl(res / "runs.jsonl", seeded_records("small_vit", "digits") + seeded_records("small_resnet", "digits"))
    groups = [{"model": "small_vit", "dataset": "digits", "index": i, "label": lab, "kind": kind, "num_params": 100,
               "param_norm": 2.0, "grad_norm": g, "num_batches": 2, "grad_over_param_norm": g / 2.0,
               "grad_over_sqrt_numel": g / 10.0}
              for i, (lab, kind, g) in enumerate([("embed", "embed", 5.0), ("block0.attn", "middle", 1.0),
                                                  ("block0.mlp", "middle", 0.8), ("head", "head", 9.0)])]
    write_jsonl(res / "gradnorms.jsonl", groups)
    return [res]


def _is_png_and_pdf(paths: list[Path]) -> bool:
    """Every figure is written twice: ``.png`` and ``.pdf`` of one stem."""
    png, pdf = paths
    return (png.suffix == ".png" and png.read_bytes()[:4] == PNG_MAGIC
            and pdf == png.with_suffix(".pdf") and pdf.read_bytes()[:4] == PDF_MAGIC)


def _panels(fig) -> list:
    """The axes a figure shows (left-over grid cells are switched off)."""
    return [ax for ax in fig.axes if ax.axison]


def _heights(ax) -> list[float]:
    return [bar.get_height() for bar in ax.patches]


SMALL_THEORY = {"PROBLEM": dict(d=8, k=2, n=4), "T_MAX": 20.0}


@pytest.fixture
def small_theory_problems(monkeypatch):
    """The theory figures on small problems and a short horizon: what they draw, not the theory, is under test."""
    for name, value in SMALL_THEORY.items():
        monkeypatch.setattr(theory_figs, name, value)


@pytest.fixture(scope="module")
def built(tmp_path_factory, results) -> dict[str, list[Path]]:
    """Every figure of the registry (the tables aside) built once with our results, the theory
    figures on small problems: {figure name: the files `build_figures` wrote for it}."""
    out = tmp_path_factory.mktemp("figures")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in SMALL_THEORY.items():
            mp.setattr(theory_figs, name, value)
        return {n: build_figures([n], out, results=results, progress=False)
                for n in FIGURES.names() if "tables" not in n}


@pytest.mark.parametrize("make, name", [(fig1b.make, "fig1b"), (lpft_bars.make, "lpft_bars"), (grad_norms.make, "fig2")],
                         ids=["fig1b", "lpft_bars", "grad_norms"])
def test_figure_from_paper_only_and_with_ours(make, name, tmp_path, built):
    assert _is_png_and_pdf(make(tmp_path / "paper", results=[]))
    assert _is_png_and_pdf(built[name])  # with ours: the registry's build (fig2 is grad_norms.make, raw norms)


def test_every_figure_is_also_a_pdf(built):
    written = [p for paths in built.values() for p in paths]
    pngs = {p.with_suffix("") for p in written if p.suffix == ".png"}
    assert pngs and pngs == {p.with_suffix("") for p in written if p.suffix == ".pdf"}


def test_fig1b_draws_the_paper_values_then_each_cells_best_runs(results):
    paper = fig1b.paper_values()
    (alone,) = _panels(fig1b.figure(results=[]))
    assert _heights(alone) == pytest.approx([paper[m][s] for m in paper for s in ("id", "ood")])
    assert alone.get_legend_handles_labels()[1] == [style.label(m) for m in paper]
    first, *cells = _panels(fig1b.figure(results=results))
    assert _heights(first) == _heights(alone)
    assert [ax.get_title().split("\n")[0] for ax in cells] == ["ours: small_resnet, digits", "ours: small_vit, digits"]
    rows = cell_groups(results)[("small_vit", "digits")]
    methods = sorted(rows, key=style.order)
    assert _heights(cells[1]) == pytest.approx([100 * rows[m][k] for m in methods for k in ("id_test_mean", "ood_avg_mean")])
    assert "90% interval, 3 seeds" in cells[1].get_title()


def test_lpft_bars_draw_the_slides_and_our_sgd_as_ft(results):
    paper = lpft_bars.paper_values()
    first, _, ours = _panels(lpft_bars.figure(results=results))
    assert _heights(first) == pytest.approx([paper[m][s] for m in ("ft", "lp", "lp_ft") for s in ("id", "ood")])
    assert first.get_legend_handles_labels()[1] == ours.get_legend_handles_labels()[1] == ["FT", "LP", "LP-FT"]
    assert ours.get_legend() is None  # one legend for our cells: on the first
    rows = cell_groups(results)[("small_vit", "digits")]
    assert _heights(ours) == pytest.approx([100 * rows[m][k] for m in ("sgd", "lp", "lp_ft")
                                            for k in ("id_test_mean", "ood_avg_mean")])


@pytest.mark.parametrize("normalization, expected", [("raw", [5.0, 1.0, 0.8, 9.0]), ("param_norm", [2.5, 0.5, 0.4])])
def test_grad_norms_plot_one_point_per_layer_group(results, normalization, expected):
    paper, ours = _panels(grad_norms.figure(results=results, normalization=normalization))
    assert len(paper.patches) == 4 and [t.get_text() for t in paper.get_xticklabels()] == ["SGD-pretrained", "AdamW-pretrained"]
    points = [tuple(c.get_offsets()[0]) for c in ours.collections]
    assert points == [(float(i), y) for i, y in enumerate(expected)]  # the head only in the raw panel
    assert ours.get_title() == "ours: small_vit\non digits" and ours.get_yscale() == "log"


def test_our_panels_are_per_cell_with_90_percent_intervals(results):
    """Fig. 1b's "ours": one panel per (model, dataset, ...) cell, never an average of unlike cells."""
    groups = cell_groups(results)
    assert sorted(groups) == [("small_resnet", "digits"), ("small_vit", "digits")]
    row = groups[("small_vit", "digits")]["sgd_freeze_embed"]
    assert row["n_seeds"] == 3 and row["ood_avg_ci90"] > 0


def test_ours_intervals_figure_shows_each_claims_cells(tmp_path, results, built):
    assert _is_png_and_pdf(built["ours_intervals"])
    assert intervals.make(tmp_path / "none", results=[]) == [] and intervals.figure(results=[]) is None
    panels = [(spec, res) for spec, res in claim_results(results) if any(c.half != 0.0 for c in getattr(res, "cells", []))]
    fig = intervals.figure(results=results)
    assert panels and len(fig.axes) == len(panels)
    for ax, (spec, res) in zip(fig.axes, panels):
        cells = [c for c in res.cells if c.half != 0.0]
        assert [t.get_text() for t in ax.get_yticklabels()] == [f"{c.comparison} {c.cell}" for c in cells]
        markers = [line for line in ax.lines if line.get_marker() == "o"]
        assert [float(line.get_xdata()[0]) for line in markers] == pytest.approx([c.diff for c in cells])
        assert [line.get_color() for line in markers] == [intervals.VERDICT_COLORS[c.verdict] for c in cells]
        assert ax.get_title(loc="left").startswith(f"{spec['id']}: {res.verdict} (")


def test_paper_figs_reaches_our_runs_only_through_experiments():
    """The import direction is paper_figs -> experiments -> {theory, deepnet}."""
    for path in PAPER_FIGS.glob("*.py"):
        assert not re.search(r"^\s*(from|import)\s+deepnet", path.read_text(), re.M), path.name


def test_fig1b_paper_values_add_the_printed_gains():
    vals = fig1b.paper_values()
    assert vals["sgd"] == {"id": 90.0, "ood": 67.9}
    assert vals["sgd_freeze_embed_no_momentum"]["ood"] == pytest.approx(76.9)


def test_theory_figure(built, small_theory_problems):
    assert _is_png_and_pdf(built["theory_ood_over_time"])
    (ax,) = theory_figs.ood_over_time_figure().axes
    assert [line.get_label() for line in ax.get_lines()] == ["LP", "FT", "LP-FT"]
    for line in ax.get_lines():
        t, loss = line.get_xdata(), line.get_ydata()
        assert len(t) == len(loss) == 60 and t[0] == 0.0 and t[-1] == pytest.approx(theory_figs.T_MAX)
        assert np.all(np.isfinite(loss)) and np.all(loss > 0)


def test_tables_bold_the_best_entry_per_group():
    t1 = load_table("sgd:table1")
    bold = best_cells(t1)
    row = next(i for i, r in enumerate(t1.rows) if r["model"] == "clip_vit_l14" and r["method"] == "sgd_freeze_embed")
    assert (row, "living17") in bold and (row, "avg") in bold  # 90.5 and 83.0, as the paper bolds
    md, tex = to_markdown(t1), to_latex(t1)
    assert "**90.5 (+6.3)**" in md and r"\textbf{90.5 (+6.3)}" in tex
    mem = best_cells(load_table("sgd:table4"))  # memory: lowest is best
    assert (3, "clip_vit_b16") in mem


def test_unknown_figure_name_fails_before_work(tmp_path):
    with pytest.raises(KeyError, match="known: "):
        build_figures(["fig99"], tmp_path)
    assert "fig1b" in FIGURES and "tables" in FIGURES


def test_our_results_render_as_a_table(tmp_path, results):
    from paper_figs.tables import render_our_tables

    assert render_our_tables(tmp_path, results=[]) == []
    md, csv_path = render_our_tables(tmp_path, results=results)
    text = md.read_text()
    assert "sgd_freeze_embed" in text and "lp_ft" in text
    assert csv_path.read_text().count("\n") == 11  # header + one row per model and method (best LR chosen)
