"""Our result records as the ledger reads them: the ``*.jsonl`` files under the results folders, and
the rows of each source a claim's ``[[ours]]`` comparisons name (:data:`SOURCES`)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

from common.grad_norms import GRAD_NORMALIZATIONS
from common.io import read_jsonl
from deepnet.config import METHOD_OPTIONS
from deepnet.measure.output import GRADNORMS
from deepnet.sweep.states import OK

METRICS = ("ood_avg", "id_test", "id_val", "worst_group")
#: settings of a run that never separate two cells (the method, with its options, is what a
#: comparison varies; ``deepnet.config.METHOD_OPTIONS`` belong to the method, as in collect).
_NOT_SETTINGS = ("method", "seed", "lr", *METHOD_OPTIONS)
Files = list[tuple[Path, list[dict]]]


# A folder holding this file is left out of a folder scan: records kept for provenance (a table
# an option change superseded, a one-seed screen) that must not enter the ledger's cells beside
# the current table. The file says why; a path named directly is still read.
NOT_IN_LEDGER = "NOT_IN_LEDGER"


def _excluded(file: Path, root: Path) -> bool:
    """Whether a folder from `root` down to `file` holds the :data:`NOT_IN_LEDGER` marker."""
    return any((root / sub / NOT_IN_LEDGER).exists() for sub in file.relative_to(root).parents)


def load_files(paths: Iterable[str | Path], strict: bool = False) -> list[tuple[Path, list[dict]]]:
    """The JSON-lines files under `paths` (files or folders, searched recursively) with their records.

    Under a folder, files below a folder holding a :data:`NOT_IN_LEDGER` marker are left out.
    A malformed line raises ``ValueError`` naming ``file:line`` if `strict`, else it is skipped with
    a ``UserWarning`` naming each bad ``file:line`` and the count (``common.io.read_jsonl``).
    Paths that do not exist are skipped (the command line rejects them before computing).
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(f for f in path.rglob("*.jsonl") if not _excluded(f, path))
        elif path.is_file():
            files.append(path)
    return [(f, read_jsonl(f, strict=strict)) for f in files]


def _is_run(record: dict) -> bool:
    return "config" in record and "metrics" in record


def run_record_files(files: list[tuple[Path, list[dict]]]) -> list[Path]:
    """The files whose records are all contract run records (a ``config`` and ``metrics``);
    measurement files (memory, gradient norms, distortion) are left out."""
    return [f for f, recs in files if recs and all(map(_is_run, recs))]


def run_cells(files: list[tuple[Path, list[dict]]]) -> list:
    """Our finished runs as ``deepnet.sweep.collect`` cells, each with its best-on-ID-val run per seed.

    A config recorded more than once keeps its last record (``collect.latest_records``, as
    ``collect.load_records``).
    """
    from deepnet.sweep.collect import latest_records, select_best

    keep = set(run_record_files(files))
    ok = [r for r in latest_records((f, recs) for f, recs in files if f in keep) if r.get("status") == OK]
    return select_best(ok) if ok else []


def summarize_results(paths: Iterable[str | Path], strict: bool = False) -> list[dict[str, Any]]:
    """Our run records as one row per (model, dataset, method, ...) with best-on-ID-val metrics
    (``<metric>_mean`` and ``<metric>_ci90`` over seeds), via ``deepnet.sweep.collect``. No records -> []."""
    from deepnet.sweep.collect import summarize

    cells = run_cells(load_files(paths, strict))
    return summarize(cells) if cells else []


