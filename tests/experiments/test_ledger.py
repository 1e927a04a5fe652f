"""The claims ledger judges every claim cell by cell from paired intervals, and shows a missing link as missing."""
from __future__ import annotations

import json
import warnings

import pytest

from experiments import ledger
from experiments.report import console_table, markdown_report, write_reports
from tests.helpers import RUNS, seeded_records, write_jsonl
from theory.verdict import ClaimResult

CLAIMS = [f"C{i}" for i in range(1, 14)]


@pytest.fixture
def no_theory(monkeypatch):
    """An empty check registry (as before the theory modules land) and no module import."""
    monkeypatch.setattr(ledger, "CLAIM_CHECKS", {})
    monkeypatch.setattr(ledger, "CHECK_MODULES", ())


def specs() -> dict[str, dict]:
    return {s["id"]: s for s in ledger.load_claim_specs()}


def test_every_claim_has_a_spec_with_a_statement():
    found = ledger.load_claim_specs()
    assert [s["id"] for s in found] == CLAIMS
    for s in found:
        assert s["statement"]
        assert s.get("paper") or s.get("paper_note"), s["id"]
        assert s.get("ours") or s.get("ours_note"), s["id"]


@pytest.mark.parametrize("diff, half, op, threshold, expected", [
    (0.1, 0.05, ">", 0.0, "supports"), (-0.1, 0.05, ">", 0.0, "contradicts"), (0.1, 0.2, ">", 0.0, "unresolved"),
    (0.1, None, ">", 0.0, "unresolved"),                      # one seed: no interval, never a verdict
    (-0.1, 0.05, "<=", 0.0, "supports"), (0.1, 0.05, "<", 0.0, "contradicts"),
    (-0.1, 0.1, "<=", 0.0, "unresolved"),                     # the interval touches 0 (C12's Table 13 link)
    (0.02, 0.01, "<", 0.05, "supports"), (0.08, 0.01, "<", 0.05, "contradicts"),  # a tolerance threshold
    (0.0, 0.0, "==", 0.0, "supports"), (4.0, 0.0, "==", 0.0, "contradicts"),    # exact values
    (0.0, 0.0, ">", 0.0, "contradicts"), (0.0, 0.0, ">=", 0.0, "supports"),
    (0.3, 0.1, "==", 0.0, "contradicts"), (0.05, 0.1, "==", 0.0, "unresolved"),
])
def test_a_cell_is_judged_by_its_interval(diff, half, op, threshold, expected):
    assert ledger.judge(diff, half, op, threshold) == expected


@pytest.mark.parametrize("cells, expected", [
    ([], "missing"), (["unresolved"] * 3, "inconclusive"), (["supports", "unresolved"], "supported"),
    (["contradicts", "unresolved"], "contradicted"), (["supports", "contradicts", "unresolved"], "mixed"),
])
def test_claim_verdict_words(cells, expected):
    assert ledger.claim_verdict(cells) == expected


def test_unregistered_theory_and_absent_results_are_missing(no_theory, tmp_path):
    rows = ledger.build_ledger(results=[tmp_path / "nothing"])
    assert len(rows) == 13
    for r in rows:
        assert r.theory.verdict == "missing" and "no theory check" in r.theory.detail
        assert r.ours.verdict == "missing"


def test_paper_links_resolve_to_the_digitized_cells(no_theory, tmp_path):
    rows = {r.claim: r for r in ledger.build_ledger(results=[tmp_path])}
    # claims with no digitized paper numbers (figures only, lemmas, C3's unsourced numbers removed)
    assert {c for c, r in rows.items() if r.paper.verdict == "missing"} == {"C1", "C2", "C3", "C7"}
    assert rows["C4"].paper.numbers["paper2"] == "+6.9 ± 0.1 > 0: supports"
    assert rows["C10"].paper.cells[0].diff == pytest.approx(76.73 - 71.97, abs=0.005)
    assert all(r.paper.verdict == "supported" for c, r in rows.items() if c not in {"C1", "C2", "C3", "C7"})


def test_c3_paper_link_is_missing_with_the_reason():
    result = ledger.paper_verdict(specs()["C3"])
    assert result.verdict == "missing" and "in none of the sources" in result.detail
    assert "73.0" not in json.dumps(specs()["C3"].get("paper", []))


def test_c12_sgd_pretrained_link_is_fragile_within_print_rounding():
    """Table 13 SGD-pretrained AdamW 69.5 vs SGD 69.6: -0.1 <= 0 is within print rounding."""
    result = ledger.paper_verdict(specs()["C12"])
    assert [c.verdict for c in result.cells] == ["supports", "unresolved", "supports", "supports"]
    assert result.cells[1].diff == pytest.approx(-0.1) and result.cells[1].half == pytest.approx(0.1)
    assert result.verdict == "supported" and result.counts == {"supports": 3, "contradicts": 0, "unresolved": 1}
    assert "Fragile" in result.detail


