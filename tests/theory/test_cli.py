"""`python -m theory verify`: table, JSON, exit codes."""
import json

import pytest

from theory.__main__ import main
from theory.verdict import CLAIM_CHECKS, ClaimResult


def test_verify_small_run_passes_proven_claims(tmp_path, capsys):
    out = tmp_path / "v.json"
    rc = main(["verify", "--instances", "2", "--claims", "C1", "C2", "C6", "--json", str(out)])
    assert rc == 0
    table = capsys.readouterr().out
    assert "C1" in table and "verdict" in table
    data = json.loads(out.read_text())
    assert [r["claim"] for r in data["results"]] == ["C1", "C2", "C6"]
    assert all(r["numbers"]["proven_violations"] == 0 for r in data["results"])


def test_every_theory_claim_runs(tmp_path):
    out = tmp_path / "all.json"
    main(["verify", "--instances", "2", "--claims", "C3", "C4", "C5", "C7", "C8", "--json", str(out), "--workers", "1"])
    results = json.loads(out.read_text())["results"]
    assert {r["claim"] for r in results} == {"C3", "C4", "C5", "C7", "C8"}
    assert all(r["verdict"] in ("pass", "fail", "vacuous") and r["instances"] == 2 for r in results)


def test_exit_code_when_a_proven_statement_fails(monkeypatch):
    def broken(instances, seed, map_fn=None):
        return ClaimResult("C2", "fail", numbers={"proven_violations": 1}, instances=instances, violations=1)

    import theory.claims  # noqa: F401  (registers the real checks first)
    monkeypatch.setitem(CLAIM_CHECKS._items, "C2", broken)
    assert main(["verify", "--instances", "1", "--claims", "C2", "--workers", "1"]) == 1


def test_unknown_claim_is_an_argument_error():
    with pytest.raises(SystemExit) as err:
        main(["verify", "--claims", "C99"])
    assert err.value.code == 2


def test_help_explains(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["verify", "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "--instances" in out and "proven" in out


def test_results_do_not_depend_on_the_process_pool():
    from concurrent.futures import ProcessPoolExecutor

    from theory.claims import check_c7

    serial = check_c7(3, 11)
    with ProcessPoolExecutor(max_workers=2) as pool:
        pooled = check_c7(3, 11, map_fn=pool.map)
    assert serial.to_dict() == pooled.to_dict()
