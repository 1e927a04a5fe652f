"""Gradient flows: closed-form LP limit, reduced vs full integrators, exact invariants."""
import numpy as np
import pytest
from scipy.linalg import null_space

from theory.flows import ft_gradients, lp_limit, simulate
from theory.problem import Problem, make_problem

PROBLEMS = [dict(d=40, k=3, n=24, m=8, eps=0.2, seed=0), dict(d=30, k=2, n=12, m=5, eps=0.5, ood="random", seed=1)]


@pytest.mark.parametrize("kw", PROBLEMS)
def test_lp_flow_reaches_closed_form(kw):
    p = make_problem(**kw)
    tr = simulate(p, "lp")
    np.testing.assert_allclose(tr.v_final, lp_limit(p), atol=1e-8)
    assert tr.feature_change.max() == 0.0


def test_lp_limit_keeps_the_unreachable_head_component():
    """A feature row orthogonal to S makes F = X B0^T rank-deficient: the flow cannot move v0 there."""
    p = make_problem(40, 3, 24, m=8, seed=2)
    B0 = p.B0.copy()
    B0[2] = null_space(np.vstack([p.S_basis.T, B0[:2]]))[:, 0]   # orthonormal rows, third in S_perp
    q = Problem(p.X, p.Y, p.B_star, p.v_star, B0, np.array([0.3, -0.2, 0.7]), p.Sigma)
    v_lp = lp_limit(q)
    assert abs(v_lp[2] - 0.7) < 1e-12
    np.testing.assert_allclose(simulate(q, "lp").v_final, v_lp, atol=1e-8)


@pytest.mark.parametrize("kw", PROBLEMS)
@pytest.mark.parametrize("method", ["ft", "lpft"])
def test_reduced_matches_full(kw, method):
    p = make_problem(**kw)
    red, full = simulate(p, method, n_times=40), simulate(p, method, n_times=40, integrator="full")
    np.testing.assert_allclose(red.v, full.v, atol=1e-7)
    for i in (5, 20, -1):
        np.testing.assert_allclose(red.features(i), full.features(i), atol=1e-7)
    np.testing.assert_allclose(red.ood_loss, full.ood_loss, atol=1e-8, rtol=1e-7)
    np.testing.assert_allclose(red.id_loss, full.id_loss, atol=1e-8, rtol=1e-7)


@pytest.mark.parametrize("kw", PROBLEMS)
def test_ft_invariants_hold_to_solver_tolerance(kw):
    p = make_problem(**kw)
    tr = simulate(p, "ft", integrator="full", n_times=40)
    assert tr.train_loss[-1] < 1e-12 * tr.train_loss[0]           # converged
    assert tr.feature_change[-1] > 1e-2                            # features did move ...
    assert tr.perp_drift.max() < 1e-12                             # ... but never on S_perp
    assert tr.balance_drift.max() < 1e-8                           # v v^T - B B^T conserved


def test_invariant_one_holds_for_arbitrary_labels():
    p = make_problem(40, 3, 24, m=8, seed=3)
    rng = np.random.default_rng(0)
    q = Problem(p.X, rng.standard_normal(p.n), p.B_star, p.v_star, p.B0, p.v0, p.Sigma)
    tr = simulate(q, "ft", integrator="full", n_times=20)
    assert tr.perp_drift.max() < 1e-12 and tr.feature_change[-1] > 1e-2


def test_gradients_match_finite_differences():
    p = make_problem(30, 2, 10, seed=4)
    rng = np.random.default_rng(1)
    v, B = rng.standard_normal(2), p.B0 + 0.1 * rng.standard_normal(p.B0.shape)
    gv, gB = ft_gradients(p.X, p.Y, v, B)
    h = 1e-6
    for i in range(2):
        dv = np.zeros(2); dv[i] = h
        fd = (p.train_loss(v + dv, B) - p.train_loss(v - dv, B)) / (2 * h)
        assert abs(fd - gv[i]) < 1e-5 * max(1, abs(gv[i]))
    dB = np.zeros_like(B); dB[1, 7] = h
    fd = (p.train_loss(v, B + dB) - p.train_loss(v, B - dB)) / (2 * h)
    assert abs(fd - gB[1, 7]) < 1e-5 * max(1, abs(gB[1, 7]))


def test_perfect_features_lpft_never_moves():
    p = make_problem(40, 3, 24, m=8, eps=0.0, seed=5)
    tr = simulate(p, "lpft", n_times=30)
    # exactly at rest in theory; numerically the zero-loss manifold is neutral, so solver error
    # (atol 1e-12 per step) may wander along it: tolerance 1e-8.
    assert tr.feature_change.max() < 1e-8
    assert tr.ood_loss.max() < 1e-16
    ft = simulate(p, "ft", n_times=30)
    assert ft.ood_loss.min() > 1e-6                                 # FT from a random head never gets there


def test_bad_arguments_rejected():
    p = make_problem(30, 2, 10, seed=0)
    with pytest.raises(ValueError, match="method"):
        simulate(p, "sgd")
    with pytest.raises(ValueError, match="rtol"):
        simulate(p, "ft", rtol=1e-6)
    with pytest.raises(ValueError, match="v_init"):
        simulate(p, "ft", v_init=np.array([np.nan, 0.0]))


@pytest.mark.parametrize("n_times", [2, 3, 50])
def test_time_grid_ends_at_t_max(n_times):
    from theory.flows import time_grid
    t = time_grid(2.5, n_times)
    assert t[0] == 0.0 and t[-1] == 2.5 and len(t) == n_times and np.all(np.diff(t) > 0)


def test_early_stop_changes_nothing_measurable():
    p = make_problem(40, 3, 24, m=8, eps=0.2, head_scale=0.5, seed=8)
    stopped, full = simulate(p, "ft"), simulate(p, "ft", stop_factor=None)
    assert stopped.stopped_at is not None and stopped.stopped_at < stopped.t[-1] and full.stopped_at is None
    assert stopped.n_rhs < full.n_rhs
    np.testing.assert_allclose(stopped.v_final, full.v_final, atol=1e-8)
    np.testing.assert_allclose(stopped.features(), full.features(), atol=1e-8)
    assert abs(stopped.ood_loss[-1] - full.ood_loss[-1]) < 1e-8