def test_c13_is_worded_as_the_paper_counts_bytes():
    assert "weights + gradients + optimizer state" in specs()["C13"]["statement"]


def test_a_paper_comparison_can_contradict():
    spec = {"id": "CX", "paper": [{"text": "reverse of C4", "op": ">",
                                   "lhs": {"table": "lpft:ood", "method": "ft", "columns": ["avg"]},
                                   "rhs": {"table": "lpft:ood", "method": "lp", "columns": ["avg"]}}]}
    assert ledger.paper_verdict(spec).verdict == "contradicted"


def test_registered_checks_are_called_with_instances_and_seed(monkeypatch):
    calls = []

    def fake(instances, seed):
        calls.append((instances, seed))
        return ClaimResult("C4", "fail", numbers={"x": 1.0}, instances=instances, violations=1)

    monkeypatch.setattr(ledger, "CLAIM_CHECKS", {"C4": fake})
    monkeypatch.setattr(ledger, "CHECK_MODULES", ())
    (row,) = ledger.build_ledger(results=[], instances=2, claims=["C4"])
    assert calls == [(2, 0)] and row.theory.verdict == "fail"


def test_a_crashing_check_is_missing_not_passing(monkeypatch):
    def broken(instances, seed):
        raise RuntimeError("boom")

    monkeypatch.setattr(ledger, "CLAIM_CHECKS", {"C2": broken})
    monkeypatch.setattr(ledger, "CHECK_MODULES", ())
    (row,) = ledger.build_ledger(results=[], claims=["C2"])
    assert row.theory.verdict == "missing" and "boom" in row.theory.detail


@pytest.mark.parametrize("problems, mean, sem, expected, indicative", [
    (8, 0.30, 0.05, "supported", False), (8, -0.30, 0.05, "contradicted", False),
    (8, 0.05, 0.10, "inconclusive", False), (3, 0.30, 0.05, "supported", True), (1, 0.30, 0.0, "inconclusive", True),
])
def test_statistical_theory_claims_use_the_interval_words(monkeypatch, problems, mean, sem, expected, indicative):
    """C12's check reports paired means and sem over problems: 90% t-intervals decide; < 8 problems is indicative."""
    def fake(instances, seed):
        nums = {"gap_after_adamw_pre": mean, "sem_gap_after_adamw_pre": sem, "mismatch_effect": mean,
                "sem_mismatch_effect": sem}
        return ClaimResult("C12", "pass", numbers=nums, instances=problems)

    monkeypatch.setattr(ledger, "CLAIM_CHECKS", {"C12": fake})
    monkeypatch.setattr(ledger, "CHECK_MODULES", ())
    (row,) = ledger.build_ledger(results=[], claims=["C12"])
    assert row.theory.verdict == expected and row.theory.indicative is indicative
    if problems > 1:
        from scipy import stats
        assert row.theory.cells[0].half == pytest.approx(stats.t.ppf(0.95, problems - 1) * sem)
    assert ("indicative" in row.theory.detail) is indicative


def test_the_real_statistical_checks_map_to_interval_words():
    """C9-C12 from theory.deep_claims, on the specs' 8 problems: claim words, no indicative flag."""
    rows = ledger.build_ledger(results=[], claims=["C9", "C10", "C11", "C12"])
    for r in rows:
        assert r.theory.verdict in ledger.CLAIM_VERDICTS and not r.theory.indicative, r.claim
        assert r.theory.cells and all(c.n == 8 for c in r.theory.cells)


def test_our_runs_are_paired_by_seed(no_theory, results_file):
    rows = {r.claim: r for r in ledger.build_ledger(results=[results_file.parent])}
    c10 = rows["C10"].ours
    assert c10.verdict == "supported" and c10.counts == {"supports": 2, "contradicts": 0, "unresolved": 0}
    # best-on-ID-val: sgd picks lr 1e-3 (ood 0.60), not the higher-OOD lr 1e-2
    assert c10.cells[0].cell == "digits,small_vit" and c10.cells[0].diff == pytest.approx(0.14, abs=0.01)
    assert c10.cells[0].n == 3 and c10.cells[0].half > 0
    assert rows["C4"].ours.verdict == "supported"       # lp 0.75 > sgd 0.60
    assert rows["C5"].ours.verdict == "supported"       # sgd id 0.91 > lp 0.86
    assert rows["C11"].ours.verdict == "missing"        # no adamw_freeze_embed run
    assert rows["C12"].ours.verdict == "missing"        # no small_resnet_fmnist_* runs


