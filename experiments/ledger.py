"""The claims ledger: for each claim C1-C13, three verdicts side by side.

* theory: the simulator's check ``theory.verdict.CLAIM_CHECKS[id](instances, seed)``, run for real
  (registered by importing the modules in ``theory.verdict.CHECK_MODULES``);
* paper: the comparisons of the papers' digitized cells that the claim rests on;
* ours: the same comparisons over our own result records (``experiments/results/**/*.jsonl`` in
  the deepnet contract's format), best learning rate chosen on ID validation per (model, dataset,
  method) by ``deepnet.sweep.collect``.

A link that is not built (check not registered, no paper numbers, no matching records) is
``missing``; it never counts as passing. Claim specs live in ``experiments/claims/C*.toml``.
"""
from __future__ import annotations

import importlib
import json
import operator
import statistics
import tomllib
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from experiments.paper.arithmetic import selector_mean
from theory.verdict import CHECK_MODULES, CLAIM_CHECKS, ClaimResult

CLAIMS_DIR = Path(__file__).resolve().parent / "claims"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq}
METRICS = ("ood_avg", "id_test", "id_val", "worst_group")
#: Where an ``[[ours]]`` comparison reads its rows: "runs" = contract result records summarized
#: (best LR on ID val; metric -> ``<metric>_mean``), "memory" = ``deepnet.measure.memory`` records
#: (one row per model x method; metric = a field such as ``bytes_per_trainable_param``).
#: "gradnorms" = layer gradient norms at init (``deepnet.measure.grad_norms``), one row per (model,
#: dataset) with ``embed_over_max_middle_<norm>`` for norm in raw / param_norm / sqrt_numel.
#: "distortion" = feature-change records (``deepnet.measure.distortion``: one row per model, dataset,
#: method and input kind id / ood, with ``mean`` and ``relative_mean`` ||f(x) - f0(x)|| statistics).
SOURCES = ("runs", "memory", "gradnorms", "distortion")
GRAD_FILES = ("grad_norms", "gradnorms")
GRAD_NORMS = {"raw": "grad_norm", "param_norm": "grad_over_param_norm", "sqrt_numel": "grad_over_sqrt_numel"}


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
        for cmp in spec.get("paper", []) + spec.get("ours", []):
            if cmp["op"] not in OPS:
                raise ValueError(f"{path.name}: unknown op {cmp['op']!r}; known: {sorted(OPS)}")
        for cmp in spec.get("ours", []):
            if cmp.get("source", "runs") not in SOURCES:
                raise ValueError(f"{path.name}: unknown source {cmp['source']!r}; known: {SOURCES}")
            if cmp.get("source", "runs") == "runs" and cmp["metric"] not in METRICS:
                raise ValueError(f"{path.name}: unknown metric {cmp['metric']!r}; known: {METRICS}")
        specs.append(spec)
    return sorted(specs, key=lambda s: int(s["id"][1:]))


def register_theory_checks() -> dict[str, str]:
    """Import the theory modules that register checks; returns {module: error} for those that fail."""
    errors = {}
    for name in CHECK_MODULES:
        try:
            importlib.import_module(name)
        except Exception as err:  # a missing or broken module leaves its claims "missing"
            errors[name] = f"{type(err).__name__}: {err}"
    return errors


def theory_verdict(spec: dict[str, Any], instances: int | None = None) -> ClaimResult:
    """Run the claim's registered theory check (``instances`` overrides the spec's count)."""
    cid, theory = spec["id"], spec.get("theory", {})
    check_id = theory.get("check", cid)
    if check_id not in CLAIM_CHECKS:
        return ClaimResult(cid, "missing", detail=f"no theory check registered for {check_id}")
    n = instances if instances is not None else int(theory.get("instances", 4))
    try:
        result = CLAIM_CHECKS[check_id](n, int(theory.get("seed", 0)))
    except Exception as err:
        tb = traceback.format_exc(limit=2).strip().splitlines()[-1]
        return ClaimResult(cid, "missing", detail=f"theory check raised {type(err).__name__}: {err} ({tb})")
    return result


