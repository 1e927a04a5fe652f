"""Linear probing (LP) in closed form: B = B0 stays fixed and only the head v follows the flow.

With F = X B0^T (n x k) the LP flow of L(v) = ||F v - Y||^2 is dv/dt = -2 (F^T F v - F^T Y), a
linear ODE: its limit (`lp_limit`, the head LP-FT starts from) and its whole trajectory
(`lp_closed_form`, the reference the integrators of `theory.flows` are checked against) are exact.
"""
from __future__ import annotations

import numpy as np

from theory.problem import Problem


def lp_operator(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """(F^T F, F^T Y) for F = X B0^T, from the in-S coordinates: F = coords (B0 S)^T.

    Parameters
    ----------
    problem : Problem
        The two-layer problem (X, Y, B0).

    Returns
    -------
    FtF : ndarray
        (k, k) Gram matrix of the frozen features.
    FtY : ndarray
        (k,) their correlation with the labels.
    """
    F = problem.coords @ (problem.B0 @ problem.S_basis).T
    return F.T @ F, F.T @ problem.Y


def lp_limit(problem: Problem, v0: np.ndarray | None = None) -> np.ndarray:
    """v_lp(inf): the limit of the LP flow from v0, in closed form.

    The flow moves v only inside range(F^T), F = X B0^T (n x k), and converges there to the
    min-norm least-squares solution F^+ Y; the component of v0 in null(F) never moves.

    Parameters
    ----------
    problem : Problem
        The two-layer problem (X, Y, B0, v0).
    v0 : ndarray, optional
        Head init (k,); default ``problem.v0``.

    Returns
    -------
    ndarray
        (k,) v_lp(inf) = F^+ Y + (I - F^+ F) v0.

    References
    ----------
    .. [1] A. Kumar, A. Raghunathan, R. Jones, T. Ma, P. Liang, "Fine-Tuning can Distort Pretrained
       Features and Underperform Out-of-Distribution", ICLR 2022, arXiv:2202.10054, Sec. 3 (LP as
       the first stage of LP-FT).

    Examples
    --------
    >>> import numpy as np
    >>> from theory.problem import make_problem
    >>> p = make_problem(10, 2, 6, m=4, eps=0.2, seed=0)
    >>> v = lp_limit(p)
    >>> FtF, FtY = lp_operator(p)
    >>> bool(np.allclose(FtF @ v, FtY))        # the LP normal equations hold at the limit
    True
    """
    v0 = problem.v0 if v0 is None else np.asarray(v0, dtype=float)
    F = problem.coords @ (problem.B0 @ problem.S_basis).T
    F_pinv = np.linalg.pinv(F, rcond=1e-12)
    return F_pinv @ problem.Y + v0 - F_pinv @ (F @ v0)


def lp_closed_form(problem: Problem, t: np.ndarray, v0: np.ndarray | None = None) -> np.ndarray:
    """The LP flow's head at times t in closed form: v(t) = v_inf + U exp(-2 Lambda t) U^T (v0 - v_inf).

    F^T F = U Lambda U^T (F = X B0^T): the error v - v_inf decays along each eigenvector at rate
    2 lambda (not at all on null(F)).

    Parameters
    ----------
    problem : Problem
        The two-layer problem.
    t : ndarray
        Times (T,).
    v0 : ndarray, optional
        Head init (k,); default ``problem.v0``.

    Returns
    -------
    ndarray
        (T, k) heads.

    Examples
    --------
    >>> import numpy as np
    >>> from theory.problem import make_problem
    >>> p = make_problem(10, 2, 6, m=4, eps=0.2, seed=0)
    >>> v = lp_closed_form(p, np.array([0.0, 1e6]))
    >>> bool(np.allclose(v[0], p.v0)), bool(np.allclose(v[1], lp_limit(p)))
    (True, True)
    """
    v0 = problem.v0 if v0 is None else np.asarray(v0, dtype=float)
    lam, U = np.linalg.eigh(lp_operator(problem)[0])
    v_inf = lp_limit(problem, v0)
    coef = U.T @ (v0 - v_inf)
    return v_inf + (np.exp(-2.0 * np.outer(np.asarray(t, dtype=float), lam)) * coef) @ U.T