def test_ours_difference_is_collects_paired_difference(results_file):
    """A two-method comparison equals ``collect --diff`` (paired by seed, 90% t) on the same records."""
    from deepnet.sweep.collect import load_records, paired_differences, select_best

    (row,) = paired_differences(select_best(load_records(results_file)), [("sgd_freeze_embed", "sgd")], "ood_avg")
    (cell,) = ledger.paired_cells(ledger.run_rows(ledger.run_cells(ledger.load_files([results_file]))),
                                  specs()["C10"]["ours"][0], "ours1")
    assert cell.diff == pytest.approx(row["sgd_freeze_embed-sgd_mean"])
    assert cell.half == pytest.approx(row["sgd_freeze_embed-sgd_ci90"]) and cell.n == row["sgd_freeze_embed-sgd_n"]


def test_one_seed_gives_no_verdict(no_theory, tmp_path):
    write_jsonl(tmp_path / "one.jsonl", seeded_records("small_vit", "digits", seeds=(0,)))
    (row,) = ledger.build_ledger(results=[tmp_path], claims=["C10"])
    assert row.ours.verdict == "inconclusive" and row.ours.counts["unresolved"] == 2
    assert "one seed" in row.ours.detail


def test_cells_that_disagree_make_a_mixed_claim(no_theory, tmp_path):
    """Model a: SGD-FE beats SGD OOD; model b: SGD beats SGD-FE; both by far more than the noise."""
    flipped = [(m, lr, iv, it, 0.9 if m == "sgd" else ood) for m, lr, iv, it, ood in RUNS]
    write_jsonl(tmp_path / "r.jsonl", seeded_records("a", "digits") + seeded_records("b", "digits", runs=flipped))
    (row,) = ledger.build_ledger(results=[tmp_path], claims=["C10"])
    verdicts = {(c.comparison, c.cell): c.verdict for c in row.ours.cells}
    assert verdicts[("ours1", "digits,a")] == "supports" and verdicts[("ours1", "digits,b")] == "contradicts"
    assert row.ours.verdict == "mixed"
    only_b = ledger.build_ledger(results=[tmp_path / "r.jsonl"], claims=["C10"])[0]
    assert only_b.ours.counts["contradicts"] == 2


def test_report_renders_every_claim_with_counts(no_theory, results_file, tmp_path):
    rows = ledger.build_ledger(results=[results_file])
    table = console_table(rows)
    assert all(c in table for c in CLAIMS)
    assert "supported 2/0/0" in table and "s/c/u" in table
    md = markdown_report(rows)
    assert md.count("\n## C") == 13 and "never counts as passing" in md
    paths = write_reports(rows, tmp_path / "out")
    dumped = json.loads(paths["json"].read_text())
    c10 = next(r for r in dumped if r["claim"] == "C10")
    assert c10["ours"]["counts"] == {"supports": 2, "contradicts": 0, "unresolved": 0}
    assert c10["ours"]["cells"][0]["ci90"] > 0


def test_memory_records_feed_c13_exactly_and_are_not_read_as_runs(no_theory, results_file):
    mem = results_file.parent / "memory" / "memory_meta.jsonl"
    rows = [{"model": "clip_vit_b16", "method": m, "bytes_per_trainable_param": b, "static_bytes": s}
            for m, b, s in [("adamw", 16.0, 16e8), ("sgd", 12.0, 12e8), ("sgd_no_momentum", 8.0, 8e8),
                            ("sgd_freeze_embed_no_momentum", 8.0, 7.9e8)]]
    write_jsonl(mem, rows)
    assert ledger.run_record_files(ledger.load_files([results_file.parent])) == [results_file]
    by = {r.claim: r for r in ledger.build_ledger(results=[results_file.parent], claims=["C10", "C13"])}
    assert by["C10"].ours.verdict == "supported"
    assert by["C13"].ours.verdict == "supported" and by["C13"].ours.numbers["ours1[clip_vit_b16]"] == "+0 exact (n=1) == 0: supports"
    rows[0]["bytes_per_trainable_param"] = 12.0  # an AdamW that kept only one state: C13 must be contradicted
    write_jsonl(mem, rows)
    (row,) = ledger.build_ledger(results=[results_file.parent], claims=["C13"])
    assert row.ours.verdict == "mixed" and row.ours.counts["contradicts"] == 1