def _side(cmp: dict[str, Any], side: str, value_of) -> float:
    value = value_of(cmp[side])
    if f"{side}_minus" in cmp:
        value -= value_of(cmp[f"{side}_minus"])
    return value


def paper_verdict(spec: dict[str, Any]) -> ClaimResult:
    """Evaluate the claim's comparisons of the papers' cells."""
    cid, comparisons = spec["id"], spec.get("paper", [])
    if not comparisons:
        return ClaimResult(cid, "missing", detail=spec.get("paper_note", "no paper numbers linked"))
    numbers, failed = {}, []
    for i, cmp in enumerate(comparisons):
        lhs, rhs = _side(cmp, "lhs", selector_mean), _side(cmp, "rhs", selector_mean)
        numbers[f"paper{i + 1}"] = f"{lhs:.2f} {cmp['op']} {rhs:.2f}"
        if not OPS[cmp["op"]](lhs, rhs):
            failed.append(cmp["text"])
    detail = "; ".join(c["text"] for c in comparisons)
    if failed:
        detail = "does not hold: " + "; ".join(failed)
    return ClaimResult(cid, "fail" if failed else "pass", numbers=numbers, detail=detail,
                       instances=len(comparisons), violations=len(failed))


def _jsonl_records(paths: Iterable[str | Path]) -> list[tuple[Path, list[dict]]]:
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(path.rglob("*.jsonl"))
        elif path.is_file():
            files.append(path)
    out = []
    for f in files:
        out.append((f, [json.loads(line) for line in f.read_text().splitlines() if line.strip()]))
    return out


def run_record_files(paths: Iterable[str | Path]) -> list[Path]:
    """The JSON-lines files under `paths` whose records are all contract run records (have a
    ``config`` and ``metrics``); measurement files (memory, gradient norms) are left out."""
    return [f for f, recs in _jsonl_records(paths) if recs and all("config" in r and "metrics" in r for r in recs)]


def measurement_rows(paths: Iterable[str | Path], field: str) -> list[dict[str, Any]]:
    """Measurement records under `paths` that carry `field` (e.g. memory records carry
    ``bytes_per_trainable_param``, feature-distortion records ``relative_mean``)."""
    return [r for _, recs in _jsonl_records(paths) for r in recs if field in r]


