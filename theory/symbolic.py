"""Symbolic derivation (sympy) of the FT gradients and proofs of the two flow invariants.

For small symbolic dimensions (all entries of X, Y, v, B free symbols) we
  * differentiate L = ||X B^T v - Y||^2 to get dL/dv and dL/dB,
  * prove invariant 2 (Lemma A.4, Kumar et al. 2022): under dv/dt = -dL/dv, dB/dt = -dL/dB,
    d/dt (v v^T - B B^T) simplifies to the zero matrix;
  * prove invariant 1 (Lemma A.3): (dL/dB) x simplifies to zero for every x in null(X) = S_perp,
    so B x never changes for x in S_perp.
`numeric_gradients` lambdifies the derivation so tests can compare it with `theory.flows.ft_gradients`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
import sympy as sp


@dataclass(frozen=True)
class SymbolicFT:
    """Symbols X (n x d), Y (n x 1), v (k x 1), B (k x d); the loss and its gradients."""

    X: sp.Matrix
    Y: sp.Matrix
    v: sp.Matrix
    B: sp.Matrix
    loss: sp.Expr
    grad_v: sp.Matrix
    grad_B: sp.Matrix


@lru_cache(maxsize=None)
def derive(d: int, k: int, n: int) -> SymbolicFT:
    """Differentiate L = ||X B^T v - Y||^2 entry by entry (no matrix-calculus shortcuts)."""
    if min(d, k, n) < 1:
        raise ValueError(f"dimensions must be >= 1, got d={d}, k={k}, n={n}")
    X = sp.Matrix(n, d, lambda i, j: sp.Symbol(f"x{i}_{j}"))
    Y = sp.Matrix(n, 1, lambda i, _: sp.Symbol(f"y{i}"))
    v = sp.Matrix(k, 1, lambda i, _: sp.Symbol(f"v{i}"))
    B = sp.Matrix(k, d, lambda i, j: sp.Symbol(f"b{i}_{j}"))
    r = X * B.T * v - Y
    loss = sp.expand((r.T * r)[0, 0])
    grad_v = sp.Matrix(k, 1, lambda i, _: sp.diff(loss, v[i]))
    grad_B = sp.Matrix(k, d, lambda i, j: sp.diff(loss, B[i, j]))
    return SymbolicFT(X, Y, v, B, loss, grad_v, grad_B)


def balancedness_rate(d: int, k: int, n: int) -> sp.Matrix:
    """d/dt (v v^T - B B^T) along the FT flow, expanded (the zero matrix iff invariant 2 holds)."""
    s = derive(d, k, n)
    vdot, Bdot = -s.grad_v, -s.grad_B
    rate = vdot * s.v.T + s.v * vdot.T - Bdot * s.B.T - s.B * Bdot.T
    return rate.applyfunc(sp.expand)


def perp_gradient_action(d: int, k: int, n: int) -> sp.Matrix:
    """(dL/dB) x for a symbolic basis of null(X) (n < d), simplified; zero iff invariant 1 holds."""
    if n >= d:
        raise ValueError(f"null(X) is trivial unless n < d, got n={n}, d={d}")
    s = derive(d, k, n)
    basis = s.X.nullspace()
    return sp.Matrix.hstack(*[s.grad_B * x for x in basis]).applyfunc(lambda e: sp.cancel(sp.together(e)))


def prove_invariants(d: int = 3, k: int = 2, n: int = 2) -> dict[str, bool]:
    """Both invariants, proven by simplification to zero for symbolic dimensions (d, k, n)."""
    return {"balancedness": balancedness_rate(d, k, n).is_zero_matrix is True,
            "perp_features_fixed": perp_gradient_action(d, k, n).is_zero_matrix is True}


def numeric_gradients(d: int, k: int, n: int) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """f(X, Y, v, B) -> (dL/dv (k,), dL/dB (k, d)) evaluated from the symbolic derivation."""
    s = derive(d, k, n)
    args = list(s.X) + list(s.Y) + list(s.v) + list(s.B)
    fv, fB = sp.lambdify(args, s.grad_v, "numpy"), sp.lambdify(args, s.grad_B, "numpy")

    def grads(X: np.ndarray, Y: np.ndarray, v: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vals = [*np.ravel(X), *np.ravel(Y), *np.ravel(v), *np.ravel(B)]
        return np.asarray(fv(*vals), dtype=float).reshape(k), np.asarray(fB(*vals), dtype=float).reshape(k, d)

    return grads