def test_gradnorm_rows_from_flat_measurements(tmp_path):
    """One row per layer group (deepnet.measure output): embed / max middle per normalization; one
    measurement per cell has no interval."""
    rows = []
    for model, embed in (("small_vit_fmnist_adamw", 3.0), ("small_vit_fmnist_sgd", 1.0)):
        for i, (kind, g) in enumerate([("embed", embed), ("middle", 2.0), ("middle", 1.5), ("head", 9.0)]):
            rows.append({"model": model, "dataset": "digits", "index": i, "kind": kind, "label": f"g{i}",
                         "grad_norm": g, "grad_over_param_norm": g, "grad_over_sqrt_numel": g / 10})
    write_jsonl(tmp_path / "gradnorms.jsonl", rows)
    got = {r["model"]: r for r in ledger.grad_norm_rows(ledger.load_files([tmp_path]))}
    assert got["small_vit_fmnist_adamw"]["embed_over_max_middle_raw"] == pytest.approx(1.5)
    assert got["small_vit_fmnist_sgd"]["embed_over_max_middle_sqrt_numel"] == pytest.approx(0.5)
    verdict = ledger.ours_verdict(specs()["C9"], {"gradnorms": list(got.values())})
    assert verdict.numbers["ours1[digits]"] == "+1 no interval (n=1) > 0: unresolved"  # ResNet rows absent: skipped
    assert verdict.verdict == "inconclusive"


def test_distortion_records_are_paired_by_seed_per_model(tmp_path):
    rows = [{"model": model, "dataset": "d", "method": meth, "kind": kind, "seed": seed,
             "relative_mean": v + 0.01 * seed * (kind == "id"), "mean": v}
            for model in ("m1", "m2") for seed in (0, 1, 2)
            for meth, kind, v in [("sgd", "id", 0.6), ("sgd", "ood", 0.2), ("lp_ft", "id", 0.05), ("lp_ft", "ood", 0.01)]]
    write_jsonl(tmp_path / "distortion.jsonl", rows)
    found = ledger.measurement_rows(ledger.load_files([tmp_path]), "relative_mean")
    c1 = ledger.ours_verdict(specs()["C1"], {"distortion": found})
    c7 = ledger.ours_verdict(specs()["C7"], {"distortion": found})
    assert c1.verdict == "supported" and [c.cell for c in c1.cells] == ["d,m1", "d,m2"]
    assert all(c.n == 3 and c.diff == pytest.approx(0.41) for c in c1.cells)
    assert c7.verdict == "supported"
    for r in found:
        if r["model"] == "m2" and r["kind"] == "ood" and r["method"] == "sgd":
            r["relative_mean"] = 0.9 + 0.01 * r["seed"]  # m2's OOD features moved more than ID: contradicts C1
    assert ledger.ours_verdict(specs()["C1"], {"distortion": found}).verdict == "mixed"


def test_a_bad_results_line_is_skipped_with_file_and_line(no_theory, results_file):
    with results_file.open("a") as f:
        f.write('{"config": {"model": \n')
    with pytest.warns(UserWarning, match=rf"1 malformed line\(s\): {results_file}:19"):
        (row,) = ledger.build_ledger(results=[results_file.parent], claims=["C10"])
    assert row.ours.verdict == "supported"
    with pytest.raises(ValueError, match=rf"{results_file}:19"):
        ledger.build_ledger(results=[results_file.parent], claims=["C10"], strict=True)


def test_unknown_or_lower_case_claim_ids_are_rejected(no_theory):
    with pytest.raises(ValueError, match="unknown claim id.*'c4'.*'C99'.*known: C1"):
        ledger.build_ledger(results=[], claims=["c4", "C99"])
    with pytest.raises(ValueError, match="instances must be >= 1"):
        ledger.build_ledger(results=[], instances=0)


def test_read_once_warns_once(no_theory, results_file):
    """All sources come from one read of the files: one warning per bad file, not one per source."""
    with results_file.open("a") as f:
        f.write("not json\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ledger.build_ledger(results=[results_file], claims=["C1"])
    assert sum("malformed" in str(w.message) for w in caught) == 1


def test_a_folder_marked_not_in_ledger_is_left_out_of_the_scan_but_not_when_named(tmp_path):
    kept, marked = tmp_path / "sweeps" / "a.jsonl", tmp_path / "old" / "deep" / "b.jsonl"
    for path in (kept, marked):
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"config": {}, "metrics": {}}) + "\n")
    (tmp_path / "old" / ledger.NOT_IN_LEDGER).write_text("superseded\n")
    assert [f for f, _ in ledger.load_files([tmp_path])] == [kept]
    assert [f for f, _ in ledger.load_files([marked])] == [marked]
