"""Structured OOD second moments agree with their dense matrices; sigma_min comes from the structure."""
import numpy as np
import pytest

from theory.second_moment import (DenseSecondMoment, StructuredSecondMoment, as_second_moment, diagonal, identity,
                                  subspace_split)

D = 30


def _operators():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.standard_normal((D, 6)))[0]
    A = rng.standard_normal((D, 4))
    return {
        "identity": identity(D),
        "diagonal": diagonal(np.exp(rng.standard_normal(D))),
        "low_rank+scalar": StructuredSecondMoment(D, 0.3, A, np.full(4, 0.5)),
        "low_rank+diagonal": StructuredSecondMoment(D, np.exp(rng.standard_normal(D)), A),
        "full_rank+scalar": StructuredSecondMoment(D, 0.1, rng.standard_normal((D, D)) / D),
        "in_S": subspace_split(basis, 4.0, 0.2),
        "out_S": subspace_split(basis, 0.2, 4.0),
        "dense": as_second_moment(A @ A.T + np.eye(D)),
    }


@pytest.mark.parametrize("name", list(_operators()))
def test_operator_matches_its_dense_matrix(name):
    op = _operators()[name]
    S = op.dense()
    rng = np.random.default_rng(1)
    M, E = rng.standard_normal((D, 5)), rng.standard_normal((7, D))
    Q = np.linalg.qr(M)[0]
    np.testing.assert_allclose(op @ M, S @ M, atol=1e-12)
    np.testing.assert_allclose(E @ op, E @ S, atol=1e-12)
    np.testing.assert_allclose(op.gram(M), M.T @ S @ M, atol=1e-11)
    np.testing.assert_allclose(op.gram_orthonormal(Q), Q.T @ S @ Q, atol=1e-12)
    np.testing.assert_allclose(op.quad(E), np.einsum("td,de,te->t", E, S, E), rtol=1e-12)
    assert abs(float(E[0] @ op @ E[0]) - E[0] @ S @ E[0]) < 1e-11
    assert abs(op.trace() - np.trace(S)) < 1e-10
    assert abs(op.sigma_min() - np.linalg.eigvalsh(S)[0]) < 1e-10


def test_not_positive_definite_is_rejected():
    basis = np.linalg.qr(np.random.default_rng(2).standard_normal((D, 3)))[0]
    with pytest.raises(ValueError, match="positive definite"):
        subspace_split(basis, -1.0, 1.0)
    with pytest.raises(ValueError, match="positive definite"):
        diagonal(np.r_[np.ones(D - 1), 0.0])
    with pytest.raises(ValueError, match="symmetric"):
        S = np.eye(D)
        S[0, 1] = 0.5
        DenseSecondMoment(S)
    with pytest.raises(ValueError, match="low-rank factor"):
        StructuredSecondMoment(D, 1.0, np.ones((D + 1, 2)))
