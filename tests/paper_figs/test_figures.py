"""Each figure script writes a non-empty image from the paper's numbers and from a synthetic results
file; tables render to markdown and LaTeX with the best entries bold."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from experiments.paper.tables import load_table
from paper_figs import fig1b, grad_norms, intervals, lpft_bars, theory_figs
from paper_figs.build import FIGURES, build_figures
from paper_figs.ours import cell_groups
from paper_figs.tables import best_cells, to_latex, to_markdown
from tests.helpers import seeded_records, write_jsonl

PNG_MAGIC = b"\x89PNG"
PDF_MAGIC = b"%PDF"
PAPER_FIGS = Path(__file__).resolve().parents[2] / "paper_figs"


@pytest.fixture
def results(tmp_path: Path) -> list[Path]:
    res = tmp_path / "results"
    res.mkdir()
    write_jsonl(res / "runs.jsonl", seeded_records("small_vit", "digits") + seeded_records("small_resnet", "digits"))
    groups = [{"label": lab, "kind": kind, "num_params": 100, "param_norm": 2.0, "grad_norm": g, "num_batches": 2,
               "grad_over_param_norm": g / 2.0, "grad_over_sqrt_numel": g / 10.0}
              for lab, kind, g in [("embed", "embed", 5.0), ("block0.attn", "middle", 1.0), ("block0.mlp", "middle", 0.8), ("head", "head", 9.0)]]
    (res / "grad_norms_small_vit.jsonl").write_text(json.dumps({"model": "small_vit", "dataset": "digits", "groups": groups}) + "\n")
    return [res]


def _is_png(path: Path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:4] == PNG_MAGIC


def _is_png_and_pdf(paths: list[Path]) -> bool:
    """Every figure is written twice: ``.png`` and ``.pdf`` of one stem."""
    png, pdf = paths
    return _is_png(png) and pdf == png.with_suffix(".pdf") and pdf.read_bytes()[:4] == PDF_MAGIC


@pytest.mark.parametrize("make", [fig1b.make, lpft_bars.make, grad_norms.make], ids=["fig1b", "lpft_bars", "grad_norms"])
def test_figure_from_paper_only_and_with_ours(make, tmp_path, results):
    assert _is_png_and_pdf(make(tmp_path / "paper", results=[]))
    assert _is_png_and_pdf(make(tmp_path / "ours", results=results))


def test_every_figure_is_also_a_pdf(tmp_path, results):
    written = build_figures([n for n in FIGURES.names() if "tables" not in n], tmp_path, results=results, progress=False)
    pngs = {p.with_suffix("") for p in written if p.suffix == ".png"}
    assert pngs and pngs == {p.with_suffix("") for p in written if p.suffix == ".pdf"}


def test_our_panels_are_per_cell_with_90_percent_intervals(results):
    """Fig. 1b's "ours": one panel per (model, dataset, ...) cell, never an average of unlike cells."""
    groups = cell_groups(results)
    assert sorted(groups) == [("small_resnet", "digits"), ("small_vit", "digits")]
    row = groups[("small_vit", "digits")]["sgd_freeze_embed"]
    assert row["n_seeds"] == 3 and row["ood_avg_ci90"] > 0


def test_ours_intervals_figure_shows_each_claims_cells(tmp_path, results):
    assert _is_png_and_pdf(intervals.make(tmp_path, results=results))
    assert intervals.make(tmp_path / "none", results=[]) == []


def test_paper_figs_reaches_our_runs_only_through_experiments():
    """The import direction is paper_figs -> experiments -> {theory, deepnet}."""
    for path in PAPER_FIGS.glob("*.py"):
        assert not re.search(r"^\s*(from|import)\s+deepnet", path.read_text(), re.M), path.name


def test_fig1b_paper_values_add_the_printed_gains():
    vals = fig1b.paper_values()
    assert vals["sgd"] == {"id": 90.0, "ood": 67.9}
    assert vals["sgd_freeze_embed_no_momentum"]["ood"] == pytest.approx(76.9)


def test_theory_figure(tmp_path):
    assert _is_png_and_pdf(theory_figs.ood_over_time(tmp_path))


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
