"""Our own runs as the figures need them: per-method averages of best-on-ID-val accuracies (in %),
and layer gradient-norm records."""
from __future__ import annotations

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
    """Layer gradient-norm measurements under `results` as {"model", "dataset", "groups": [...]}.

    Delegates to :func:`experiments.ledger.grad_norm_records` (files ``grad_norms*.jsonl`` or
    ``gradnorms*.jsonl``, nested or one row per group)."""
    from experiments.ledger import grad_norm_records as read

    return read(results or [])
