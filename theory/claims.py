"""Theory checks of claims C1-C8 (experiments' claims ledger) on random two-layer linear problems.

Each `@register_claim` check runs `instances` random problems drawn reproducibly from `seed`
(instance i of claim Cn uses numpy's generator seeded by [seed, n, i]) and returns a ClaimResult with
the numbers behind its verdict. The work per instance is a module-level function, so a caller may
pass `map_fn` (e.g. a process pool's map) to spread instances over cores; results do not depend on it.

Statements proven in the paper (C1, C2 and C6 with perfect features) report their failures in
numbers["proven_violations"]; the CLI exits non-zero on those.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, Iterable

import numpy as np

from theory.flows import lp_limit, simulate
from theory.problem import Problem, make_problem
from theory.quantities import distance_to_row_space, ft_lower_bound, lp_ft_ood_ratio
from theory.verdict import ClaimResult, register_claim

#: OOD kinds the random claim instances draw from (fixed, so that seeds keep their problems).
CLAIM_OOD_KINDS = ("identity", "random", "in_S", "out_S")

MapFn = Callable[[Callable[[int], dict], Iterable[int]], Iterable[dict]]

#: C1: max_t ||(B(t) - B0) x|| over unit x in S_perp must stay below this (B entries are O(1);
#: the full integrator keeps B - B0 in S up to rounding, so only float error can appear).
PERP_TOL = 1e-10
#: C2: max_t ||(v v^T - B B^T)(t) - (...)(0)||_F allowed at the solver's rtol 1e-10 / atol 1e-12.
BALANCE_TOL = 1e-8
#: C6 perfect features: LP-FT's OOD loss and feature motion must stay below these for all t
#: (the zero-loss manifold is neutral, so solver error may wander along it by ~1e3 atol).
ZERO_OOD_TOL = 1e-14
STILL_TOL = 1e-8
#: C6 imperfect features: LP-FT OOD <= min(LP, FT) OOD * (1 + REL) + ABS.
C6_REL, C6_ABS = 1e-8, 1e-14
#: C4: eps sweep (same problem otherwise) for the LP/FT ratio trend.
C4_EPS = (0.4, 0.2, 0.1, 0.05, 0.025)
#: C8: eps sweep (same problem otherwise) for where FT starts to win.
C8_EPS = (0.05, 0.2, 0.5, 1.0, 1.4)


def _rng(claim_number: int, seed: int, i: int) -> np.random.Generator:
    return np.random.default_rng([seed, claim_number, i])


def _draw(rng: np.random.Generator, **overrides: Any) -> Problem:
    """A random problem with well-conditioned data (n = 3m, k <= m/2) and small dimensions (fast flows)."""
    m = int(rng.integers(5, 11))
    n = 3 * m
    params = dict(d=n + int(rng.integers(10, 31)), k=int(rng.integers(2, min(4, m // 2) + 1)), n=n, m=m,
                  eps=float(rng.uniform(0.0, 1.0)), ood=str(rng.choice(CLAIM_OOD_KINDS)),
                  ood_share=0.95, head_scale=float(rng.choice([0.1, 0.5, 1.0])),
                  seed=int(rng.integers(2 ** 31)))
    params.update(overrides)
    return make_problem(**params)


def _run(fn: Callable[..., dict], instances: int, seed: int, map_fn: MapFn | None) -> list[dict]:
    if instances < 1:
        raise ValueError(f"instances must be >= 1, got {instances}")
    return list((map_fn or map)(partial(fn, seed=seed), range(instances)))


def _col(rows: list[dict], key: str) -> np.ndarray:
    return np.array([r[key] for r in rows], dtype=float)


def _with_random_labels(p: Problem, rng: np.random.Generator) -> Problem:
    return Problem(p.X, rng.standard_normal(p.n), p.B_star, p.v_star, p.B0, p.v0, p.Sigma)


# C1 --------------------------------------------------------------------------------------------
def _c1_instance(i: int, seed: int) -> dict:
    rng = _rng(1, seed, i)
    p = _draw(rng)
    random_labels = bool(i % 2)
    if random_labels:                      # invariant 1 holds for any labels
        p = _with_random_labels(p, rng)
    tr = simulate(p, "ft", integrator="full", n_times=60)
    return dict(perp_drift=float(tr.perp_drift.max()), feature_change=float(tr.feature_change[-1]),
                random_labels=random_labels)


@register_claim("C1")
def check_c1(instances: int, seed: int, map_fn: MapFn | None = None) -> ClaimResult:
    """Invariant 1 (Lemma A.3): FT never changes B x for x in S_perp (full-space integrator)."""
    rows = _run(_c1_instance, instances, seed, map_fn)
    drift, moved = _col(rows, "perp_drift"), _col(rows, "feature_change")
    bad = int(np.sum(drift > PERP_TOL))
    return ClaimResult(
        "C1", "fail" if bad else "pass", instances=instances, violations=bad,
        worst_margin=float(PERP_TOL - drift.max()),
        numbers=dict(max_perp_drift=float(drift.max()), median_perp_drift=float(np.median(drift)),
                     median_feature_change=float(np.median(moved)), tolerance=PERP_TOL,
                     random_label_instances=int(sum(r["random_labels"] for r in rows)),
                     proven_violations=bad),
        detail=f"max_t ||(B(t)-B0) P_Sperp||_2 <= {PERP_TOL:g} while ||B-B0||_F moved by a median "
               f"{np.median(moved):.3g} (half the instances with random labels)")


# C2 --------------------------------------------------------------------------------------------
def _c2_instance(i: int, seed: int) -> dict:
    p = _draw(_rng(2, seed, i))
    tr = simulate(p, "ft", integrator="full", n_times=60)
    return dict(balance_drift=float(tr.balance_drift.max()), feature_change=float(tr.feature_change[-1]))


@register_claim("C2")
def check_c2(instances: int, seed: int, map_fn: MapFn | None = None) -> ClaimResult:
    """Invariant 2 (Lemma A.4): v v^T - B B^T is conserved by the FT flow."""
    rows = _run(_c2_instance, instances, seed, map_fn)
    drift = _col(rows, "balance_drift")
    bad = int(np.sum(drift > BALANCE_TOL))
    return ClaimResult(
        "C2", "fail" if bad else "pass", instances=instances, violations=bad,
        worst_margin=float(BALANCE_TOL - drift.max()),
        numbers=dict(max_balance_drift=float(drift.max()), median_balance_drift=float(np.median(drift)),
                     tolerance=BALANCE_TOL, proven_violations=bad),
        detail=f"max_t ||(vv^T-BB^T)(t)-(vv^T-BB^T)(0)||_F <= {BALANCE_TOL:g} (solver rtol 1e-10)")


# C3 --------------------------------------------------------------------------------------------
def _c3_instance(i: int, seed: int) -> dict:
    rng = _rng(3, seed, i)
    p = _draw(rng, eps=float(np.exp(rng.uniform(np.log(1e-3), np.log(0.5)))))
    tr = simulate(p, "ft")
    return dict(eps=p.eps, actual=float(np.sqrt(tr.ood_loss.min())),
                bound=ft_lower_bound(p, sigma_factor=True), bound_no_factor=ft_lower_bound(p, sigma_factor=False))


@register_claim("C3")
def check_c3(instances: int, seed: int, map_fn: MapFn | None = None) -> ClaimResult:
    """FT lower bound (Thm 3.2/3.3) vs sqrt(min_t L_ood) along the FT flow (eps log-uniform in [1e-3, 0.5])."""
    rows = _run(_c3_instance, instances, seed, map_fn)
    actual, bound, bound_nf = _col(rows, "actual"), _col(rows, "bound"), _col(rows, "bound_no_factor")
    live = bound > 0
    margin = actual - bound
    bad = int(np.sum(live & (margin < -1e-9)))
    bad_nf = int(np.sum((bound_nf > 0) & (actual - bound_nf < -1e-9)))
    ratio = bound[live] / actual[live]
    vacuous = float(1.0 - live.mean())
    verdict = "fail" if bad else ("vacuous" if vacuous > 0.5 else "pass")
    eps = _col(rows, "eps")
    return ClaimResult(
        "C3", verdict, instances=instances, violations=bad,
        worst_margin=float(margin[live].min()) if live.any() else None,
        numbers=dict(vacuous_fraction=vacuous, non_vacuous=int(live.sum()),
                     median_bound_over_actual=float(np.median(ratio)) if live.any() else None,
                     max_bound_over_actual=float(ratio.max()) if live.any() else None,
                     max_eps_non_vacuous=float(eps[live].max()) if live.any() else None,
                     violations_without_sigma_factor=bad_nf,
                     non_vacuous_without_sigma_factor=int(np.sum(bound_nf > 0))),
        detail="bound (with sqrt(sigma_min(Sigma))) vs sqrt(min over the FT trajectory of L_ood); "
               "'vacuous' when the bound is <= 0 on most instances")


# C4 --------------------------------------------------------------------------------------------
def _c4_instance(i: int, seed: int) -> dict:
    rng = _rng(4, seed, i)
    base = dict(ood=str(rng.choice(["identity", "out_S"])))
    state = rng.bit_generator.state
    ratios = []
    for eps in C4_EPS:
        rng.bit_generator.state = state                        # same problem, only eps changes
        p = _draw(rng, eps=eps, **base)
        lp = p.ood_loss(lp_limit(p), p.B0)
        ft = simulate(p, "ft")
        ratios.append(lp_ft_ood_ratio(lp, float(ft.ood_loss.min())))
    slope = float(np.polyfit(np.log(C4_EPS), np.log(ratios), 1)[0])
    return dict(slope=slope, **{f"ratio_eps_{e:g}": r for e, r in zip(C4_EPS, ratios)})


@register_claim("C4")
def check_c4(instances: int, seed: int, map_fn: MapFn | None = None) -> ClaimResult:
    """Thm 3.4/3.5: L_ood(LP) / min_t L_ood(FT) shrinks as eps -> 0 (log-log slope over an eps sweep)."""
    rows = _run(_c4_instance, instances, seed, map_fn)
    slope = _col(rows, "slope")
    first, last = _col(rows, f"ratio_eps_{C4_EPS[0]:g}"), _col(rows, f"ratio_eps_{C4_EPS[-1]:g}")
    bad = int(np.sum((slope <= 0) | (last >= first)))
    numbers = {"median_slope": float(np.median(slope)), "min_slope": float(slope.min())}
    numbers.update({f"median_ratio_eps_{e:g}": float(np.median(_col(rows, f"ratio_eps_{e:g}"))) for e in C4_EPS})
    numbers["fraction_lp_wins_at_smallest_eps"] = float(np.mean(last < 1))
    return ClaimResult(
        "C4", "fail" if bad else "pass", instances=instances, violations=bad,
        worst_margin=float(slope.min()), numbers=numbers,
        detail=f"eps sweep {C4_EPS} on identity / out-of-S OOD covariance; a violation is a "
               "non-positive log-log slope or a ratio that did not shrink")


# C5 --------------------------------------------------------------------------------------------
def _c5_instance(i: int, seed: int) -> dict:
    rng = _rng(5, seed, i)
    p = _draw(rng, eps=float(rng.uniform(0.05, 1.0)))
    ft = simulate(p, "ft")
    return dict(lp=p.id_loss(lp_limit(p), p.B0), ft=float(ft.id_loss[-1]),
                off_rowspace=distance_to_row_space(p.w_star, p.B0),
                converged=bool(ft.train_loss[-1] <= 1e-10 * ft.train_loss[0]))


@register_claim("C5")
def check_c5(instances: int, seed: int, map_fn: MapFn | None = None) -> ClaimResult:
    """Prop 3.1: if w* is not in rowspace(B0) and FT converges, FT's ID loss < LP's."""
    rows = _run(_c5_instance, instances, seed, map_fn)
    lp, ft, off = _col(rows, "lp"), _col(rows, "ft"), _col(rows, "off_rowspace")
    premise = (off > 1e-6) & np.array([r["converged"] for r in rows])
    bad = int(np.sum(premise & (ft >= lp)))
    ratio = ft[premise] / lp[premise]
    return ClaimResult(
        "C5", "fail" if bad else ("pass" if premise.any() else "vacuous"), instances=instances,
        violations=bad, worst_margin=float(np.min(lp[premise] - ft[premise])) if premise.any() else None,
        numbers=dict(premise_holds=int(premise.sum()), median_id_ft_over_lp=float(np.median(ratio)),
                     max_id_ft_over_lp=float(ratio.max()), median_id_lp=float(np.median(lp))),
        detail="ID loss ||P_S e||^2 at the end of FT vs at LP's limit")


# C6 --------------------------------------------------------------------------------------------
def _c6_instance(i: int, seed: int) -> dict:
    rng = _rng(6, seed, i)
    eps = float(rng.uniform(0.02, 0.5))
    state = rng.bit_generator.state
    p = _draw(rng, eps=eps)
    lp, ft, lpft = p.ood_loss(lp_limit(p), p.B0), simulate(p, "ft"), simulate(p, "lp_ft")
    rng.bit_generator.state = state
    q = _draw(rng, eps=0.0)                                   # same problem, perfect features
    ft0, lpft0 = simulate(q, "ft"), simulate(q, "lp_ft")
    return dict(lp=lp, ft=float(ft.ood_loss[-1]), lp_ft=float(lpft.ood_loss[-1]),
                perfect_lp_ft_ood=float(lpft0.ood_loss.max()), perfect_lp_ft_move=float(lpft0.feature_change.max()),
                perfect_ft_min_ood=float(ft0.ood_loss.min()))


@register_claim("C6")
def check_c6(instances: int, seed: int, map_fn: MapFn | None = None) -> ClaimResult:
    """LP-FT: OOD <= min(LP, FT) (beyond the paper), and with perfect features (Prop 3.7)
    L_ood = 0 for all t and no motion, while FT from a random head keeps L_ood > 0."""
    rows = _run(_c6_instance, instances, seed, map_fn)
    lp, ft, lpft = _col(rows, "lp"), _col(rows, "ft"), _col(rows, "lp_ft")
    best = np.minimum(lp, ft)
    bad_sweep = int(np.sum(lpft > best * (1 + C6_REL) + C6_ABS))
    z_ood, z_move, z_ft = _col(rows, "perfect_lp_ft_ood"), _col(rows, "perfect_lp_ft_move"), _col(rows, "perfect_ft_min_ood")
    bad_proven = int(np.sum((z_ood > ZERO_OOD_TOL) | (z_move > STILL_TOL) | (z_ft <= ZERO_OOD_TOL)))
    bad = bad_sweep + bad_proven
    return ClaimResult(
        "C6", "fail" if bad else "pass", instances=instances, violations=bad,
        worst_margin=float(np.min(np.log(best / lpft))),
        numbers=dict(sweep_violations=bad_sweep, proven_violations=bad_proven,
                     fraction_lp_ft_le_lp=float(np.mean(lpft <= lp * (1 + C6_REL) + C6_ABS)),
                     fraction_lp_ft_le_ft=float(np.mean(lpft <= ft * (1 + C6_REL) + C6_ABS)),
                     median_lp_ft_over_lp=float(np.median(lpft / lp)), max_lp_ft_over_lp=float(np.max(lpft / lp)),
                     median_lp_ft_over_ft=float(np.median(lpft / ft)), max_lp_ft_over_ft=float(np.max(lpft / ft)),
                     perfect_max_lp_ft_ood=float(z_ood.max()), perfect_max_lp_ft_motion=float(z_move.max()),
                     perfect_min_ft_ood=float(z_ft.min())),
        detail=f"eps ~ U(0.02, 0.5), final OOD losses; worst margin = min log(min(LP, FT) / LP-FT); perfect "
               f"features: LP-FT OOD <= {ZERO_OOD_TOL:g} and motion <= {STILL_TOL:g} for all t, FT min_t OOD > "
               f"{ZERO_OOD_TOL:g}")


# C7 --------------------------------------------------------------------------------------------
def _c7_instance(i: int, seed: int) -> dict:
    rng = _rng(7, seed, i)
    p = _draw(rng, eps=float(np.exp(rng.uniform(np.log(0.01), np.log(0.5)))))
    ft, lpft = simulate(p, "ft"), simulate(p, "lp_ft")
    return dict(eps=p.eps, ratio=float(lpft.feature_change[-1] / ft.feature_change[-1]))


@register_claim("C7")
def check_c7(instances: int, seed: int, map_fn: MapFn | None = None) -> ClaimResult:
    """||B_lp_ft - B0||_F / ||B_ft - B0||_F at the end of training (eps log-uniform in [0.01, 0.5]).

    Violation: a ratio >= 1. Verdict pass needs also a median ratio <= 0.1 ("orders of magnitude")."""
    rows = _run(_c7_instance, instances, seed, map_fn)
    ratio, eps = _col(rows, "ratio"), _col(rows, "eps")
    bad = int(np.sum(ratio >= 1))
    med = float(np.median(ratio))
    small = eps <= np.median(eps)
    return ClaimResult(
        "C7", "pass" if not bad and med <= 0.1 else "fail", instances=instances, violations=bad,
        worst_margin=float(1 - ratio.max()),
        numbers=dict(median_ratio=med, max_ratio=float(ratio.max()), median_fold_less=float(1 / med),
                     median_ratio_small_eps_half=float(np.median(ratio[small])),
                     median_ratio_large_eps_half=float(np.median(ratio[~small]))),
        detail="feature change of LP-FT over FT; pass: never >= 1 and median <= 0.1")


# C8 --------------------------------------------------------------------------------------------
def _split_error(p: Problem, v: np.ndarray, B: np.ndarray) -> tuple[float, float]:
    """(||P_S e||^2 / m, ||P_Sperp e||^2 / (d - m)): OOD loss under Sigma(s) = d (s P_S/m + (1-s) P_perp/(d-m))
    is d (s a + (1 - s) b), so one trajectory answers every OOD share s in S."""
    e = B.T @ v - p.w_star
    a = float(np.sum((p.S_basis.T @ e) ** 2))
    return a / p.m, (float(e @ e) - a) / (p.d - p.m)


def _c8_instance(i: int, seed: int) -> dict:
    rng = _rng(8, seed, i)
    state = rng.bit_generator.state
    out = {}
    for eps in C8_EPS:
        rng.bit_generator.state = state                        # same problem, only eps changes
        p = _draw(rng, eps=eps, ood="identity")
        ft = simulate(p, "ft")
        a_ft, b_ft = _split_error(p, ft.v_final, ft.features())
        a_lp, b_lp = _split_error(p, lp_limit(p), p.B0)
        s_id = p.m / p.d                                       # identity Sigma = share m/d in S
        out[f"ratio_{eps:g}"] = (s_id * a_ft + (1 - s_id) * b_ft) / (s_id * a_lp + (1 - s_id) * b_lp)
        alpha, beta = a_ft - a_lp, b_ft - b_lp                 # FT wins for shares s with s alpha + (1-s) beta < 0
        out[f"crossover_{eps:g}"] = 0.0 if beta <= 0 else (beta / (beta - alpha) if alpha < 0 else np.inf)
    return out


@register_claim("C8")
def check_c8(instances: int, seed: int, map_fn: MapFn | None = None) -> ClaimResult:
    """FT beats LP OOD when features are poor or the shift is small (slides; no theorem).

    Per problem, an eps sweep with identity Sigma gives r(eps) = L_ood(FT end) / L_ood(LP); the OOD
    share s of Sigma's trace inside S is then varied exactly (`_split_error`) to find the crossover
    s* above which FT wins. Violations: r not decreasing in eps (log-log slope >= 0), LP still
    winning at the largest eps, or FT winning at no share (s* >= 1)."""
    rows = _run(_c8_instance, instances, seed, map_fn)
    ratios = np.array([[r[f"ratio_{e:g}"] for e in C8_EPS] for r in rows])
    cross = np.array([[r[f"crossover_{e:g}"] for e in C8_EPS] for r in rows])
    slope = np.array([np.polyfit(np.log(C8_EPS), np.log(rr), 1)[0] for rr in ratios])
    bad_trend, bad_poor, bad_shift = slope >= 0, ratios[:, -1] >= 1, np.any(cross >= 1, axis=1)
    bad = int(np.sum(bad_trend | bad_poor | bad_shift))
    numbers = {"median_slope": float(np.median(slope)), "trend_violations": int(bad_trend.sum()),
               "poor_feature_violations": int(bad_poor.sum()), "small_shift_violations": int(bad_shift.sum()),
               "ft_win_rate_largest_eps": float(np.mean(ratios[:, -1] < 1))}
    for j, e in enumerate(C8_EPS):
        numbers[f"median_ft_over_lp_eps_{e:g}"] = float(np.median(ratios[:, j]))
        numbers[f"median_crossover_share_eps_{e:g}"] = float(np.median(cross[:, j]))
    return ClaimResult(
        "C8", "fail" if bad else "pass", instances=instances, violations=bad,
        worst_margin=float(np.min(np.log(1 / ratios[:, -1]))), numbers=numbers,
        detail=f"eps sweep {C8_EPS}, identity Sigma; crossover share s*: FT wins OOD when more than s* "
               "of the OOD second moment lies in S; worst margin = min log(LP/FT) at the largest eps")
