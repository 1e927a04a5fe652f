"""Problem generator: reproducibility, the requested eps is met exactly, and bad input is rejected."""
import dataclasses

import numpy as np
import pytest

from theory.problem import Problem, make_problem


def _arrays(p: Problem) -> dict:
    return dict(X=p.X, Y=p.Y, B_star=p.B_star, v_star=p.v_star, B0=p.B0, v0=p.v0, Sigma=p.Sigma)


def test_same_parameters_same_problem():
    a, b = make_problem(30, 2, 10, m=6, eps=0.3, ood="random", seed=4), make_problem(30, 2, 10, m=6, eps=0.3, ood="random", seed=4)
    for name, arr in _arrays(a).items():
        np.testing.assert_array_equal(arr, _arrays(b)[name], err_msg=name)
    c = make_problem(30, 2, 10, m=6, eps=0.3, ood="random", seed=5)
    assert not np.allclose(a.X, c.X)


@pytest.mark.parametrize("eps", [0.0, 0.05, 0.5, 1.2])
def test_requested_eps_is_measured_by_procrustes(eps):
    p = make_problem(30, 3, 10, eps=eps, seed=1)
    assert abs(p.eps - eps) < 1e-12


def test_subspace_dimension_and_labels():
    p = make_problem(30, 2, 12, m=5, seed=2)
    assert p.m == 5 and p.S_basis.shape == (30, 5)
    np.testing.assert_allclose(p.X @ p.w_star, p.Y, atol=1e-12)


@pytest.mark.parametrize("ood,in_S", [("in_S", True), ("out_S", False)])
def test_ood_share_lands_where_requested(ood, in_S):
    p = make_problem(30, 2, 10, m=6, ood=ood, ood_share=0.9, seed=3)
    share = np.trace(p.S_basis.T @ p.Sigma @ p.S_basis) / np.trace(p.Sigma)
    assert abs(share - (0.9 if in_S else 0.1)) < 1e-12


def test_arrays_are_read_only():
    p = make_problem(30, 2, 10, seed=0)
    with pytest.raises(ValueError):
        p.X[0, 0] = 1.0


@pytest.mark.parametrize("kwargs,msg", [
    (dict(d=30, k=10, n=10), "k < n"),
    (dict(d=14, k=5, n=10), "k < d - n"),
    (dict(d=30, k=2, n=10, m=11), "m <= n"),
    (dict(d=30, k=2, n=10, eps=2.0), "eps"),
    (dict(d=30, k=2, n=10, ood="weird"), "ood"),
    (dict(d=30, k=2, n=10, eps=float("nan")), "eps"),
])
def test_generator_rejects_bad_parameters(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        make_problem(**kwargs)


def _replace(p: Problem, **arrays) -> Problem:
    kw = _arrays(p)
    kw.update(arrays)
    return Problem(**kw)


def test_problem_rejects_bad_arrays():
    p = make_problem(30, 2, 10, seed=0)
    with pytest.raises(ValueError, match="B0 must have orthonormal rows"):
        _replace(p, B0=2 * p.B0)
    with pytest.raises(ValueError, match="B_star must have orthonormal rows"):
        _replace(p, B_star=p.B_star + 0.1)
    with pytest.raises(ValueError, match="symmetric"):
        sig = np.eye(30); sig[0, 1] = 0.5
        _replace(p, Sigma=sig)
    with pytest.raises(ValueError, match="positive definite"):
        sig = np.eye(30); sig[3, 3] = 0.0
        _replace(p, Sigma=sig)
    with pytest.raises(ValueError, match="NaN or inf"):
        X = p.X.copy(); X[1, 2] = np.inf
        _replace(p, X=X)
    with pytest.raises(ValueError, match="v0 must have shape"):
        _replace(p, v0=np.zeros(3))
    assert dataclasses.is_dataclass(p)
