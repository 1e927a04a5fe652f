"""Principal angles, phi, the FT lower bound on a small sweep and the LP/FT ratio trend."""
import numpy as np
import pytest
from scipy.linalg import null_space

from theory.flows import lp_limit, simulate
from theory.problem import make_problem
from theory.quantities import (cos_max_angle, distance_to_row_space, ft_lower_bound, head_alignment_error,
                               lp_ft_ood_ratio)


def test_cos_max_angle_matches_explicit_singular_value():
    p = make_problem(30, 3, 12, m=6, eps=0.4, seed=0)
    F = null_space(p.S_basis.T)                                     # basis of S_perp
    E = np.linalg.qr(p.B0.T)[0]
    explicit = np.linalg.svd(E.T @ F, compute_uv=False).min()
    assert abs(cos_max_angle(p.B0, p.S_basis) - explicit) < 1e-12


def test_cos_max_angle_zero_when_a_feature_lies_in_S():
    p = make_problem(30, 2, 12, m=6, seed=1)
    B0 = np.vstack([p.S_basis[:, 0], null_space(np.vstack([p.S_basis.T]))[:, 0]])
    assert cos_max_angle(B0, p.S_basis) < 1e-12


def test_phi_is_zero_for_the_aligned_head_and_rotation_invariant():
    p = make_problem(30, 3, 12, eps=0.0, seed=2)
    U = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))[0]
    v_al = (p.B0 @ p.B_star.T) @ p.v_star                          # = U0 v* when B0 = U0 B*
    assert head_alignment_error(v_al, p.v_star, p.B0, p.B_star) < 1e-7
    phi = head_alignment_error(p.v0, p.v_star, p.B0, p.B_star)
    assert abs(head_alignment_error(p.v0, U @ p.v_star, p.B0, U @ p.B_star) - phi) < 1e-12


def test_ft_lower_bound_holds_on_a_small_sweep():
    live = 0
    for seed, eps in enumerate([0.0, 0.01, 0.03, 0.1]):
        p = make_problem(40, 2, 18, m=6, eps=eps, ood="random", seed=seed)
        actual = np.sqrt(simulate(p, "ft", n_times=80).ood_loss.min())
        bound = ft_lower_bound(p)
        live += bound > 0
        assert actual >= bound - 1e-9, (eps, actual, bound)
        assert ft_lower_bound(p, sigma_factor=False) >= bound    # sigma_min(Sigma) <= 1 at trace d
    assert live >= 2                                                # the check was not vacuous


def test_lp_ft_ratio_shrinks_with_eps():
    ratios = []
    for eps in (0.3, 0.1, 0.03):
        p = make_problem(40, 2, 18, m=6, eps=eps, seed=7)
        ratios.append(lp_ft_ood_ratio(p.ood_loss(lp_limit(p), p.B0), simulate(p, "ft").ood_loss.min()))
    assert ratios[0] > ratios[1] > ratios[2]
    with pytest.raises(ValueError):
        lp_ft_ood_ratio(1.0, 0.0)


def test_distance_to_row_space():
    p = make_problem(30, 2, 12, eps=0.0, seed=3)
    assert distance_to_row_space(p.w_star, p.B0) < 1e-12
    assert distance_to_row_space(p.w_star, make_problem(30, 2, 12, eps=0.5, seed=3).B0) > 1e-3
