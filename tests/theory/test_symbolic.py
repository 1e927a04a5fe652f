"""sympy derivation: both invariants simplify to zero; symbolic gradients equal the numeric ones."""
import numpy as np
import pytest

from theory.flows import ft_gradients
from theory.symbolic import balancedness_rate, derive, numeric_gradients, perp_gradient_action, prove_invariants


def test_invariants_proven_for_d3_k2_n2():
    assert prove_invariants(3, 2, 2) == {"balancedness": True, "perp_features_fixed": True}


def test_proof_can_fail():
    """Not a rubber stamp: a wrong flow (B's gradient with the sign flipped) breaks invariant 2."""
    s = derive(3, 1, 2)
    vdot, Bdot = -s.grad_v, s.grad_B
    rate = (vdot * s.v.T + s.v * vdot.T - Bdot * s.B.T - s.B * Bdot.T).applyfunc(lambda e: e.expand())
    assert not rate.is_zero_matrix
    assert balancedness_rate(3, 1, 2).is_zero_matrix


def test_perp_action_needs_a_nontrivial_null_space():
    assert perp_gradient_action(3, 1, 2).shape == (1, 1)
    with pytest.raises(ValueError, match="n < d"):
        perp_gradient_action(2, 1, 2)


@pytest.mark.parametrize("d,k,n", [(3, 1, 2), (3, 2, 2), (4, 1, 3)])
def test_symbolic_gradients_match_numeric(d, k, n):
    rng = np.random.default_rng(d * 10 + k)
    X, Y, v, B = rng.standard_normal((n, d)), rng.standard_normal(n), rng.standard_normal(k), rng.standard_normal((k, d))
    gv_s, gB_s = numeric_gradients(d, k, n)(X, Y, v, B)
    gv, gB = ft_gradients(X, Y, v, B)
    np.testing.assert_allclose(gv_s, gv, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gB_s, gB, rtol=1e-10, atol=1e-10)
