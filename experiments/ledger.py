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

Verdict words, the same in every interval-judged column, and how a cell is judged:
:mod:`experiments.verdicts`; our records and the sources a comparison reads: :mod:`experiments.our_records`.
Claim specs live in ``experiments/claims/C*.toml``.
"""
from __future__ import annotations

import importlib
import math
import tomllib
import traceback
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any, Iterable

from experiments.our_records import METRICS, SOURCES, load_files, our_rows
from experiments.paper.arithmetic import rounding_bounds, selector_mean
from experiments.verdicts import OPS, CellVerdict, judged, t90
from theory.verdict import CHECK_MODULES, CLAIM_CHECKS, ClaimResult

# imported from here by the figures and the tests
from experiments.our_records import (NOT_IN_LEDGER, grad_norm_records, grad_norm_rows,  # noqa: F401
                                     measurement_rows, run_cells, run_record_files, run_rows, summarize_results,
                                     summary_tables)
from experiments.verdicts import CLAIM_VERDICTS, IntervalResult, claim_verdict, judge  # noqa: F401

CLAIMS_DIR = Path(__file__).resolve().parent / "claims"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: settings of a measurement row that separate cells.
_MEASUREMENT_SETTINGS = ("model", "dataset")
_SIDES = ("lhs", "lhs_minus", "rhs", "rhs_minus")


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
                         t90(float(result.numbers[e["sem"]]), k), k, e["op"], LOG_TOL if e.get("tolerance") else 0.0)
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
                                 0.0 if SOURCES[source].exact else half, len(diffs), cmp["op"]))
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
