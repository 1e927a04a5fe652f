"""Problem generator: reproducibility, the requested eps is met exactly, and bad input is rejected."""
import dataclasses
import tracemalloc

import numpy as np
import pytest

from theory.problem import Problem, make_problem


def _arrays(p: Problem) -> dict:
    return dict(X=p.X, Y=p.Y, B_star=p.B_star, v_star=p.v_star, B0=p.B0, v0=p.v0, Sigma=p.Sigma)


def test_same_parameters_same_problem():
    a, b = make_problem(30, 2, 10, m=6, eps=0.3, ood="random", seed=4), make_problem(30, 2, 10, m=6, eps=0.3, ood="random", seed=4)
    for name, arr in _arrays(a).items():
        if name == "Sigma":
            arr, other = arr.dense(), b.Sigma.dense()
        else:
            other = _arrays(b)[name]
        np.testing.assert_array_equal(arr, other, err_msg=name)
    rebuilt = make_problem(**dataclasses.asdict(a.spec))
    np.testing.assert_array_equal(rebuilt.X, a.X)
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
    share = np.trace(p.S_basis.T @ p.Sigma @ p.S_basis) / p.Sigma.trace()
    assert abs(share - (0.9 if in_S else 0.1)) < 1e-12


def test_arrays_are_read_only():
    p = make_problem(30, 2, 10, seed=0)
    with pytest.raises(ValueError):
        p.X[0, 0] = 1.0


@pytest.mark.parametrize("kwargs,msg", [
    (dict(d=30, k=10, n=10), "k < n"),
    (dict(d=14, k=5, n=10), "k < d - m"),
    (dict(d=30, k=2, n=10, seed=-1), "seed"),
    (dict(d=30, k=2, n=10, seed=1.5), "seed"),
    (dict(d=30, k=2, n=10, ood="random", ood_rank=31), "ood_rank"),
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
    with pytest.raises(AttributeError, match="read-only"):
        p.eps = 0.0


def test_only_s_perp_needs_room_for_the_features():
    """k < d - m is the condition (dim S_perp), not k < d - n."""
    p = make_problem(12, 3, 10, m=4, seed=0)
    assert p.d - p.n <= p.k < p.d - p.m


def test_coordinates_and_dense_inputs_give_the_same_problem():
    p = make_problem(40, 3, 20, m=7, eps=0.3, ood="in_S", seed=6)
    q = Problem(p.X, p.Y, p.B_star, p.v_star, p.B0, p.v0, p.Sigma.dense())
    np.testing.assert_allclose(p.S_basis @ p.S_basis.T, q.S_basis @ q.S_basis.T, atol=1e-12)
    np.testing.assert_allclose(p.gram_eigenvalues, q.gram_eigenvalues, rtol=1e-12)
    np.testing.assert_allclose(p.coords @ p.S_basis.T, p.X, atol=1e-12)
    assert abs(p.sigma_min - q.sigma_min) < 1e-12 and abs(p.eps - q.eps) < 1e-12
    v, B = p.v0 + 0.3, p.B0
    for loss in ("ood_loss", "id_loss", "train_loss"):
        assert abs(getattr(p, loss)(v, B) - getattr(q, loss)(v, B)) < 1e-12, loss


def test_no_d_by_d_array_at_scale():
    """d = 20,000, n = 200, k = 5 (identity and rank-10 random Sigma) in O(d (m + k)) memory.

    The dense generator needed 12.85 GB here; 8 d x (m + k) blocks are 0.3 GB.
    """
    for kw in (dict(ood="identity"), dict(ood="random", ood_rank=10)):
        tracemalloc.start()
        p = make_problem(20_000, 5, 200, seed=0, **kw)
        p.ood_projections
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 8 * 20_000 * 205 * 8, (kw, peak)
        assert p.sigma_min > 0
