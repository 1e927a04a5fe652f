"""The claims ledger: for each claim C1-C13, three verdicts side by side.

* theory: the simulator's check ``theory.verdict.CLAIM_CHECKS[id](instances, seed)``, run for real
  (registered by importing the modules in ``theory.verdict.CHECK_MODULES``). A proven or exhaustively
  checked statement keeps the check's own word (pass / fail / vacuous / missing). A statistical
  claim (``[[theory.interval]]`` in its spec: C9-C12) is judged like our runs: each paired mean the
  check reports, with its standard error over random problems, becomes a 90% Student-t interval;
  fewer problems than ``theory.deep_claims.MAX_PROBLEMS`` (the checks' cap) mark it ``indicative``.
* paper: the comparisons of the papers' printed cells the claim rests on, each judged over the
  cells' print rounding (every printed cell +-0.05, ``experiments.paper.arithmetic``): a comparison
  whose sign the rounding can flip is unresolved (fragile).
* ours: the same comparisons over our own records (``experiments/results/**/*.jsonl``), per cell
  (the settings the comparison's selectors leave free, e.g. model and dataset): the difference
  lhs - rhs paired by seed, its mean and 90% t-interval over seeds. Runs follow
  ``deepnet.sweep.collect`` (best LR per seed on ID val, ``interval90``), so a difference of two
  methods is exactly ``collect --diff``'s. Deterministic measurements (memory accounting) are exact.

Verdict words, the same in every interval-judged column. A cell: ``supports`` (its interval excludes
the claim's threshold, 0 unless stated, in the claimed direction), ``contradicts`` (excludes it the
other way) or ``unresolved`` (one seed, or the interval contains it). A claim: ``supported`` (>= 1
cell supports, none contradicts), ``contradicted`` (>= 1 contradicts, none supports), ``mixed``
(both), ``inconclusive`` (every cell unresolved), ``missing`` (no cell: no link, or no data). No
verdict comes from an unresolved cell. Claim specs live in ``experiments/claims/C*.toml``.
"""
from __future__ import annotations

import importlib
import math
import operator
import tomllib
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any, Iterable

from scipy import stats

from common.io import read_jsonl
from deepnet.config import METHOD_OPTIONS
from experiments.paper.arithmetic import rounding_bounds, selector_mean
from theory.verdict import CHECK_MODULES, CLAIM_CHECKS, ClaimResult

CLAIMS_DIR = Path(__file__).resolve().parent / "claims"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
       "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)}
METRICS = ("ood_avg", "id_test", "id_val", "worst_group")
#: Where an ``[[ours]]`` comparison reads its rows, and whether they are exact (deterministic, no
#: sampling error). "runs" = contract run records, best LR per seed on ID val (metric: one of
#: METRICS); "memory" = ``deepnet.measure.memory`` records (metric = a field such as
#: ``bytes_per_trainable_param``; byte accounting, exact); "gradnorms" = layer gradient norms at init
#: (``deepnet.measure.grad_norms``), one row per (model, dataset) with
#: ``embed_over_max_middle_<norm>`` for norm in raw / param_norm / sqrt_numel; "distortion" =
#: feature-change records (``deepnet.measure.distortion``: per model, dataset, method, seed and input
#: kind id / ood, with ``mean`` and ``relative_mean`` ||f(x) - f0(x)|| statistics).
SOURCES = {"runs": False, "memory": True, "gradnorms": False, "distortion": False}
GRAD_FILES = ("grad_norms", "gradnorms")
GRAD_NORMS = {"raw": "grad_norm", "param_norm": "grad_over_param_norm", "sqrt_numel": "grad_over_sqrt_numel"}
CELL_VERDICTS = ("supports", "contradicts", "unresolved")
CLAIM_VERDICTS = ("supported", "contradicted", "mixed", "inconclusive", "missing")
#: a difference this close to its threshold counts as touching it (float noise of printed cells).
_TOUCH = 1e-9
#: settings of a run that never separate two cells (the method, with its options, is what a
#: comparison varies; ``deepnet.config.METHOD_OPTIONS`` belong to the method, as in collect).
_NOT_SETTINGS = ("method", "seed", "lr", *METHOD_OPTIONS)
#: settings of a measurement row that separate cells.
_MEASUREMENT_SETTINGS = ("model", "dataset")
_SIDES = ("lhs", "lhs_minus", "rhs", "rhs_minus")


