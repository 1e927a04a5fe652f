"""Adversarial search for counterexamples: `python -m theory search CLAIM`.

A claim check (`theory.claims`, `theory.deep_claims`) samples problems at random; a search instead
drives the claim's *margin* (negative = the statement fails on that instance) over the problem
parameters with scipy's differential evolution, a derivative-free global method: down, to break
a bound (C3, C6, C8), or up, to find where a statement that fails by default holds (C10-C12: is
there a region of `DeepConfig` where the freeze-embed mechanism appears?). Integer knobs
(d, k, n, m, seed, categorical choices as indices) go through DE's `integrality` option, so every
evaluated point is a real, reproducible parameter set. The same budget of evaluations is spent on
uniform random sampling of the same box as the baseline. Infeasible combinations (e.g. k >= d - m)
are not evaluated and cost no budget: they count as margin INFEASIBLE.

Each objective maps a parameter dict to a margin; for the two-layer claims the dict is exactly the
keyword arguments of `theory.problem.make_problem` (so ``make_problem(**params)`` rebuilds the worst
instance), for C10-C12 it is the `DeepConfig` overrides plus the problem seed.

References
----------
Kumar et al., arXiv:2202.10054 (C3, C6, C8); Kumar et al., arXiv:2211.09359 (C10-C12).
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy.optimize import differential_evolution
from tqdm import tqdm

from common.helpformat import add_command
from common.registry import Registry
from theory.second_moment import OOD_KINDS

#: margin given to parameter sets that violate a problem constraint (never the worst).
INFEASIBLE = math.inf
#: the search gives up when fewer than 1 in this many proposed points is feasible.
MAX_CALLS_PER_EVAL = 50


@dataclass(frozen=True)
class Knob:
    """One searched parameter: `low`..`high` (log-uniform if log), integer if `integer`, or `choices`."""

    name: str
    low: float = 0.0
    high: float = 1.0
    integer: bool = False
    log: bool = False
    choices: tuple[Any, ...] = ()

    def bounds(self) -> tuple[float, float]:
        if self.choices:
            return (0.0, float(len(self.choices) - 1))
        return (math.log(self.low), math.log(self.high)) if self.log else (self.low, self.high)

    @property
    def discrete(self) -> bool:
        return self.integer or bool(self.choices)

    def value(self, x: float) -> Any:
        if self.choices:
            return self.choices[int(round(x))]
        v = math.exp(x) if self.log else x
        return int(round(v)) if self.integer else float(v)


@dataclass(frozen=True)
class Objective:
    """A claim's margin as a function of parameters, over a box of knobs."""

    name: str
    description: str
    knobs: tuple[Knob, ...]
    margin: Callable[[dict[str, Any]], float]
    fixed: tuple[tuple[str, Any], ...] = ()
    #: False: look for the worst instance (a counterexample, margin < 0); True: for the best (a
    #: region where a statement that fails by default holds, margin > 0).
    maximize: bool = False

    def params(self, x: np.ndarray) -> dict[str, Any]:
        return {**dict(self.fixed), **{kb.name: kb.value(xi) for kb, xi in zip(self.knobs, x)}}


OBJECTIVES: Registry[Objective] = Registry("search objective")

_TWO_LAYER = (Knob("d", 12, 200, integer=True), Knob("k", 1, 6, integer=True), Knob("n", 4, 60, integer=True),
              Knob("m", 1, 60, integer=True), Knob("ood", choices=OOD_KINDS),
              Knob("ood_share", 0.02, 0.98), Knob("head_scale", 0.01, 3.0, log=True),
              Knob("w_norm", 0.1, 10.0, log=True), Knob("seed", 0, 10 ** 6, integer=True))


def _feasible(p: dict[str, Any]) -> bool:
    d, k, n, m = p["d"], p["k"], p["n"], p["m"]
    return m <= n and k < n and k < d - m and 2 * k <= d


def _problem(params: dict[str, Any]):
    from theory.problem import make_problem
    return make_problem(**params)


def _c3_margin(sigma_factor: bool) -> Callable[[dict[str, Any]], float]:
    def margin(params: dict[str, Any]) -> float:
        """(sqrt(min_t L_ood(FT)) - bound) / sqrt(min_t L_ood(FT)): negative iff Thm 3.2/3.3's bound fails."""
        from theory.flows import simulate
        from theory.quantities import ft_lower_bound

        p = _problem(params)
        actual = float(np.sqrt(simulate(p, "ft").ood_loss.min()))
        return (actual - ft_lower_bound(p, sigma_factor=sigma_factor)) / actual

    return margin


def _c6_margin(params: dict[str, Any]) -> float:
    """log(min(LP, FT) / LP-FT) of the final OOD losses: negative iff LP-FT is worse than LP or FT."""
    from theory.flows import lp_limit, simulate

    p = _problem(params)
    lp = p.ood_loss(lp_limit(p), p.B0)
    return float(np.log(min(lp, simulate(p, "ft").ood_loss[-1]) / simulate(p, "lp_ft").ood_loss[-1]))


