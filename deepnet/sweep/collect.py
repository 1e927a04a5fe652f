"""Turn a sweep's result records into the paper's tables: best LR on ID val, mean and 90% interval.

Protocol (SGD paper, Appendix A and Table 5): for every cell — a (model, dataset, method) plus any
other setting that differs between records, e.g. epochs — and every seed, the learning rate with
the highest **ID validation** accuracy is chosen (ties: the smaller LR); OOD numbers never take
part in the choice. The chosen runs' metrics (already early-stopped on ID val by the trainer) are
then averaged over seeds.

``selection="mean"`` is the other reading of the paper's Table 5 ("3 runs of each hyperparameter
configuration"): one LR per cell, the one with the highest ID-val accuracy averaged over seeds.

Interval: a two-sided 90% Student-t interval over seeds, reported as its half-width
``t_{0.95, n-1} * s / sqrt(n)`` (``s`` the sample standard deviation, ddof=1); the paper's
"83.2 (0.8)" is ``mean (half-width)``. With one seed there is no interval (None). A t-interval
rather than a percentile one, since the paper uses 3 seeds and percentiles of 3 values say little.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean, stdev
from typing import Any, Iterable

from common.io import read_json, read_jsonl
from deepnet.config import EXECUTION_ONLY, METHOD_OPTIONS, RunConfig  # EXECUTION_ONLY: never a separate cell
from deepnet.run_files import DONE_MARKER, METRICS, RESULT
from deepnet.sweep.states import DIVERGED

SELECTIONS = ("per_seed", "mean")
_SCALAR_METRICS = ("id_val", "id_test")
_TRAILING_METRICS = ("ood_avg", "worst_group")
_ALWAYS_SHOWN = ("model", "dataset", "method")
_NOT_A_SETTING = ("lr", "seed")


@dataclass
class Cell:
    """The runs of one table cell (all LRs and seeds) and the ones chosen on ID val (one per seed)."""

    setting: dict[str, Any]
    runs: list[dict] = field(default_factory=list)
    chosen: list[dict] = field(default_factory=list)


def load_records(paths: str | Path | Iterable[str | Path], strict: bool = False) -> list[dict]:
    """Result records from JSON-lines files, or from a directory: every ``*.jsonl`` under it (but
    runs' ``metrics.jsonl``) plus the ``result.json`` of every finished (``done``) sweep run under it.

    The run directories are the source of truth, so a line lost from ``results.jsonl`` (e.g. file
    locks that do not hold across the nodes of a network file system) is still collected. A config
    recorded more than once keeps its last record.

    Parameters
    ----------
    paths : path or iterable of paths
        JSON-lines files and sweep directories.
    strict : bool, default False
        If False, a malformed JSON line (named ``file:line``), an unreadable ``result.json`` and a
        record that is not a run record (no valid ``config``) are skipped, each file's skips
        reported in one ``UserWarning`` with their count. If True each raises ``ValueError``.

    Returns
    -------
    list of dict
        One record per config.

    Raises
    ------
    FileNotFoundError
        A path that is neither a file nor a directory.
    ValueError
        (``strict``) A bad line or record.

    See Also
    --------
    select_best, summarize : the table's cells and rows from these records.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from deepnet.sweep.collect import load_records
    >>> config = {"model": "resnet50", "dataset": "waterbirds", "method": "sgd", "lr": 1e-3, "seed": 0}
    >>> lines = [{"config": config, "metrics": {"id_val": 0.8}}, {"config": config, "metrics": {"id_val": 0.9}}]
    >>> with tempfile.TemporaryDirectory() as root:
    ...     _ = (Path(root) / "results.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in lines))
    ...     records = load_records(root)
    >>> [r["metrics"]["id_val"] for r in records]  # one record per config: the last
    [0.9]
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: list[tuple[Path, list]] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += [(file, read_jsonl(file, strict=strict)) for file in sorted(path.rglob("*.jsonl"))
                      if file.name != METRICS]  # a run's curves, not result records
            found += [(result, _read_result(result, strict)) for result in
                      (done.with_name(RESULT) for done in sorted(path.rglob(DONE_MARKER)))]
        elif path.is_file():
            found.append((path, read_jsonl(path, strict=strict)))
        else:
            raise FileNotFoundError(f"no results file or directory at {path}")
    return latest_records(found, strict)


def latest_records(sources: Iterable[tuple[Path, list]], strict: bool = False) -> list[dict]:
    """The last run record per config of ``(source, records)`` pairs; others: a warning per source (strict: raise)."""
    by_key: dict[str, dict] = {}
    for source, records in sources:
        skipped = 0
        for record in records:
            key = _run_key(record)
            if key is None:
                if strict:
                    raise ValueError(f"{source}: holds a record that is not a run record (no valid 'config')")
                skipped += 1
            else:
                by_key[key] = record
        if skipped:
            warnings.warn(f"{source}: skipped {skipped} record(s) that are not run records (no valid 'config')",
                          UserWarning, stacklevel=3)
    return list(by_key.values())


def _read_result(path: Path, strict: bool) -> list[dict]:
    """A run's ``result.json`` as a list of one record; unreadable: [] with a warning (or raise)."""
    try:
        return [read_json(path)]
    except ValueError as err:
        if strict:
            raise
        warnings.warn(f"{err}; skipped (run the sweep again to retrain it)", UserWarning, stacklevel=3)
        return []


def _run_key(record: Any) -> str | None:
    """The record's config key, or None if it is not a run record."""
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        return None
    try:
        return RunConfig.from_dict(record["config"]).key()
    except (TypeError, ValueError):
        return None


def metric_values(record: dict) -> dict[str, float | None]:
    """A record's metrics flattened: id_val, id_test, ``ood/<split>`` for each OOD split, ood_avg,
    worst_group."""
    metrics = record.get("metrics") or {}
    flat = {name: metrics.get(name) for name in _SCALAR_METRICS}
    for split, value in sorted((metrics.get("ood") or {}).items()):
        flat[f"ood/{split}"] = value
    flat.update({name: metrics.get(name) for name in _TRAILING_METRICS})
    return flat


def select_best(records: list[dict], selection: str = "per_seed") -> list[Cell]:
    """Group run records into table cells and choose each cell's learning rate on ID validation.

    A cell is every record sharing the config but for ``lr`` and ``seed``. Runs without an ID-val
    accuracy (e.g. diverged before the first evaluation) cannot be chosen; ties go to the smaller LR.

    Parameters
    ----------
    records : list of dict
        Run records (``{"config": ..., "metrics": {"id_val": ..., ...}}``), e.g. from
        :func:`load_records`.
    selection : {"per_seed", "mean"}, default "per_seed"
        ``"per_seed"``: for each seed, the LR with the best ID-val accuracy (the paper's protocol).
        ``"mean"``: one LR per cell, the best ID-val accuracy averaged over seeds.

    Returns
    -------
    list of Cell
        One per cell: its setting, all its runs and the chosen ones (one per seed, in seed order).

    Raises
    ------
    ValueError
        An unknown ``selection``, or a record whose config is not a valid :class:`RunConfig`.

    References
    ----------
    .. [1] A. Kumar, R. Shen, S. Bubeck, S. Gunasekar, "How to Fine-Tune Vision Models with SGD",
       arXiv:2211.09359, Appendix A and Table 5 (learning rate chosen on ID validation).

    Examples
    --------
    >>> from deepnet.sweep.collect import select_best
    >>> def record(lr, seed, id_val):
    ...     config = {"model": "resnet50", "dataset": "waterbirds", "method": "sgd", "lr": lr, "seed": seed}
    ...     return {"config": config, "metrics": {"id_val": id_val}}
    >>> runs = [record(1e-3, 0, 0.80), record(1e-2, 0, 0.85), record(1e-3, 1, 0.84), record(1e-2, 1, 0.82)]
    >>> [r["config"]["lr"] for r in select_best(runs)[0].chosen]
    [0.01, 0.001]
    >>> [r["config"]["lr"] for r in select_best(runs, "mean")[0].chosen]
    [0.01, 0.01]
    """
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; known: {', '.join(SELECTIONS)}")
    cells: dict[str, Cell] = {}
    for record in records:
        config = RunConfig.from_dict(record["config"])
        setting = {k: v for k, v in config.to_dict().items() if k not in _NOT_A_SETTING}
        cell_key = RunConfig.from_dict({**setting, "lr": 1.0, "seed": 0}).key()
        cells.setdefault(cell_key, Cell(setting=setting)).runs.append(record)
    for cell in cells.values():
        candidates = [r for r in cell.runs if _is_number(metric_values(r)["id_val"])]
        if selection == "per_seed":
            for seed in sorted({r["config"]["seed"] for r in candidates}):
                cell.chosen.append(_best([r for r in candidates if r["config"]["seed"] == seed]))
        elif candidates:
            lrs = sorted({r["config"]["lr"] for r in candidates})
            mean_val = {lr: mean(_id_val(r) for r in candidates if r["config"]["lr"] == lr) for lr in lrs}
            best_lr = max(lrs, key=lambda lr: (mean_val[lr], -lr))
            cell.chosen = sorted(
                (r for r in candidates if r["config"]["lr"] == best_lr), key=lambda r: r["config"]["seed"]
            )
    return list(cells.values())


def interval90(values: list[float]) -> tuple[float, float | None]:
    """Mean and half-width of the two-sided 90% Student-t interval (None for a single value)."""
    if not values:
        raise ValueError("no values to average")
    centre = mean(values)
    if len(values) == 1:
        return centre, None
    from scipy import stats  # imported here: every command line imports this module for SELECTIONS

    half = stats.t.ppf(0.95, len(values) - 1) * stdev(values) / math.sqrt(len(values))
    return centre, float(half)


def summarize(cells: list[Cell]) -> list[dict[str, Any]]:
    """One table row per cell: its setting, counts, chosen LR(s), and mean / 90% half-width per metric.

    A metric's mean is over the seeds whose chosen run reports it; the half-width is the one of
    :func:`interval90` (None with a single seed).

    Parameters
    ----------
    cells : list of Cell
        From :func:`select_best`.

    Returns
    -------
    list of dict
        Rows sorted by setting, each with ``model``, ``dataset``, ``method``, any other setting
        that differs between cells, ``n_seeds`` (chosen runs), ``n_lrs`` (LRs run),
        ``n_diverged``, ``lr`` (the chosen LRs, space-separated) and ``<metric>_mean`` /
        ``<metric>_ci90`` for each metric of :func:`metric_values` (fractions, not percent).
        :mod:`deepnet.sweep.tables` renders them.

    Raises
    ------
    ValueError
        One method recorded with two sets of method options in one row.

    Examples
    --------
    >>> from deepnet.sweep.collect import select_best, summarize
    >>> def record(seed, id_val, ood):
    ...     config = {"model": "resnet50", "dataset": "waterbirds", "method": "sgd", "lr": 1e-3, "seed": seed}
    ...     return {"config": config, "metrics": {"id_val": id_val, "ood": {"test": ood}}}
    >>> row, = summarize(select_best([record(0, 0.80, 0.60), record(1, 0.82, 0.66), record(2, 0.84, 0.63)]))
    >>> row["n_seeds"], row["lr"], round(row["ood/test_mean"], 3), round(row["ood/test_ci90"], 3)
    (3, '0.001', 0.63, 0.051)
    """
    varying = _varying_settings(cells)
    rows = []
    for cell in sorted(cells, key=lambda c: [str(c.setting[k]) for k in _ALWAYS_SHOWN + tuple(varying)]):
        row: dict[str, Any] = {k: cell.setting[k] for k in _ALWAYS_SHOWN + tuple(varying)}
        chosen_lrs = sorted({r["config"]["lr"] for r in cell.chosen})
        row.update(
            n_seeds=len(cell.chosen),
            n_lrs=len({r["config"]["lr"] for r in cell.runs}),
            n_diverged=sum(r.get("status") == DIVERGED for r in cell.runs),
            lr=" ".join(f"{lr:g}" for lr in chosen_lrs),
        )
        names: dict[str, None] = {}
        for record in cell.chosen:
            names.update(dict.fromkeys(metric_values(record)))
        for name in names:
            values = [v for r in cell.chosen if _is_number(v := metric_values(r).get(name))]
            row[f"{name}_mean"], row[f"{name}_ci90"] = interval90(values) if values else (None, None)
        rows.append(row)
    return rows


def per_split(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows without ``ood_avg`` where a row has several OOD splits (their own columns remain):
    an equal-weight average of different shifts is rarely what a table should show."""
    def n_splits(row: dict[str, Any]) -> int:
        return sum(c.startswith("ood/") and c.endswith("_mean") for c in row)

    return [{k: v for k, v in row.items() if not (n_splits(row) > 1 and k.startswith("ood_avg_"))} for row in rows]


def lr_edge_warnings(cells: list[Cell]) -> list[str]:
    """One message per cell whose chosen LR is the smallest or largest of at least three LRs it
    ran: the best LR may lie outside the grid."""
    messages = []
    for cell in cells:
        grid = sorted({r["config"]["lr"] for r in cell.runs})
        if len(grid) < 3:
            continue
        for lr in sorted({r["config"]["lr"] for r in cell.chosen}):
            if lr in (grid[0], grid[-1]):
                edge = "smallest" if lr == grid[0] else "largest"
                name = "/".join(str(cell.setting[k]) for k in _ALWAYS_SHOWN)
                messages.append(f"{name}: the chosen lr {lr:g} is the {edge} of its grid "
                                f"[{', '.join(f'{g:g}' for g in grid)}]; the best LR may lie outside it")
    return messages


def paired_differences(cells: list[Cell], pairs: list[tuple[str, str]], metric: str) -> list[dict[str, Any]]:
    """Method A minus method B on ``metric``, paired by seed: for each setting (model, dataset, ...)
    and pair, the per-seed differences of the two chosen runs, their mean and 90% half-width.

    Pairing by seed removes what the two methods share within a seed (head init, data order), so
    the interval is the one of the difference, not two overlapping intervals. Only seeds where both
    chosen runs report the metric count (``n``). Returns one row per setting with keys
    ``"A-B_mean"``, ``"A-B_ci90"``, ``"A-B_n"``.
    """
    varying = _varying_settings(cells)
    shown = _ALWAYS_SHOWN[:-1] + tuple(varying)
    by_setting: dict[tuple, dict[str, Cell]] = {}
    for cell in cells:
        key = tuple(str(cell.setting[k]) for k in shown)
        by_setting.setdefault(key, {})[cell.setting["method"]] = cell
    rows = []
    for key, methods in sorted(by_setting.items()):
        row: dict[str, Any] = dict(zip(shown, key))
        for a, b in pairs:
            name = f"{a}-{b}"
            seeds_a = {r["config"]["seed"]: metric_values(r).get(metric) for r in methods[a].chosen} if a in methods else {}
            seeds_b = {r["config"]["seed"]: metric_values(r).get(metric) for r in methods[b].chosen} if b in methods else {}
            diffs = [seeds_a[s] - seeds_b[s] for s in sorted(seeds_a.keys() & seeds_b.keys())
                     if _is_number(seeds_a[s]) and _is_number(seeds_b[s])]
            row[f"{name}_mean"], row[f"{name}_ci90"] = interval90(diffs) if diffs else (None, None)
            row[f"{name}_n"] = len(diffs)
        rows.append(row)
    return rows


def _best(records: list[dict]) -> dict:
    return max(records, key=lambda r: (_id_val(r), -r["config"]["lr"]))


def _id_val(record: dict) -> float:
    return float(record["metrics"]["id_val"])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _varying_settings(cells: list[Cell]) -> list[str]:
    """Settings besides model/dataset/method that differ between cells (shown as extra columns).

    Method options (``METHOD_OPTIONS``, e.g. LP-FT's probe scaling) belong to the method, not to
    the row: a table may hold LP-FT with its options next to SGD without, but not one method with
    two sets of options in one row (that is an error naming them; collect such records separately).
    """
    keys = [k for k in (cells[0].setting if cells else {})
            if k not in _ALWAYS_SHOWN + EXECUTION_ONLY + METHOD_OPTIONS]
    varying = [k for k in keys if len({repr(c.setting[k]) for c in cells}) > 1]
    recipes: dict[tuple, set[str]] = {}
    for cell in cells:
        row = tuple(repr(cell.setting[k]) for k in _ALWAYS_SHOWN + tuple(varying))
        recipes.setdefault(row, set()).add(repr({k: cell.setting.get(k) for k in METHOD_OPTIONS}))
    clash = next((row for row, options in recipes.items() if len(options) > 1), None)
    if clash is not None:
        raise ValueError(f"cell {clash} holds one method with different options {sorted(recipes[clash])}; "
                         "collect them separately")
    return varying