def judge(diff: float, half: float | None, op: str, threshold: float = 0.0) -> str:
    """One cell's verdict from a difference and its interval.

    Parameters
    ----------
    diff : float
        The difference lhs - rhs (centre of the interval).
    half : float or None
        The interval's half-width: 0 for an exact value, None when there is no interval (one seed).
    op : str
        The claimed relation of lhs to rhs, one of OPS: the claim is ``diff op threshold``.
    threshold : float, default 0
        What the difference is compared with.

    Returns
    -------
    str
        ``supports`` if the whole interval lies on the claimed side of the threshold (an exact value:
        if the relation holds), ``contradicts`` if it lies on the other side (for ``==``: if it
        excludes the threshold), else ``unresolved``.
    """
    if half is None:
        return "unresolved"
    if half == 0.0:
        return "supports" if OPS[op](diff, threshold) else "contradicts"
    above, below = diff - half > threshold + _TOUCH, diff + half < threshold - _TOUCH
    if op == "==":
        return "contradicts" if above or below else "unresolved"
    if op in (">", ">="):
        return "supports" if above else "contradicts" if below else "unresolved"
    return "supports" if below else "contradicts" if above else "unresolved"


def claim_verdict(cells: Iterable[str]) -> str:
    """A claim's verdict from its cells' verdicts (see the module docstring); no cell -> missing."""
    cells = list(cells)
    supports, contradicts = "supports" in cells, "contradicts" in cells
    if not cells:
        return "missing"
    if supports and contradicts:
        return "mixed"
    return "supported" if supports else "contradicted" if contradicts else "inconclusive"


@dataclass(frozen=True)
class CellVerdict:
    """One comparison in one cell: the difference, its interval and what it says about the claim.

    ``half`` is the interval's half-width (0: exact, None: no interval); ``n`` the seeds or problems
    it is over (0: not a sample, e.g. the print rounding of the papers' cells).
    """

    comparison: str
    cell: str
    diff: float
    half: float | None
    n: int
    op: str
    threshold: float = 0.0

    @property
    def verdict(self) -> str:
        return judge(self.diff, self.half, self.op, self.threshold)

    def text(self) -> str:
        """``+0.012 ± 0.008 (n=3) > 0: supports``."""
        spread = "exact" if self.half == 0.0 else "no interval" if self.half is None else f"± {self.half:.3g}"
        n = f" (n={self.n})" if self.n else ""
        return f"{self.diff:+.4g} {spread}{n} {self.op} {self.threshold:g}: {self.verdict}"

    def to_dict(self) -> dict[str, Any]:
        return {"comparison": self.comparison, "cell": self.cell, "diff": self.diff, "ci90": self.half,
                "n": self.n, "op": self.op, "threshold": self.threshold, "verdict": self.verdict}


@dataclass
class IntervalResult(ClaimResult):
    """A claim judged cell by cell (a ClaimResult with the claim words and its cells).

    ``counts`` gives the cells that support / contradict / are unresolved; ``indicative`` marks a
    statistical theory check run on fewer problems than are meaningful.
    """

    cells: list[CellVerdict] = field(default_factory=list)
    indicative: bool = False

    def __post_init__(self) -> None:
        if self.verdict not in CLAIM_VERDICTS:
            raise ValueError(f"verdict must be one of {CLAIM_VERDICTS}, got {self.verdict!r}")

    @property
    def counts(self) -> dict[str, int]:
        return {w: sum(c.verdict == w for c in self.cells) for w in CELL_VERDICTS}

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "counts": self.counts, "indicative": self.indicative,
                "cells": [c.to_dict() for c in self.cells]}