def _c8_margin(params: dict[str, Any]) -> float:
    """log(L_ood(LP) / L_ood(FT end)) at large eps: negative iff LP still beats FT with poor features."""
    from theory.flows import lp_limit, simulate

    p = _problem(params)
    return float(np.log(p.ood_loss(lp_limit(p), p.B0) / simulate(p, "ft").ood_loss[-1]))


for _name, _desc, _fn, _eps in (
        ("C3", "FT lower bound (Thm 3.2/3.3) with sqrt(sigma_min(Sigma))", _c3_margin(True), (1e-3, 0.5)),
        ("C3-nofactor", "FT lower bound without the sqrt(sigma_min(Sigma)) factor", _c3_margin(False), (1e-3, 0.5)),
        ("C6", "LP-FT <= min(LP, FT) OOD (beyond the paper)", _c6_margin, (0.0, 1.0)),
        ("C8", "FT beats LP OOD with poor features (eps in [1, sqrt 2])", _c8_margin, (1.0, 1.414))):
    _eps_knob = Knob("eps", *_eps, log=_eps[0] > 0 and _eps[1] / _eps[0] > 100)
    OBJECTIVES.add(_name, Objective(_name, _desc, _TWO_LAYER + (_eps_knob,), _fn))

_DEEP = (Knob("init_scale", 0.05, 1.0, log=True), Knob("pre_input_scale", 0.3, 3.0, log=True),
         Knob("feature_shift", 0.0, 1.0), Knob("head_scale", 0.01, 1.0, log=True), Knob("id_dim", 2, 12, integer=True),
         Knob("n_train", 8, 64, integer=True), Knob("rank", 1, 8, integer=True), Knob("ft_epochs", 5, 40, integer=True),
         Knob("ft_batch", 4, 16, integer=True), Knob("seed", 0, 10 ** 6, integer=True))


#: per deep claim: the pretraining rules and fine-tuning methods its margin reads.
_DEEP_RUNS = {"C10": (("adamw",), ("sgd", "sgd_freeze_embed", "adamw")), "C11": (("adamw",), ("adamw", "adamw_freeze_embed")),
              "C12": (("sgd", "adamw"), ("sgd", "adamw"))}


def deep_margin(claim: str, params: dict[str, Any], seeds: list[int]) -> float:
    """`claim`'s margin (theory.deep_claims: paired over problems, mean - Z_SEM sem) on the problems
    drawn from `seeds` with the DeepConfig overrides in `params` (a "seed" entry is ignored);
    INFEASIBLE when pretraining diverges (no pretrained net to fine-tune)."""
    from theory import deep_claims
    from theory.deep_experiment import config_with, run_table

    cfg = config_with(**{key: val for key, val in params.items() if key != "seed"})
    pretrainers, methods = _DEEP_RUNS[claim]
    try:
        table = run_table(cfg, list(seeds), pretrainers=pretrainers, methods=methods)
    except RuntimeError as err:
        if "diverged" not in str(err):
            raise
        return INFEASIBLE
    if claim == "C12":
        return deep_claims.c12_margin(table)
    return (deep_claims.c10_margin if claim == "C10" else deep_claims.c11_margin)(table["adamw"])


for _name, _desc in (("C10", "AdamW-pretrained: SGD worse than AdamW OOD, SGD-freeze-embed matches AdamW"),
                     ("C11", "AdamW-pretrained: freezing the embedding gains AdamW nothing"),
                     ("C12", "the SGD/AdamW gap comes from the pretrain / fine-tune optimizer mismatch")):
    OBJECTIVES.add(_name, Objective(_name, _desc, _DEEP, lambda params, c=_name: deep_margin(c, params, [params["seed"]]),
                                    maximize=True))


def _deep_feasible(p: dict[str, Any]) -> bool:
    return p["ft_batch"] <= p["n_train"] and p["rank"] <= p["id_dim"]


@dataclass
class SearchReport:
    """Outcome of `search`: the extreme instances (lowest margin, or highest with `maximize`)
    found by DE and by random sampling with the same budget; *_hits count evaluations with
    margin < 0 (or > 0 with `maximize`)."""

    claim: str
    budget: int
    de_worst_margin: float
    de_worst_params: dict[str, Any]
    de_evaluations: int
    de_hits: int
    random_worst_margin: float
    random_worst_params: dict[str, Any]
    random_hits: int
    reproduced_margin: float
    skipped: int = 0
    confirm_seeds: int = 0
    confirm_margin: float | None = None

    def format(self) -> str:
        obj = OBJECTIVES.get(self.claim)
        word, hit = ("best", "hold (margin > 0)") if obj.maximize else ("worst", "violate (margin < 0)")
        return "\n".join([
            f"{self.claim}: {obj.description}",
            f"  differential evolution: {word} margin {self.de_worst_margin:.4g} "
            f"({self.de_hits}/{self.de_evaluations} evaluations {hit})",
            f"    params: {self.de_worst_params}",
            f"    re-evaluated from params: {self.reproduced_margin:.4g}",
            f"  random sampling, same budget: {word} margin {self.random_worst_margin:.4g} "
            f"({self.random_hits}/{self.budget} {hit})",
            f"    params: {self.random_worst_params}",
            f"  skipped (evaluated, unusable: deep pretraining diverged): {self.skipped}",
        ] + ([] if self.confirm_margin is None else [
            f"  the best DeepConfig found (either search) on {self.confirm_seeds} fresh problems "
            f"(as `verify` checks it): "
            f"margin {self.confirm_margin:.4g} ({'holds' if self.confirm_margin > 0 else 'fails'})"]))


