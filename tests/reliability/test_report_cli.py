"""Fault drill, ``python -m experiments report``: a bad argument is one
message and exit 2 before anything is computed or written; a bad results line is named
(``file:line``), skipped with a count, or with ``--strict`` an error."""
from __future__ import annotations

import json

import pytest

from experiments import ledger
from experiments.__main__ import main
from tests.helpers import seeded_records, write_jsonl


@pytest.fixture
def results(tmp_path):
    return write_jsonl(tmp_path / "results" / "runs.jsonl", seeded_records("small_vit", "digits"))


@pytest.fixture
def no_compute(monkeypatch):
    """Fail the test if the ledger is built (usage errors must be caught before computing)."""
    def refuse(*args, **kwargs):
        raise AssertionError("build_ledger ran on a bad argument")

    monkeypatch.setattr(ledger, "build_ledger", refuse)


@pytest.mark.parametrize("extra, message", [
    (["--results", "/nonexistent/results"], "no results file or folder at /nonexistent/results"),
    (["--claims", "c4"], "unknown claim id(s) 'c4'; known: C1"),
    (["--claims", "C4", "C99"], "unknown claim id(s) 'C99'"),
    (["--instances", "-1"], "--instances must be >= 1, got -1"),
    (["--instances", "0"], "--instances must be >= 1, got 0"),
])
def test_bad_argument_exits_2_with_one_message_and_keeps_the_old_ledger(tmp_path, results, no_compute, capsys, extra, message):
    out = tmp_path / "report"
    out.mkdir()
    (out / "ledger.json").write_text("good ledger")
    assert main(["report", "--results", str(results.parent), "--out", str(out), *extra]) == 2  # a later --results wins
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {message}"] or (len(err) == 1 and message in err[0])
    assert (out / "ledger.json").read_text() == "good ledger" and sorted(p.name for p in out.iterdir()) == ["ledger.json"]


def test_results_with_no_records_is_an_error_not_an_empty_ledger(tmp_path, no_compute, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", "--results", str(empty), "--out", str(tmp_path / "out")]) == 2
    assert "nothing to report" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bad_jsonl_line_is_named_skipped_and_counted(tmp_path, results, capsys):
    with results.open("a") as f:
        f.write('{"config": truncated\n')
        f.write("\n")
        f.write("also bad\n")
    out = tmp_path / "report"
    assert main(["report", "--claims", "C10", "--instances", "1", "--results", str(results.parent), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"skipped 2 malformed line(s): {results}:19, {results}:21" in err and "--strict" in err
    (row,) = json.loads((out / "ledger.json").read_text())
    assert row["ours"]["verdict"] == "supported"  # the good lines still count
    assert f"{results}:19" in (out / "ledger.md").read_text()


def test_bad_jsonl_line_with_strict_fails_and_writes_nothing(tmp_path, results, capsys):
    with results.open("a") as f:
        f.write("{broken\n")
    out = tmp_path / "report"
    assert main(["report", "--strict", "--claims", "C10", "--instances", "1", "--results", str(results.parent),
                 "--out", str(out)]) == 2
    assert f"{results}:19" in capsys.readouterr().err
    assert not out.exists()