def judged(claim: str, cells: list[CellVerdict], detail: str, numbers: dict[str, Any] | None = None,
           indicative: bool = False) -> IntervalResult:
    """The IntervalResult of `cells` (numbers default to each cell's text)."""
    numbers = numbers if numbers is not None else {}
    for c in cells:
        numbers.setdefault(f"{c.comparison}[{c.cell}]" if c.cell else c.comparison, c.text())
    result = IntervalResult(claim, claim_verdict(c.verdict for c in cells), numbers=numbers, detail=detail,
                            instances=len(cells), cells=cells, indicative=indicative)
    result.violations = result.counts["contradicts"]
    return result


@dataclass
class LedgerRow:
    """One claim with its three verdicts."""

    claim: str
    statement: str
    theory: ClaimResult
    paper: ClaimResult
    ours: ClaimResult

    def to_dict(self) -> dict[str, Any]:
        return {"claim": self.claim, "statement": self.statement, "theory": self.theory.to_dict(),
                "paper": self.paper.to_dict(), "ours": self.ours.to_dict()}


def load_claim_specs(claims_dir: Path = CLAIMS_DIR) -> list[dict[str, Any]]:
    """Every claim spec, ordered C1, C2, ..., C13."""
    specs = []
    for path in claims_dir.glob("C*.toml"):
        with open(path, "rb") as f:
            spec = tomllib.load(f)
        if spec.get("id") != path.stem:
            raise ValueError(f"{path.name}: id {spec.get('id')!r} does not match the file name")
        for cmp in spec.get("paper", []) + spec.get("ours", []) + spec.get("theory", {}).get("interval", []):
            if cmp["op"] not in OPS:
                raise ValueError(f"{path.name}: unknown op {cmp['op']!r}; known: {sorted(OPS)}")
        for cmp in spec.get("ours", []):
            if cmp.get("source", "runs") not in SOURCES:
                raise ValueError(f"{path.name}: unknown source {cmp['source']!r}; known: {list(SOURCES)}")
            if cmp.get("source", "runs") == "runs" and cmp["metric"] not in METRICS:
                raise ValueError(f"{path.name}: unknown metric {cmp['metric']!r}; known: {METRICS}")
        specs.append(spec)
    return sorted(specs, key=lambda s: int(s["id"][1:]))


def check_claim_ids(claims: Iterable[str]) -> None:
    """Raise ValueError naming every id in `claims` that is not a claim spec's (ids are ``C1``...)."""
    known = [s["id"] for s in load_claim_specs()]
    unknown = [c for c in claims if c not in known]
    if unknown:
        raise ValueError(f"unknown claim id(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}")


def register_theory_checks() -> dict[str, str]:
    """Import the theory modules that register checks; returns {module: error} for those that fail."""
    errors = {}
    for name in CHECK_MODULES:
        try:
            importlib.import_module(name)
        except Exception as err:  # a missing or broken module leaves its claims "missing"
            errors[name] = f"{type(err).__name__}: {err}"
    return errors


def _t90(sem: float, n: int) -> float | None:
    """Half-width of the two-sided 90% t-interval from a standard error over `n` values."""
    return float(stats.t.ppf(0.95, n - 1) * sem) if n > 1 else None


def theory_intervals(spec: dict[str, Any], result: ClaimResult) -> IntervalResult:
    """A statistical theory check judged by its paired intervals (``[[theory.interval]]``).

    Each entry names the check's ``mean`` and ``sem`` numbers (paired over ``result.instances``
    problems), the claimed ``op`` and the threshold: 0, or with ``tolerance = true`` the checks'
    ``theory.deep_claims.LOG_TOL`` (for "matches" / "gains nothing": at most that log ratio).
    """
    from theory.deep_claims import LOG_TOL, MAX_PROBLEMS

    k = result.instances
    entries = spec["theory"]["interval"]
    cells = [CellVerdict(f"theory{i + 1}", f"{k} problems", float(result.numbers[e["mean"]]),
                         _t90(float(result.numbers[e["sem"]]), k), k, e["op"], LOG_TOL if e.get("tolerance") else 0.0)
             for i, e in enumerate(entries)]
    indicative = k < MAX_PROBLEMS
    scope = f"indicative ({k} < {MAX_PROBLEMS} problems). " if indicative else ""
    texts = "; ".join(f"theory{i + 1}: {e['text']}" for i, e in enumerate(entries))
    detail = (f"{scope}{texts} (90% t-intervals over problems; the check's own rule says {result.verdict}). "
              f"{result.detail}")
    return judged(spec["id"], cells, detail, numbers=dict(result.numbers), indicative=indicative)