def search(claim: str, budget: int = 200, seed: int = 0, popsize: int = 5, confirm: int = 8,
           progress: bool = True) -> SearchReport:
    """Drive `claim`'s margin down (up for `maximize` objectives) with differential evolution, and
    sample at random with the same budget.

    Parameters
    ----------
    claim : str
        A name in `OBJECTIVES` (C3, C3-nofactor, C6, C8, C10, C11, C12).
    budget : int
        Feasible margin evaluations for each of the two methods (DE stops when it is spent).
    seed : int
        Seed of DE and of the random sampler.
    popsize : int
        DE population per knob (population = popsize x number of knobs; DE's first generation is a
        Sobol sample of that size, so budgets below it are a quasi-random search).
    confirm : int
        For C10-C12: problems on which the best DeepConfig found by either search is re-checked with
        fresh seeds (a single
        problem's margin can be luck; the region holds only if this margin is > 0). 0: skip.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    SearchReport
        The worst margins and the parameters that reproduce them (``make_problem(**params)`` for
        the two-layer claims; ``config_with(**params minus seed)`` and that seed for C10-C12).
    """
    obj = OBJECTIVES.get(claim)
    feasible = _deep_feasible if claim in ("C10", "C11", "C12") else _feasible
    bounds = [kb.bounds() for kb in obj.knobs]
    integrality = [kb.discrete for kb in obj.knobs]
    bar = tqdm(total=2 * budget, desc=f"search {claim}", unit="eval", disable=not progress)
    log: list[tuple[float, dict[str, Any]]] = []

    class Spent(Exception):
        pass

    calls, skipped = [0], [0]
    sign = -1.0 if obj.maximize else 1.0

    def extreme(record: list) -> tuple[float, dict[str, Any]]:
        return min(record, key=lambda r: sign * r[0])

    def evaluate(x: np.ndarray, record: list) -> float:
        calls[0] += 1
        if calls[0] > MAX_CALLS_PER_EVAL * 2 * budget:
            raise RuntimeError(f"fewer than 1 in {MAX_CALLS_PER_EVAL} points of {claim}'s box are feasible")
        params = obj.params(x)
        if not feasible(params):
            return INFEASIBLE
        if len(record) >= budget:
            raise Spent
        val = float(obj.margin(params))
        if val == INFEASIBLE:                 # evaluated but unusable (a deep pretraining diverged)
            skipped[0] += 1
            return val
        record.append((val, params))
        bar.update(1)
        bar.set_postfix_str(f"{'best' if obj.maximize else 'worst'} {extreme(record)[0]:.3g}")
        return -val if obj.maximize else val

    try:
        differential_evolution(lambda x: evaluate(x, log), bounds, integrality=integrality, seed=seed,
                               maxiter=10 ** 6, popsize=popsize, tol=0.0, polish=False, init="sobol")
    except Spent:
        pass
    rng = np.random.default_rng([seed, 1])
    rand: list[tuple[float, dict[str, Any]]] = []
    while len(rand) < budget:
        x = np.array([rng.uniform(lo, hi) for lo, hi in bounds])
        try:
            evaluate(x, rand)
        except Spent:
            break
    bar.close()
    de_worst, rd_worst = extreme(log), extreme(rand)
    confirm_margin = None
    confirm_params = None
    if obj.maximize and confirm:
        confirm_params = extreme([de_worst, rd_worst])[1]     # the better of the two searches
        fresh = [int(x) for x in np.random.SeedSequence([seed, 2]).generate_state(confirm)]
        confirm_margin = deep_margin(claim, confirm_params, fresh)
    return SearchReport(claim, budget, de_worst[0], de_worst[1], len(log), sum(sign * v < 0 for v, _ in log),
                        rd_worst[0], rd_worst[1], sum(sign * v < 0 for v, _ in rand), float(obj.margin(de_worst[1])),
                        skipped[0], confirm if confirm_margin is not None else 0, confirm_margin)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the `search` sub-command on the CLI's sub-parsers."""
    p = add_command(sub, "search", help="adversarial search for a claim's worst instance (differential evolution)",
                    description=__doc__,
                    examples=["python -m theory search C6", "python -m theory search C10 --budget 60 --confirm 4"])
    p.add_argument("claim", help=f"one of {', '.join(OBJECTIVES.names())}")
    p.add_argument("--budget", type=int, default=200, help="margin evaluations per method")
    p.add_argument("--seed", type=int, default=0, help="seed of the search and of the random baseline")
    p.add_argument("--popsize", type=int, default=5, help="DE population per knob")
    p.add_argument("--confirm", type=int, default=8,
                   help="C10-C12: re-check the best DeepConfig on this many fresh problems (0: skip)")
