"""Each figure script writes a non-empty image from the paper's numbers and from a synthetic results
file; tables render to markdown and LaTeX with the best entries bold."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.paper.tables import load_table
from paper_figs import fig1b, grad_norms, lpft_bars, theory_figs
from paper_figs.build import FIGURES, build_figures
from paper_figs.tables import best_cells, to_latex, to_markdown
from tests.experiments.conftest import RUNS, record

PNG_MAGIC = b"\x89PNG"


@pytest.fixture
def results(tmp_path: Path) -> list[Path]:
    res = tmp_path / "results"
    res.mkdir()
    (res / "runs.jsonl").write_text("\n".join(json.dumps(record("small_vit", "digits", *r)) for r in RUNS) + "\n")
    groups = [{"label": lab, "kind": kind, "num_params": 100, "param_norm": 2.0, "grad_norm": g, "num_batches": 2,
               "grad_over_param_norm": g / 2.0, "grad_over_sqrt_numel": g / 10.0}
              for lab, kind, g in [("embed", "embed", 5.0), ("block0.attn", "middle", 1.0), ("block0.mlp", "middle", 0.8), ("head", "head", 9.0)]]
    (res / "grad_norms_small_vit.jsonl").write_text(json.dumps({"model": "small_vit", "dataset": "digits", "groups": groups}) + "\n")
    return [res]


def _is_png(path: Path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:4] == PNG_MAGIC


@pytest.mark.parametrize("make", [fig1b.make, lpft_bars.make, grad_norms.make], ids=["fig1b", "lpft_bars", "grad_norms"])
def test_figure_from_paper_only_and_with_ours(make, tmp_path, results):
    (paper_only,) = make(tmp_path / "paper", results=[])
    (with_ours,) = make(tmp_path / "ours", results=results)
    assert _is_png(paper_only) and _is_png(with_ours)


def test_fig1b_paper_values_add_the_printed_gains():
    vals = fig1b.paper_values()
    assert vals["sgd"] == {"id": 90.0, "ood": 67.9}
    assert vals["sgd_freeze_embed_no_momentum"]["ood"] == pytest.approx(76.9)


def test_theory_figure(tmp_path):
    (path,) = theory_figs.ood_over_time(tmp_path)
    assert _is_png(path)


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
    assert csv_path.read_text().count("\n") == 6  # header + one row per method (best LR chosen)
