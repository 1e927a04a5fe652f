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
@pytest.mark.parametrize("method", ["ft", "lp_ft"])
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
    tr = simulate(p, "lp_ft", n_times=30)
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
    from theory.flow_scales import time_grid
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


def _reduced_rhs_and_jac(p):
    """The reduced FT right-hand side and Jacobian, through the solver call simulate makes."""
    import theory.flows as flows

    seen = {}
    real = flows._solve

    def spy(rhs, jac, y0, t, *args):
        seen.update(rhs=rhs, jac=jac, y0=y0)
        return real(rhs, jac, y0, t, *args)

    flows._solve = spy
    try:
        simulate(p, "ft", solver="Radau", n_times=3, t_max=1e-3)
    finally:
        flows._solve = real
    return seen


def test_analytic_jacobian_matches_finite_differences():
    p = make_problem(30, 3, 12, m=6, eps=0.4, head_scale=0.7, seed=9)
    seen = _reduced_rhs_and_jac(p)
    y = seen["y0"] + 0.3 * np.random.default_rng(0).standard_normal(seen["y0"].size)
    J = seen["jac"](0.0, y).toarray()
    h = 1e-6
    fd = np.column_stack([(seen["rhs"](0.0, y + h * e) - seen["rhs"](0.0, y - h * e)) / (2 * h)
                          for e in np.eye(y.size)])
    np.testing.assert_allclose(J, fd, atol=1e-7 * max(1.0, np.abs(fd).max()))


@pytest.mark.parametrize("solver", ["DOP853", "Radau"])
def test_grid_values_meet_the_stated_accuracy_against_closed_form_lp(solver):
    """Every grid value of the LP flow is within GRID_RTOL (relative to max |v|) of
    v(t) = v_inf + U exp(-2 Lambda t) U^T (v0 - v_inf), on a stiff problem (m = n) too."""
    from theory.flows import GRID_RTOL
    from theory.lp_flow import lp_closed_form

    for p in (make_problem(40, 3, 24, m=8, eps=0.2, head_scale=1.0, seed=0),
              make_problem(300, 4, 60, eps=0.3, head_scale=1.0, seed=1)):
        tr = simulate(p, "lp", solver=solver)
        exact = lp_closed_form(p, tr.t)
        assert np.abs(tr.v - exact).max() <= GRID_RTOL * np.abs(exact).max()


def test_auto_solver_takes_radau_when_stiff_and_agrees_with_dop853():
    from theory.flow_scales import STIFF_INDEX, stiffness_index

    p = make_problem(40, 3, 10, eps=0.2, seed=7)                     # m = n: square, ill-conditioned data
    assert stiffness_index(p, "ft") > STIFF_INDEX
    auto = simulate(p, "ft")
    assert auto.solver == "Radau" and auto.stopped_at is not None
    explicit = simulate(p, "ft", solver="DOP853")
    assert abs(auto.ood_loss[-1] - explicit.ood_loss[-1]) <= 1e-8 * explicit.ood_loss[-1]
    easy = make_problem(40, 3, 24, m=8, seed=2)
    assert stiffness_index(easy, "ft") < STIFF_INDEX and simulate(easy, "ft").solver == "DOP853"


def test_default_horizon_covers_a_small_in_s_target():
    """d >> m leaves little of w* in S (||P_S w*||^2 ~ m/d): the horizon must still let FT converge."""
    p = make_problem(4000, 3, 40, m=10, eps=0.2, seed=3)
    assert np.sum((p.S_basis.T @ p.w_star) ** 2) < 0.01
    tr = simulate(p, "ft")
    assert tr.stopped_at is not None and tr.stopped_at < tr.t[-1]


def test_lpft_at_rest_takes_the_implicit_solver():
    """k >= m: LP already fits S, LP-FT starts at rest (no early stop) with a large head: Radau."""
    p = make_problem(186, 4, 35, m=4, eps=0.43, ood="random", head_scale=0.12, w_norm=3.18, seed=211547)
    tr = simulate(p, "lp_ft")
    assert tr.solver == "Radau" and tr.stopped_at is None
    assert abs(tr.ood_loss[-1] - p.ood_loss(lp_limit(p), p.B0)) <= 1e-9 * tr.ood_loss[-1]
