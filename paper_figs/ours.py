"""Our own runs as the figures need them: per-method averages of best-on-ID-val accuracies (in %),
and layer gradient-norm records."""
from __future__ import annotations

import json
from pathlib import Path
from statistics import mean
from typing import Iterable

from experiments.ledger import summarize_results


def method_averages(results: Iterable[str | Path] | None, metrics=("id_test", "ood_avg")) -> dict[str, dict[str, float]]:
    """{method: {metric: mean over (model, dataset) cells, in %}} from contract result records."""
    rows = summarize_results(results or [])
    out: dict[str, dict[str, float]] = {}
    for method in sorted({r["method"] for r in rows}):
        for metric in metrics:
            vals = [r[f"{metric}_mean"] for r in rows if r["method"] == method and isinstance(r.get(f"{metric}_mean"), float)]
            if vals:
                out.setdefault(method, {})[metric] = 100.0 * mean(vals)
    return out


def grad_norm_records(results: Iterable[str | Path] | None) -> list[dict]:
    """Records of ``grad_norms*.jsonl`` files: {"model", "dataset", "groups": [GroupGradNorm.as_dict(), ...]}."""
    files: list[Path] = []
    for path in map(Path, results or []):
        if path.is_dir():
            files += sorted(path.rglob("grad_norms*.jsonl"))
        elif path.is_file() and path.name.startswith("grad_norms"):
            files.append(path)
    records = []
    for f in files:
        records += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return records
