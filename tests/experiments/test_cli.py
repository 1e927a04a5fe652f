"""``python -m experiments report`` prints the ledger and writes it as markdown and JSON."""
from __future__ import annotations

import json

from experiments.__main__ import main


def test_report_cli_writes_markdown_and_json(tmp_path, results_file, capsys):
    out = tmp_path / "report"
    assert main(["report", "--claims", "C13", "C10", "--instances", "1", "--results", str(results_file.parent), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "C10" in printed and "C13" in printed and "supported 2/0/0" in printed
    ledger = json.loads((out / "ledger.json").read_text())
    assert [row["claim"] for row in ledger] == ["C10", "C13"]
    assert ledger[0]["ours"]["verdict"] == "supported"  # synthetic runs: SGD-FE and AdamW beat SGD OOD on 3 seeds
    assert (out / "ledger.md").read_text().startswith("# Claims ledger")

