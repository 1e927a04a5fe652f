"""Fault drill for `python -m theory verify` and the problem constructors.

Usage errors exit 2 before any check runs (a spy check records whether it ran); exit 1 is kept for
a failed proven statement; a crashing check exits 3; bad problem inputs name the field.
"""
import os

import numpy as np
import pytest

from theory.__main__ import main
from theory.problem import Problem, make_problem
from theory.verdict import CLAIM_CHECKS, ClaimResult, load_claim_checks


@pytest.fixture
def spy(monkeypatch):
    """Replace C2's check by one that records its calls (and passes)."""
    load_claim_checks()
    calls = []

    def check(instances, seed):
        calls.append((instances, seed))
        return ClaimResult("C2", "pass", numbers={"proven_violations": 0}, instances=instances)

    monkeypatch.setitem(CLAIM_CHECKS._items, "C2", check)
    return calls


def _exit_code(argv):
    with pytest.raises(SystemExit) as err:
        main(argv)
    return err.value.code


def test_negative_seed_exits_2_before_computing(spy, capsys):
    assert _exit_code(["verify", "--claims", "C2", "--workers", "1", "--seed", "-1"]) == 2
    assert spy == [] and "--seed" in capsys.readouterr().err


def test_json_path_that_is_a_directory_is_refused_before_computing(spy, tmp_path, capsys):
    assert _exit_code(["verify", "--claims", "C2", "--workers", "1", "--json", str(tmp_path)]) == 2
    assert spy == [] and "directory" in capsys.readouterr().err


def test_json_path_in_a_missing_folder_is_refused_before_computing(spy, tmp_path):
    assert _exit_code(["verify", "--claims", "C2", "--workers", "1", "--json", str(tmp_path / "no" / "v.json")]) == 2
    assert spy == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_json_path_in_a_read_only_folder_is_refused_before_computing(spy, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert _exit_code(["verify", "--claims", "C2", "--workers", "1", "--json", str(ro / "v.json")]) == 2
    finally:
        ro.chmod(0o700)
    assert spy == []


def test_a_crashing_check_is_not_a_failed_proof(monkeypatch, capsys):
    load_claim_checks()

    def crash(instances, seed):
        raise RuntimeError("boom")

    monkeypatch.setitem(CLAIM_CHECKS._items, "C2", crash)
    assert main(["verify", "--claims", "C2", "--workers", "1", "--instances", "1"]) == 3
    assert "boom" in capsys.readouterr().err


def test_problem_rejects_zero_inputs():
    p = make_problem(30, 2, 10, seed=0)
    with pytest.raises(ValueError, match="X has rank 0"):
        Problem(np.zeros_like(p.X), p.Y, p.B_star, p.v_star, p.B0, p.v0, p.Sigma)


@pytest.mark.parametrize("seed", [-1, 2.5, "1"])
def test_make_problem_names_a_bad_seed(seed):
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        make_problem(30, 2, 10, seed=seed)