def theory_verdict(spec: dict[str, Any], instances: int | None = None) -> ClaimResult:
    """Run the claim's registered theory check (``instances`` overrides the spec's count)."""
    cid, theory = spec["id"], spec.get("theory", {})
    check_id = theory.get("check", cid)
    if check_id not in CLAIM_CHECKS:
        return ClaimResult(cid, "missing", detail=f"no theory check registered for {check_id}")
    n = instances if instances is not None else int(theory.get("instances", 4))
    try:
        result = CLAIM_CHECKS[check_id](n, int(theory.get("seed", 0)))
        if theory.get("interval") and result.verdict != "missing":
            return theory_intervals(spec, result)
    except Exception as err:
        tb = traceback.format_exc(limit=2).strip().splitlines()[-1]
        return ClaimResult(cid, "missing", detail=f"theory check raised {type(err).__name__}: {err} ({tb})")
    return result


def _combine(values: dict[str, float]) -> float:
    """(lhs - lhs_minus) - (rhs - rhs_minus) of the sides present."""
    return (values["lhs"] - values.get("lhs_minus", 0.0)) - (values["rhs"] - values.get("rhs_minus", 0.0))


def paper_verdict(spec: dict[str, Any]) -> ClaimResult:
    """Judge each comparison of the papers' cells over their print rounding (see the module docstring)."""
    cid, comparisons = spec["id"], spec.get("paper", [])
    if not comparisons:
        return ClaimResult(cid, "missing", detail=spec.get("paper_note", "no paper numbers linked"))
    cells = []
    for i, cmp in enumerate(comparisons):
        sides = [s for s in _SIDES if s in cmp]
        means = [selector_mean(cmp[s]) for s in sides]
        diff = _combine(dict(zip(sides, means)))
        lo, hi = rounding_bounds(lambda *v: _combine(dict(zip(sides, v))), means)
        cells.append(CellVerdict(f"paper{i + 1}", "", diff, (hi - lo) / 2, 0, cmp["op"]))
    fragile = [cmp["text"] for c, cmp in zip(cells, comparisons) if c.verdict == "unresolved"]
    wrong = [cmp["text"] for c, cmp in zip(cells, comparisons) if c.verdict == "contradicts"]
    detail = "; ".join(c["text"] for c in comparisons)
    if wrong:
        detail += ". Does not hold: " + "; ".join(wrong)
    if fragile:
        detail += ". Fragile (the print rounding can flip it): " + "; ".join(fragile)
    return judged(cid, cells, detail + "." + (f" {spec['paper_note']}" if "paper_note" in spec else ""))


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

    A config recorded more than once keeps its last record, as ``collect.load_records`` does.
    """
    from deepnet.config import RunConfig
    from deepnet.sweep.collect import select_best

    keep = set(run_record_files(files))
    by_key = {RunConfig.from_dict(r["config"]).key(): r for f, recs in files if f in keep for r in recs}
    ok = [r for r in by_key.values() if r.get("status") == "ok"]
    return select_best(ok) if ok else []


def summarize_results(paths: Iterable[str | Path], strict: bool = False) -> list[dict[str, Any]]:
    """Our run records as one row per (model, dataset, method, ...) with best-on-ID-val metrics
    (``<metric>_mean`` and ``<metric>_ci90`` over seeds), via ``deepnet.sweep.collect``. No records -> []."""
    from deepnet.sweep.collect import summarize

    cells = run_cells(load_files(paths, strict))
    return summarize(cells) if cells else []


def summary_tables(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Summarized rows (:func:`summarize_results`) as ``{"md": markdown, "csv": csv}`` text, by
    ``deepnet.sweep.collect`` (mean ± 90% half-width in percent; CSV as fractions)."""
    from deepnet.sweep.collect import to_csv, to_markdown

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
    """Gradient-norm measurements as {"model", "dataset", "groups": [group dicts, bottom -> top]};
    accepts files of nested records or of one row per group (with ``index``)."""
    grouped: dict[tuple[str, str], list[dict]] = {}
    for f, recs in files:
        if not f.name.startswith(GRAD_FILES):
            continue
        for r in recs:
            groups = r["groups"] if "groups" in r else [r]
            grouped.setdefault((r["model"], r["dataset"]), []).extend(groups)
    return [{"model": m, "dataset": d, "groups": sorted(g, key=lambda x: x.get("index", 0))}
            for (m, d), g in grouped.items()]


