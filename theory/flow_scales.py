"""Time and rate scales of the LP / FT / LP-FT flows, from the problem's spectrum: the horizon by
which a flow has converged, the time grid it is recorded on, its stiffness, and the solver
`theory.flows.simulate` picks from it.
"""
from __future__ import annotations

import numpy as np

from theory.lp_flow import lp_limit, lp_operator
from theory.problem import Problem

#: converged flows stop once L <= STOP_FACTOR max(L(0), ||Y||^2) (see `theory.flows.simulate`).
STOP_FACTOR = 1e-18
#: solver="auto" takes the implicit Radau above this `stiffness_index` (explicit DOP853 below):
#: measured crossover on the reduced FT flow (d = 60, k = 3, n = m = 12: DOP853 faster at index
#: 9.6e5, Radau at 2.8e6); the claims' random problems stay below 1e5.
STIFF_INDEX = 1e6


def head_norm_floor(problem: Problem) -> float:
    """A lower bound on ||v||^2 at any zero-training-loss point the FT flow from B0 can reach.

    At such a point B^T v agrees with w* on S, so ||P_S w*|| <= ||B||_2 ||v||; balancedness
    (Lemma A.4) gives B B^T = v v^T - v0 v0^T + B0 B0^T, hence ||B||_2^2 <= 1 + ||v||^2 (B0 has
    orthonormal rows).

    Parameters
    ----------
    problem : Problem
        The two-layer problem.

    Returns
    -------
    float
        (sqrt(1 + 4 ||P_S w*||^2) - 1) / 2.

    References
    ----------
    .. [1] A. Kumar et al., "Fine-Tuning can Distort Pretrained Features and Underperform
       Out-of-Distribution", ICLR 2022, arXiv:2202.10054, Lemma A.4.
    """
    w_s2 = float(np.sum((problem.S_basis.T @ problem.w_star) ** 2))
    return (np.sqrt(1.0 + 4.0 * w_s2) - 1.0) / 2.0


def default_horizon(problem: Problem, method: str = "ft") -> float:
    """A time by which the flow of `method` has converged, from the problem's spectrum.

    FT / LP-FT: ln(1 / STOP_FACTOR) / (lambda_min(G) h), G = coords^T coords the in-S Gram matrix
    and h = `head_norm_floor`: near a zero-loss point the slowest linearised rate of the loss is
    4 ||v||^2 lambda_min(G) >= 4 h lambda_min(G), so this is 4x the time to shrink the loss by
    STOP_FACTOR (generous: converged flows stop early). LP: 40 / mu, mu the smallest nonzero
    eigenvalue of F^T F, F = X B0^T (LP's slowest rate is 2 mu; LP's loss does not go to 0).

    Parameters
    ----------
    problem : Problem
        The two-layer problem.
    method : str
        "lp", "ft" or "lp_ft".

    Returns
    -------
    float
        The horizon; trajectories report their train loss so callers can check convergence.
    """
    if method == "lp":
        lam = np.linalg.eigvalsh(lp_operator(problem)[0])
        return 40.0 / lam[lam > 1e-10 * lam[-1]][0]
    return float(np.log(1.0 / STOP_FACTOR) / (problem.gram_eigenvalues.min() * head_norm_floor(problem)))


def time_grid(t_max: float, n_times: int) -> np.ndarray:
    """0 followed by a geometric grid on [1e-6 t_max, t_max]: resolves early transients and the tail.

    Parameters
    ----------
    t_max : float
        Last time, finite and > 0.
    n_times : int
        Grid size, >= 2 (2: just 0 and t_max).

    Returns
    -------
    ndarray
        (n_times,) increasing times.

    Raises
    ------
    ValueError
        n_times < 2, or t_max not finite and > 0.

    Examples
    --------
    >>> time_grid(1.0, 4).tolist()
    [0.0, 1e-06, 0.001, 1.0]
    """
    if n_times < 2:
        raise ValueError(f"n_times must be >= 2, got {n_times}")
    if not (t_max > 0 and np.isfinite(t_max)):
        raise ValueError(f"t_max must be finite and > 0, got {t_max}")
    if n_times == 2:
        return np.array([0.0, t_max])
    return np.concatenate([[0.0], np.geomspace(1e-6 * t_max, t_max, n_times - 1)])


def stiffness_index(problem: Problem, method: str = "ft") -> float:
    """Horizon over the fastest linearised time scale: about the steps an explicit solver needs.

    LP's fastest rate is 2 lambda_max(F^T F), F = X B0^T. FT / LP-FT: 2 lambda_max(G) (1 + s), G the
    in-S Gram matrix and s = max(||v0||^2, ||v_lp(inf)||^2, h) (h = `head_norm_floor`): the
    linearised FT rates are 2 lambda(G) (||v||^2 + sigma^2(B S)) and ||B S||_2^2 <= 1 + ||v||^2.
    Large for ill-conditioned in-S data (m = n), large heads, and flows that start at rest (LP-FT
    when LP already fits S: early stopping never triggers).

    Parameters
    ----------
    problem : Problem
        The two-layer problem.
    method : str
        "lp", "ft" or "lp_ft".

    Returns
    -------
    float
        `default_horizon` x the fastest rate: an estimate for choosing a solver; accuracy never
        depends on it.
    """
    if method == "lp":
        return float(default_horizon(problem, "lp") * 2.0 * np.linalg.eigvalsh(lp_operator(problem)[0])[-1])
    v_lp = lp_limit(problem)
    s = max(float(problem.v0 @ problem.v0), float(v_lp @ v_lp), head_norm_floor(problem))
    return float(default_horizon(problem, method) * 2.0 * problem.gram_eigenvalues.max() * (1.0 + s))


def choose_solver(problem: Problem, method: str = "ft") -> str:
    """The stepper for `method`'s flow on `problem`.

    Parameters
    ----------
    problem : Problem
        The two-layer problem.
    method : str
        "lp", "ft" or "lp_ft".

    Returns
    -------
    str
        "Radau" (implicit, analytic sparse Jacobian) when `stiffness_index` > STIFF_INDEX, else
        "DOP853".

    Examples
    --------
    >>> from theory.problem import make_problem
    >>> choose_solver(make_problem(10, 2, 6, m=4, eps=0.2, seed=0))
    'DOP853'
    """
    return "Radau" if stiffness_index(problem, method) > STIFF_INDEX else "DOP853"
