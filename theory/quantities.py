"""Quantities in the statements of Kumar et al. (ICLR 2022, arXiv 2202.10054), Sec. 3.

principal angles between rowspace(B0) and S_perp, the head alignment error phi, the feature error
eps (re-exported from `theory.problem`, where problems measure it), the FT lower bound of
Thm 3.2/3.3 and the LP/FT OOD ratio of Thm 3.4/3.5.
"""
from __future__ import annotations

import numpy as np

from theory.problem import Problem, feature_error, procrustes_rotation

__all__ = ["cos_max_angle", "feature_error", "head_alignment_error", "ft_lower_bound", "lp_ft_ood_ratio",
           "distance_to_row_space"]


def cos_max_angle(B0: np.ndarray, S_basis: np.ndarray) -> float:
    """cos theta_max(R0, S_perp) = sigma_k(E^T F), the largest principal angle of Thm 3.2/3.3.

    Parameters
    ----------
    B0 : ndarray
        k x d features; R0 = rowspace(B0) with orthonormal basis E (d x k).
    S_basis : ndarray
        d x m orthonormal basis Q of S; F is a basis of S_perp (never formed).

    Returns
    -------
    float
        sigma_k(E^T F) = sigma_min(P_perp E) = sigma_min(E - Q (Q^T E)), computed in O(d k m) and
        accurate near 0 (no 1 - cos^2 cancellation). 0 when dim S_perp < k.

    References
    ----------
    Kumar et al., arXiv:2202.10054, Thm 3.2/3.3.
    """
    d, m = S_basis.shape
    E = np.linalg.qr(B0.T)[0]
    if d - m < E.shape[1]:
        return 0.0
    return float(np.linalg.svd(E - S_basis @ (S_basis.T @ E), compute_uv=False)[-1])


def head_alignment_error(v0: np.ndarray, v_star: np.ndarray, B0: np.ndarray, B_star: np.ndarray) -> float:
    """Head alignment error phi = sqrt(|(v0^T v*)^2 - (v*^T v*)^2|), v* in the frame of B0.

    (v*, B*) is defined up to a rotation U: we take U = argmin ||B0 - U B*|| (Procrustes) and
    use U v*, so phi measures the head's misalignment in the coordinates B0 actually uses.

    Parameters
    ----------
    v0, v_star : ndarray
        Head init and ground-truth head (k,).
    B0, B_star : ndarray
        Pretrained and ground-truth features, k x d with orthonormal rows.

    Returns
    -------
    float
        phi >= 0; 0 when v0 equals the aligned v* up to sign.

    References
    ----------
    Kumar et al., arXiv:2202.10054, Thm 3.2/3.3 (the head alignment error).

    Examples
    --------
    >>> from theory.problem import make_problem
    >>> p = make_problem(d=20, k=2, n=5, eps=0.1, seed=0)
    >>> round(head_alignment_error(p.v0, p.v_star, p.B0, p.B_star), 4)
    0.986
    """
    v_al = procrustes_rotation(B0, B_star) @ v_star
    return float(np.sqrt(abs((v0 @ v_al) ** 2 - (v_star @ v_star) ** 2)))


def ft_lower_bound(problem: Problem, v0: np.ndarray | None = None, sigma_factor: bool = True) -> float:
    """Lower bound on sqrt(L_ood(v_ft(t), B_ft(t))) for every t >= 0 (Thm 3.2/3.3).

        c * ( cos theta_max(R0, S_perp) / sqrt(k) * min(phi, phi^2 / ||w*||) / (1 + ||w*||)^2 - eps ),

    Parameters
    ----------
    problem : Problem
        The fine-tuning problem (:func:`theory.problem.make_problem`).
    v0 : ndarray, optional
        FT's head init (k,); default ``problem.v0``.
    sigma_factor : bool, optional
        Multiply by c = sqrt(sigma_min(Sigma)) (default), needed to pass from the theorem's
        ||e||^2 to e^T Sigma e; this factor is our reconstruction, unverified against the paper.
        ``False``: c = 1.

    Returns
    -------
    float
        The bound; negative values are vacuous.

    References
    ----------
    Kumar et al., arXiv:2202.10054, Thm 3.2/3.3.

    Examples
    --------
    >>> from theory.problem import make_problem
    >>> round(ft_lower_bound(make_problem(d=20, k=2, n=5, eps=0.1, seed=0)), 4)
    0.0281
    """
    v0 = problem.v0 if v0 is None else v0
    w = float(np.linalg.norm(problem.w_star))
    phi = head_alignment_error(v0, problem.v_star, problem.B0, problem.B_star)
    core = (cos_max_angle(problem.B0, problem.S_basis) / np.sqrt(problem.k)
            * min(phi, phi ** 2 / w) / (1.0 + w) ** 2 - problem.eps)
    c = float(np.sqrt(problem.sigma_min)) if sigma_factor else 1.0
    return float(c * core)


def lp_ft_ood_ratio(lp_ood: float, ft_ood: float) -> float:
    """LP/FT OOD loss ratio L_ood(v_lp(inf), B0) / L_ood(v_ft(t), B_ft(t)).

    Parameters
    ----------
    lp_ood, ft_ood : float
        OOD losses of LP's limit and of FT at time t; ``ft_ood`` > 0.

    Returns
    -------
    float
        The ratio; Thm 3.4/3.5 state it -> 0 in probability as eps -> 0.

    Raises
    ------
    ValueError
        ``ft_ood <= 0``.

    References
    ----------
    Kumar et al., arXiv:2202.10054, Thm 3.4/3.5.

    Examples
    --------
    >>> lp_ft_ood_ratio(1.0, 4.0)
    0.25
    """
    if ft_ood <= 0.0:
        raise ValueError(f"FT's OOD loss must be positive for the ratio, got {ft_ood}")
    return lp_ood / ft_ood


def distance_to_row_space(w: np.ndarray, B0: np.ndarray) -> float:
    """||(I - B0^T B0) w||: the distance of w from rowspace(B0).

    Parameters
    ----------
    w : ndarray
        A vector of R^d, e.g. w* = B*^T v*.
    B0 : ndarray
        k x d features with orthonormal rows.

    Returns
    -------
    float
        0 exactly when w lies in rowspace(B0), the premise of Prop 3.1.

    References
    ----------
    Kumar et al., arXiv:2202.10054, Prop 3.1.

    Examples
    --------
    >>> import numpy as np
    >>> B0 = np.eye(2, 4)
    >>> distance_to_row_space(np.array([1.0, 2.0, 0.0, 0.0]), B0), distance_to_row_space(np.array([0.0, 0.0, 3.0, 4.0]), B0)
    (0.0, 5.0)
    """
    return float(np.linalg.norm(w - B0.T @ (B0 @ w)))