def summary_tables(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Summarized rows (:func:`summarize_results`) as ``{"md": markdown, "csv": csv}`` text, by
    ``deepnet.sweep.tables`` (mean ± 90% half-width in percent; CSV as fractions)."""
    from deepnet.sweep.tables import to_csv, to_markdown

    return {"md": to_markdown(rows), "csv": to_csv(rows)}


def run_rows(cells: list) -> list[dict[str, Any]]:
    """One row per chosen run (one per cell and seed): its settings, ``seed``, flat metrics and
    ``_settings`` (the names of the settings that identify its cell)."""
    from deepnet.config import EXECUTION_ONLY
    from deepnet.sweep.collect import metric_values

    rows = []
    for cell in cells:
        setting = {k: v for k, v in cell.setting.items() if k not in EXECUTION_ONLY}
        names = tuple(k for k in setting if k not in _NOT_SETTINGS)
        rows += [{**setting, "seed": r["config"]["seed"], **metric_values(r), "_settings": names} for r in cell.chosen]
    return rows


def measurement_rows(files: list[tuple[Path, list[dict]]], field_name: str) -> list[dict[str, Any]]:
    """Measurement records that carry `field_name` (e.g. memory records carry
    ``bytes_per_trainable_param``, feature-distortion records ``relative_mean``)."""
    return [r for _, recs in files for r in recs if field_name in r and not _is_run(r)]


def grad_norm_records(files: list[tuple[Path, list[dict]]]) -> list[dict[str, Any]]:
    """Gradient-norm measurements as {"model", "dataset", "groups": [group dicts, bottom -> top]},
    from the ``gradnorms*.jsonl`` files ``python -m deepnet.measure gradnorms`` writes (one row per
    layer group, with its ``index``)."""
    grouped: dict[tuple[str, str], list[dict]] = {}
    for f, recs in files:
        if f.name.startswith(GRADNORMS):
            for r in recs:
                grouped.setdefault((r["model"], r["dataset"]), []).append(r)
    return [{"model": m, "dataset": d, "groups": sorted(g, key=lambda x: x["index"])}
            for (m, d), g in grouped.items()]


def grad_norm_rows(files: list[tuple[Path, list[dict]]]) -> list[dict[str, Any]]:
    """One row per (model, dataset): the embedding layer's G over the largest middle layer's G."""
    rows = []
    for rec in grad_norm_records(files):
        row = {"model": rec["model"], "dataset": rec["dataset"]}
        for name, key in ((name, n.field) for name, n in GRAD_NORMALIZATIONS.items()):
            embed = [g[key] for g in rec["groups"] if g["kind"] == "embed"]
            middle = [g[key] for g in rec["groups"] if g["kind"] == "middle"]
            if embed and middle:
                row[f"embed_over_max_middle_{name}"] = max(embed) / max(middle)
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Source:
    """Where an ``[[ours]]`` comparison reads its rows: ``rows(files)`` from the loaded result files
    (:func:`load_files`), and whether they are ``exact`` (deterministic, no sampling error)."""

    rows: Callable[[Files], list[dict[str, Any]]]
    exact: bool


def _run_source_rows(files: Files) -> list[dict[str, Any]]:
    return run_rows(run_cells(files))


#: The sources by name. "runs" = contract run records, best LR per seed on ID val (metric: one of
#: METRICS); "memory" = ``deepnet.measure.memory`` records (metric = a field such as
#: ``bytes_per_trainable_param``; byte accounting, exact); "gradnorms" = layer gradient norms at init
#: (``deepnet.measure.grad_norms``), one row per (model, dataset) with
#: ``embed_over_max_middle_<norm>`` for norm in raw / param_norm / sqrt_numel; "distortion" =
#: feature-change records (``deepnet.measure.distortion``: per model, dataset, method, seed and input
#: kind id / ood, with ``mean`` and ``relative_mean`` ||f(x) - f0(x)|| statistics).
SOURCES: dict[str, Source] = {
    "runs": Source(_run_source_rows, exact=False),
    "memory": Source(partial(measurement_rows, field_name="bytes_per_trainable_param"), exact=True),
    "gradnorms": Source(grad_norm_rows, exact=False),
    "distortion": Source(partial(measurement_rows, field_name="relative_mean"), exact=False),
}


def our_rows(files: Files) -> dict[str, list[dict[str, Any]]]:
    """Our rows per source (:data:`SOURCES`) from loaded result files (:func:`load_files`)."""
    return {name: source.rows(files) for name, source in SOURCES.items()}