def grad_norm_rows(files: list[tuple[Path, list[dict]]]) -> list[dict[str, Any]]:
    """One row per (model, dataset): the embedding layer's G over the largest middle layer's G."""
    rows = []
    for rec in grad_norm_records(files):
        row = {"model": rec["model"], "dataset": rec["dataset"]}
        for name, key in GRAD_NORMS.items():
            embed = [g[key] for g in rec["groups"] if g["kind"] == "embed"]
            middle = [g[key] for g in rec["groups"] if g["kind"] == "middle"]
            if embed and middle:
                row[f"embed_over_max_middle_{name}"] = max(embed) / max(middle)
        rows.append(row)
    return rows


def _matches(row: dict[str, Any], sel: dict[str, Any]) -> bool:
    return all(row.get(k) == v for k, v in sel.items())


def _cell_settings(row: dict[str, Any], fixed: set[str]) -> tuple:
    """The settings that identify a row's cell, less those the selectors fix: a run row's own
    (``_settings``: every setting but the method, so runs of different epochs or image sizes are
    never paired), a measurement's model and dataset."""
    keys = row.get("_settings", _MEASUREMENT_SETTINGS)
    return tuple(sorted((k, str(row[k])) for k in keys if k in row and k not in fixed))


def _shown_settings(groups: list[tuple]) -> set[str]:
    """The settings a cell's label shows: model and dataset, and any other that differs between cells."""
    values: dict[str, set[str]] = {}
    for group in groups:
        for k, v in group:
            values.setdefault(k, set()).add(v)
    return {k for k, vs in values.items() if k in _MEASUREMENT_SETTINGS or len(vs) > 1}


def paired_cells(rows: list[dict[str, Any]], cmp: dict[str, Any], name: str) -> list[CellVerdict]:
    """The comparison `cmp` in every cell where all its sides have data, paired by seed.

    Per cell and seed, each side's value (the mean of its matching rows, e.g. several OOD splits);
    the per-seed differences (lhs - lhs_minus) - (rhs - rhs_minus) over the seeds every side has
    give the mean and the 90% t-interval (``deepnet.sweep.collect.interval90``; exact sources:
    half-width 0). A selector ``{value = x}`` is the constant x.
    """
    from deepnet.sweep.collect import interval90

    source = cmp.get("source", "runs")
    sides = [s for s in _SIDES if s in cmp]
    constants = {s: float(cmp[s]["value"]) for s in sides if "value" in cmp[s]}
    fixed = set().union(*(cmp[s].keys() for s in sides))
    metric = cmp["metric"]
    found: dict[tuple, dict[str, dict[Any, list[float]]]] = {}
    for row in rows:
        value = row.get(metric)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            continue
        for side in sides:
            if side not in constants and _matches(row, cmp[side]):
                group = found.setdefault(_cell_settings(row, fixed), {})
                group.setdefault(side, {}).setdefault(row.get("seed"), []).append(float(value))
    shown = _shown_settings(list(found))
    cells = []
    for group, by_side in sorted(found.items()):
        if set(by_side) | set(constants) != set(sides):
            continue
        seeds = sorted(set.intersection(*(set(v) for v in by_side.values())), key=str)
        diffs = [_combine({s: mean(by_side[s][seed]) for s in by_side} | constants) for seed in seeds]
        if not diffs:
            continue
        centre, half = interval90(diffs)
        label = ",".join(v if k in _MEASUREMENT_SETTINGS else f"{k}={v}" for k, v in group if k in shown)
        cells.append(CellVerdict(name, label or "all", centre,
                                 0.0 if SOURCES[source] else half, len(diffs), cmp["op"]))
    return cells