def grad_norm_records(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Gradient-norm measurements as {"model", "dataset", "groups": [group dicts, bottom -> top]};
    accepts files of nested records or of one row per group (with ``index``)."""
    grouped: dict[tuple[str, str], list[dict]] = {}
    for f, recs in _jsonl_records(paths):
        if not f.name.startswith(GRAD_FILES):
            continue
        for r in recs:
            groups = r["groups"] if "groups" in r else [r]
            grouped.setdefault((r["model"], r["dataset"]), []).extend(groups)
    return [{"model": m, "dataset": d, "groups": sorted(g, key=lambda x: x.get("index", 0))}
            for (m, d), g in grouped.items()]


def grad_norm_rows(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """One row per (model, dataset): the embedding layer's G over the largest middle layer's G."""
    rows = []
    for rec in grad_norm_records(paths):
        row = {"model": rec["model"], "dataset": rec["dataset"]}
        for name, key in GRAD_NORMS.items():
            embed = [g[key] for g in rec["groups"] if g["kind"] == "embed"]
            middle = [g[key] for g in rec["groups"] if g["kind"] == "middle"]
            if embed and middle:
                row[f"embed_over_max_middle_{name}"] = max(embed) / max(middle)
        rows.append(row)
    return rows


def summarize_results(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Our run records as one row per (model, dataset, method, ...) with best-on-ID-val metrics
    (``<metric>_mean`` over seeds), via ``deepnet.sweep.collect``. No records -> []."""
    files = run_record_files(paths)
    if not files:
        return []
    from deepnet.sweep.collect import load_records, select_best, summarize

    ok = [r for r in load_records(files) if r.get("status") == "ok"]
    return summarize(select_best(ok)) if ok else []


def _matches(row: dict[str, Any], sel: dict[str, Any]) -> bool:
    return all(row.get(k) == v for k, v in sel.items())


#: Columns of a summarized run row that are not settings (metrics and LR-selection bookkeeping).
_NOT_SETTINGS = ("n_seeds", "n_lrs", "n_diverged", "lr", "method")


def _is_setting(key: str, cmp: dict[str, Any]) -> bool:
    """Keys that must be equal for two rows to be compared: every run setting but the method (so
    runs of different epochs or image sizes are never averaged together); for measurement sources,
    the model and dataset."""
    if cmp.get("source", "runs") != "runs":
        return key in ("model", "dataset")
    return key not in _NOT_SETTINGS and not key.endswith(("_mean", "_ci90"))


def _pairs(rows: list[dict[str, Any]], cmp: dict[str, Any]) -> dict[tuple, dict[str, float]]:
    """Metric values of each selector, grouped by the settings the selectors leave free. A
    selector ``{value = x}`` is the constant x."""
    metric = cmp["metric"] if cmp.get("source", "runs") != "runs" else f"{cmp['metric']}_mean"
    sides = [s for s in ("lhs", "lhs_minus", "rhs", "rhs_minus") if s in cmp]
    constants = {s: float(cmp[s]["value"]) for s in sides if "value" in cmp[s]}
    fixed = set().union(*(cmp[s].keys() for s in sides))
    groups: dict[tuple, dict[str, list[float]]] = {}
    for row in rows:
        free = tuple(sorted((k, str(v)) for k, v in row.items() if _is_setting(k, cmp) and k not in fixed))
        for side in sides:
            if side not in constants and _matches(row, cmp[side]) and isinstance(row.get(metric), (int, float)):
                groups.setdefault(free, {}).setdefault(side, []).append(float(row[metric]))
    out = {}
    for group, found in groups.items():
        values = {s: statistics.mean(v) for s, v in found.items()} | constants
        if set(values) == set(sides):
            out[group] = values
    return out


def ours_verdict(spec: dict[str, Any], rows: dict[str, list[dict[str, Any]]]) -> ClaimResult:
    """Evaluate the claim's comparisons over our rows ({source: rows}, see SOURCES)."""
    cid, comparisons = spec["id"], spec.get("ours", [])
    if not comparisons:
        return ClaimResult(cid, "missing", detail=spec.get("ours_note", "no comparison of our runs defined"))
    numbers, failed, checked = {}, [], 0
    for i, cmp in enumerate(comparisons):
        for group, vals in sorted(_pairs(rows.get(cmp.get("source", "runs"), []), cmp).items()):
            lhs = vals["lhs"] - vals.get("lhs_minus", 0.0)
            rhs = vals["rhs"] - vals.get("rhs_minus", 0.0)
            where = ",".join(v for _, v in group) or "all"
            numbers[f"ours{i + 1}[{where}]"] = f"{lhs:.6g} {cmp['op']} {rhs:.6g}"
            checked += 1
            if not OPS[cmp["op"]](lhs, rhs):
                failed.append(f"{cmp['text']} [{where}]")
    if checked == 0:
        wanted = "; ".join(c["text"] for c in comparisons)
        return ClaimResult(cid, "missing", detail=f"no result records for: {wanted}")
    detail = "does not hold: " + "; ".join(failed) if failed else "; ".join(c["text"] for c in comparisons)
    return ClaimResult(cid, "fail" if failed else "pass", numbers=numbers, detail=detail,
                       instances=checked, violations=len(failed))


def build_ledger(
    results: Iterable[str | Path] = (RESULTS_DIR,),
    instances: int | None = None,
    claims: list[str] | None = None,
    progress: bool = False,
) -> list[LedgerRow]:
    """Join theory, paper and our runs into one row per claim (optionally only `claims`)."""
    register_theory_checks()
    results = list(results)
    rows = {"runs": summarize_results(results), "memory": measurement_rows(results, "bytes_per_trainable_param"),
            "gradnorms": grad_norm_rows(results), "distortion": measurement_rows(results, "relative_mean")}
    specs = [s for s in load_claim_specs() if claims is None or s["id"] in claims]
    if progress:
        from tqdm import tqdm

        specs = tqdm(specs, desc="claims", unit="claim")
    return [LedgerRow(s["id"], s["statement"], theory_verdict(s, instances), paper_verdict(s), ours_verdict(s, rows))
            for s in specs]
