"""Discrete training: GD tracks the flow at small lr, balancedness drifts O(lr^2) per step, and the
optimizers that are not gradient flows behave differently where they should."""
import numpy as np
import pytest

from theory.discrete import balance_matrix, train
from theory.flows import ft_gradients, simulate
from theory.problem import make_problem


@pytest.fixture(scope="module")
def problem():
    return make_problem(30, 2, 12, m=6, eps=0.3, head_scale=0.5, seed=3)


def test_gd_tracks_the_flow_with_first_order_error(problem):
    t_end = 0.5
    flow = simulate(problem, "ft", t_max=t_end, n_times=2)
    errs = []
    for lr in (4e-3, 2e-3):
        run = train(problem, "ft", "gd", lr=lr, steps=int(round(t_end / lr)), record_every=10 ** 6)
        errs.append(np.abs(run.B[-1] - flow.features()).max() + np.abs(run.v[-1] - flow.v_final).max())
    assert errs[1] < 1e-2
    assert 1.6 < errs[0] / errs[1] < 2.4                          # O(lr): halving lr halves the error


def test_balancedness_drift_is_exactly_lr_squared_per_step(problem):
    v, B = problem.v0, problem.B0
    gv, gB = ft_gradients(problem.X, problem.Y, v, B)
    predicted = np.linalg.norm(np.outer(gv, gv) - gB @ gB.T)
    drifts = [train(problem, "ft", "gd", lr=lr, steps=1).balance_drift[-1] for lr in (1e-2, 5e-3)]
    assert abs(drifts[0] - 1e-4 * predicted) < 1e-12 * max(1.0, predicted)
    assert abs(drifts[0] / drifts[1] - 4.0) < 1e-6


def test_gd_keeps_features_fixed_off_S_but_adamw_does_not(problem):
    gd = train(problem, "ft", "gd", lr=5e-3, steps=300, record_every=50)
    sgd = train(problem, "ft", "sgd", lr=2e-3, steps=300, batch_size=4, record_every=50)
    adamw = train(problem, "ft", "adamw", lr=1e-2, steps=300, record_every=50, weight_decay=0.0)
    assert gd.train_loss[-1] < 0.1 * gd.train_loss[0] and adamw.train_loss[-1] < gd.train_loss[0]
    assert gd.perp_drift.max() < 1e-12 and sgd.perp_drift.max() < 1e-12
    assert adamw.perp_drift.max() > 1e-3                          # per-coordinate scaling leaves S


def test_momentum_and_lp_freeze(problem):
    mom = train(problem, "ft", "gd_momentum", lr=1e-3, steps=200, record_every=200)
    assert mom.train_loss[-1] < mom.train_loss[0]
    lp = train(problem, "lp", "gd", lr=5e-3, steps=100, record_every=100)
    assert np.array_equal(lp.B[-1], problem.B0)
    lpft = train(problem, "lp_ft", "gd", lr=5e-3, steps=10, record_every=10)
    np.testing.assert_allclose(balance_matrix(lpft.v[0], lpft.B[0]) - balance_matrix(lpft.v[0], problem.B0), 0)


def test_bad_arguments(problem):
    with pytest.raises(ValueError, match="batch_size"):
        train(problem, "ft", "sgd", lr=1e-3, steps=5)
    with pytest.raises(ValueError, match="optimizer"):
        train(problem, "ft", "lbfgs")
    with pytest.raises(FloatingPointError, match="diverged"):
        train(problem, "ft", "gd", lr=10.0, steps=200)
