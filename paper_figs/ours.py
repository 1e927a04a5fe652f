"""Our own runs as the figures need them, all through ``experiments.ledger``: per-cell rows of
best-on-ID-val accuracies with their 90% intervals, each claim's "ours" cells, and layer
gradient-norm records."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from experiments import ledger

#: columns of a summarized row that are not settings of its cell.
_NOT_SETTINGS = ("method", "n_seeds", "n_lrs", "n_diverged", "lr")


def cell_groups(results: Iterable[str | Path] | None) -> dict[tuple[str, ...], dict[str, dict[str, Any]]]:
    """Our runs grouped by cell: {(model, dataset, "setting=value"...): {method: summarized row}}.

    Each row has ``<metric>_mean`` and ``<metric>_ci90`` (90% t half-width over seeds, None for
    one seed) as fractions, and ``n_seeds``; unlike cells are never averaged together.
    """
    groups: dict[tuple[str, ...], dict[str, dict[str, Any]]] = {}
    for row in ledger.summarize_results(results or []):
        key = tuple(str(v) if k in ("model", "dataset") else f"{k}={v}" for k, v in row.items()
                    if k not in _NOT_SETTINGS and not k.endswith(("_mean", "_ci90")))
        groups.setdefault(key, {})[row["method"]] = row
    return groups


def claim_results(results: Iterable[str | Path] | None) -> list[tuple[dict[str, Any], Any]]:
    """(claim spec, its "ours" verdict with cells) for every claim (:func:`experiments.ledger.ours_verdicts`)."""
    return ledger.ours_verdicts(results or [])


def grad_norm_records(results: Iterable[str | Path] | None) -> list[dict]:
    """Layer gradient-norm measurements under `results` as {"model", "dataset", "groups": [...]}
    (:func:`experiments.ledger.grad_norm_records`: the ``gradnorms.jsonl`` rows of
    ``python -m deepnet.measure gradnorms``, one per layer group)."""
    return ledger.grad_norm_records(ledger.load_files(results or []))


def our_tables(results: Iterable[str | Path] | None) -> dict[str, str] | None:
    """Our runs as one table, ``{"md": ..., "csv": ...}`` (:func:`experiments.ledger.summary_tables`), or None."""
    rows = ledger.summarize_results(results or [])
    return ledger.summary_tables(rows) if rows else None