def ours_verdict(spec: dict[str, Any], rows: dict[str, list[dict[str, Any]]]) -> ClaimResult:
    """Judge the claim's comparisons over our rows ({source: rows}, see SOURCES) cell by cell."""
    cid, comparisons = spec["id"], spec.get("ours", [])
    if not comparisons:
        return ClaimResult(cid, "missing", detail=spec.get("ours_note", "no comparison of our runs defined"))
    cells = [c for i, cmp in enumerate(comparisons)
             for c in paired_cells(rows.get(cmp.get("source", "runs"), []), cmp, f"ours{i + 1}")]
    texts = "; ".join(f"ours{i + 1}: {c['text']}" for i, c in enumerate(comparisons))
    if not cells:
        return ClaimResult(cid, "missing", detail=f"no result records for: {texts}")
    one_seed = sum(c.half is None for c in cells)
    note = f" ({one_seed} cell(s) with one seed: no interval, unresolved)" if one_seed else ""
    return judged(cid, cells, f"{texts}{note}" + (f". {spec['ours_note']}" if "ours_note" in spec else ""))


def our_rows(files: list[tuple[Path, list[dict]]]) -> dict[str, list[dict[str, Any]]]:
    """Our rows per source (see SOURCES) from loaded result files (:func:`load_files`)."""
    return {"runs": run_rows(run_cells(files)), "memory": measurement_rows(files, "bytes_per_trainable_param"),
            "gradnorms": grad_norm_rows(files), "distortion": measurement_rows(files, "relative_mean")}


def ours_verdicts(results: Iterable[str | Path], strict: bool = False) -> list[tuple[dict[str, Any], ClaimResult]]:
    """Every claim's spec with its "ours" verdict alone (no theory check runs), e.g. for figures."""
    rows = our_rows(load_files(results, strict))
    return [(s, ours_verdict(s, rows)) for s in load_claim_specs()]


def build_ledger(
    results: Iterable[str | Path] = (RESULTS_DIR,),
    instances: int | None = None,
    claims: list[str] | None = None,
    progress: bool = False,
    strict: bool = False,
) -> list[LedgerRow]:
    """Join theory, paper and our runs into one row per claim (optionally only `claims`).

    Parameters
    ----------
    results : iterable of str or Path
        Our result files or folders (``*.jsonl`` under a folder, recursively).
    instances : int, optional
        Random problems per theory check (>= 1); default: each claim spec's count.
    claims : list of str, optional
        Only these claim ids (``C1`` ... ``C13``, exactly); unknown ids raise ValueError.
    progress : bool
        Show a progress bar over the claims.
    strict : bool
        A malformed results line raises ValueError instead of being skipped with a warning.
    """
    if instances is not None and instances < 1:
        raise ValueError(f"instances must be >= 1, got {instances}")
    if claims is not None:
        check_claim_ids(claims)
    register_theory_checks()
    rows = our_rows(load_files(results, strict))
    specs = [s for s in load_claim_specs() if claims is None or s["id"] in claims]
    if progress:
        from tqdm import tqdm

        specs = tqdm(specs, desc="claims", unit="claim")
    return [LedgerRow(s["id"], s["statement"], theory_verdict(s, instances), paper_verdict(s), ours_verdict(s, rows))
            for s in specs]
