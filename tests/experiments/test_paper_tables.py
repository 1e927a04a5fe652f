"""The digitized tables reproduce the papers' own arithmetic, and every disagreement is recorded."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from experiments.paper import arithmetic
from experiments.paper.arithmetic import all_discrepancies, load_errata, stated_value
from experiments.paper.tables import load_table, table_ids

DATASETS = ["living17", "waterbirds", "domainnet", "fmow", "camelyon"]
SGD_MODELS = ["clip_vit_b16", "clip_vit_l14", "sup_vit_b16", "dino_vit_b16", "convnext_b", "bit_resnet50", "bit_resnet101"]


def test_every_table_loads_with_its_declared_shape():
    expected_rows = {"sgd:table1": 28, "sgd:table2": 28, "sgd:table11": 28, "sgd:table12": 28, "sgd:table5": 12,
                     "sgd:table7": 15, "sgd:table8": 15, "sgd:table13": 12, "sgd:table14": 12, "lpft:ood": 3}
    for tid in table_ids():
        table = load_table(tid)
        assert table.rows, tid
        if tid in expected_rows:
            assert len(table.rows) == expected_rows[tid], tid
        for row in table.rows:  # accuracies are percentages, memory in GB
            for col in table.columns:
                if isinstance(row[col], float):
                    assert 0.0 <= row[col] <= 100.0, (tid, row, col)


def test_main_tables_cover_the_full_grid():
    for tid, methods in [("sgd:table1", 4), ("sgd:table11", 4)]:
        table = load_table(tid)
        for model in SGD_MODELS:
            assert len(table.select(model=model)) == methods
            assert len(table.cells(model=model)) == 5 * methods


def test_unknown_table_and_key_fail_clearly():
    with pytest.raises(KeyError, match="known: sgd:fig1b"):
        load_table("sgd:table99")
    with pytest.raises(KeyError, match="unknown key"):
        load_table("sgd:table1").select(dataset="living17")


def test_discrepancies_are_exactly_the_errata():
    computed = {d.key: d for d in all_discrepancies()}
    recorded = {(e["table"], e["cell"]): e for e in load_errata()}
    assert set(computed) - set(recorded) == set(), "new disagreement(s): add to errata.toml or fix the copy"
    assert set(recorded) - set(computed) == set(), "stale errata.toml entries"
    for key, d in computed.items():
        assert recorded[key]["stated"] == pytest.approx(d.stated, abs=1e-9)
        assert recorded[key]["recomputed"] == pytest.approx(d.recomputed, abs=0.01)


def test_a_changed_cell_is_caught(monkeypatch):
    """The checks can fail: a typo in one cell shows as a row-average and a delta disagreement."""
    table = load_table("sgd:table1")
    rows = [dict(r) for r in table.rows]
    rows[1]["waterbirds"] = 79.1  # CLIP ViT-B/16 AdamW, printed 71.9 (+9.4)
    broken = dataclasses.replace(table, rows=tuple(rows))
    found = arithmetic.row_average_discrepancies(broken) + arithmetic.delta_discrepancies(broken)
    cells = {d.cell for d in found}
    assert "clip_vit_b16/adamw/avg" in cells and "clip_vit_b16/adamw/waterbirds_delta" in cells


def test_headline_averages_as_stated():
    """SGD paper: avg OOD SGD 71.9/72.0, AdamW 76.0, SGD-FE 76.7, no-mom 76.9 (Tables 1-2, text)."""
    table = load_table("sgd:table1")
    means = {m: sum(table.cells(method=m)) / 35 for m in ["sgd", "adamw", "sgd_freeze_embed", "sgd_freeze_embed_no_momentum"]}
    assert means["sgd"] == pytest.approx(71.97, abs=0.005)
    assert means["adamw"] == pytest.approx(76.04, abs=0.005)
    assert means["sgd_freeze_embed"] == pytest.approx(76.73, abs=0.005)
    assert means["sgd_freeze_embed_no_momentum"] == pytest.approx(76.87, abs=0.005)
    value, lo, hi = stated_value({"stat": "mean", "a": {"table": "sgd:table1", "method": "adamw"}})
    assert lo < value < hi and hi - lo == pytest.approx(0.1)


def test_table3_best_results_are_the_table1_maxima():
    """Table 3's 'best result from our paper' is the best of SGD / AdamW / SGD-FE in Table 1; for
    Living-17 only CLIP models count (the paper omits ImageNet-pretrained models there)."""
    t1, t3 = load_table("sgd:table1"), load_table("sgd:table3")
    for row in t3.rows:
        ds = row["dataset"]
        models = ["clip_vit_b16", "clip_vit_l14"] if ds == "living17" else SGD_MODELS
        cand = [(r[ds], r["model"], r["method"]) for r in t1.rows
                if r["model"] in models and r["method"] in ("sgd", "adamw", "sgd_freeze_embed")]
        best = max(cand)
        assert (row["best_ours"], row["model"], row["optimizer"]) == best
        assert row["sgd_freeze_embed"] == max(v for v, _, m in cand if m == "sgd_freeze_embed")
        assert row["best_ours"] > row["best_prior"]



#: the text-vs-table inconsistencies of the papers (errata.toml [[note]] ids).
REQUIRED_NOTES = {
    "table3_best_camelyon", "table3_best_waterbirds", "table3_caption_living17", "sec4_item4_bit101_fmow",
    "appB_lpft_higher", "sec1_states_vs_bytes", "sec4_item5_dino_imagenet1k", "table5_caption_gradual_unfreezing",
    "sec5_clip_best_ood", "workshop_no_momentum_better",
}


def test_errata_list_every_known_text_inconsistency_with_its_quote():
    notes = {n["id"]: n for n in arithmetic.load_notes() if "id" in n}
    assert REQUIRED_NOTES <= set(notes)
    for nid in REQUIRED_NOTES:
        assert notes[nid]["quote"] and notes[nid]["source"] in ("sgd", "sgd_workshop") and notes[nid]["text"], nid


def test_every_errata_check_holds_on_the_digitized_cells():
    """Each listed inconsistency is real in our copy of the tables (a fixed cell would break it)."""
    checked = 0
    for note in arithmetic.load_notes():
        for check in note.get("check", []):
            holds, numbers = arithmetic.note_check(check)
            assert holds, (note["id"], numbers)
            checked += 1
    assert checked >= 10


def test_an_errata_check_fails_when_the_cells_disagree():
    check = {"a": {"table": "sgd:table1", "model": "clip_vit_l14", "method": "sgd_freeze_embed_no_momentum",
                   "columns": ["avg"]}, "op": ">", "b": {"value": 82.6}}
    assert arithmetic.note_check(check) == (False, "82.6 > 82.6")
    assert arithmetic.note_check({"absent": {"table": "sgd:table7", "method": "gradual_unfreeze"}})[0] is False


@pytest.mark.skipif(not os.environ.get("PAPERS_DIR"), reason="set PAPERS_DIR to the papers' text (sgd-finetuning-full.md, ...)")
def test_errata_quotes_are_verbatim_from_the_papers():
    files = {"sgd": "sgd-finetuning-full.md", "sgd_workshop": "sgd-finetuning-workshop.md"}
    for note in arithmetic.load_notes():
        if "quote" in note:
            text = (Path(os.environ["PAPERS_DIR"]) / files[note["source"]]).read_text()
            assert note["quote"] in text, note["id"]


def test_table8_lamb_lars_rows_are_checked_against_table5_id(monkeypatch):
    """Table 8 repeats Table 5's ID rows (LAMB and LARS too): a changed LAMB cell is a discrepancy."""
    real = arithmetic.load_table

    def edited(tid):
        table = real(tid)
        if tid != "sgd:table8":
            return table
        rows = [dict(r, fmow=60.0) if r["method"] == "lamb" else r for r in table.rows]
        return dataclasses.replace(table, rows=tuple(rows))

    assert not [d for d in arithmetic.same_cell_discrepancies() if "lamb" in d.cell]
    monkeypatch.setattr(arithmetic, "load_table", edited)
    found = [(d.cell, d.stated, d.recomputed) for d in arithmetic.same_cell_discrepancies() if d.table == "sgd:table8"]
    assert found == [("Other layerwise normalization methods/lamb/fmow vs sgd:table5 lamb/id/fmow", 60.0, 67.9)]
