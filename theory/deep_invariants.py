"""Exact invariants of deep linear nets under gradient flow and linear-combination rules, and their drift.

Invariants (Arora et al. 2018 for the balancedness; proved here by dL/dW_l = A_l^T H_{l-1}):
- the gradient of E is A_0^T X, whose rows lie in S = rowspace(X); any rule that moves E by linear
  combinations of gradients (GD, SGD, momentum, not Adam) keeps E(t) x = E0 x for x in S_perp;
- under gradient flow with equal lr multipliers, D_l = M_{l+1}^T M_{l+1} - M_l M_l^T is conserved for
  every adjacent pair (M_0 = E, ..., M_{L+1} = V): W_1^T W_1 - E E^T, ..., V^T V - W_L W_L^T;
- with E frozen (freeze-embed) only the pairs above E are conserved, and the first-layer features
  W_1(t) E0 x = W_1(0) E0 x exactly for x in (E0^T E0 S)_perp (the rows of dL/dW_1 lie in E0 S).
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import null_space

from theory.deep import Layers, end_to_end


def balancedness(layers: Layers) -> list[np.ndarray]:
    """D_l = M_{l+1}^T M_{l+1} - M_l M_l^T for each adjacent pair (l = 0 is the E / W_1 pair)."""
    return [upper.T @ upper - lower @ lower.T for lower, upper in zip(layers[:-1], layers[1:])]


def balancedness_drift(layers0: Layers, layers: Layers) -> list[float]:
    """max |D_l(t) - D_l(0)| per adjacent pair, relative to max(1, max|D_l(0)|)."""
    return [
        float(np.max(np.abs(dt - d0)) / max(1.0, float(np.max(np.abs(d0)))))
        for d0, dt in zip(balancedness(layers0), balancedness(layers))
    ]


def complement_basis(X: np.ndarray) -> np.ndarray:
    """Orthonormal basis (d x (d - rank X)) of S_perp, the complement of rowspace(X)."""
    return null_space(X)


def embed_drift_on_complement(E0: np.ndarray, E: np.ndarray, X: np.ndarray) -> float:
    """max |(E - E0) x| over an orthonormal basis of S_perp = rowspace(X)_perp, relative to ||E0||_2."""
    F = complement_basis(X)
    return float(np.max(np.abs((E - E0) @ F), initial=0.0) / np.linalg.norm(E0, 2))


def frozen_feature_drift(layers0: Layers, layers: Layers, X: np.ndarray) -> float:
    """Freeze-embed invariant: max |(W_1 - W_1(0)) E0 x| over a basis of (E0^T E0 S)_perp, relative to ||W_1(0) E0||_2."""
    E0, W10, W1 = layers0[0], layers0[1], layers[1]
    F = complement_basis(X @ E0.T @ E0)  # rows of X E0^T E0 span E0^T E0 S
    return float(np.max(np.abs((W1 - W10) @ E0 @ F), initial=0.0) / np.linalg.norm(W10 @ E0, 2))


def penultimate_feature_change_on_complement(layers0: Layers, layers: Layers, X: np.ndarray) -> float:
    """max |(Phi(t) - Phi(0)) x| over a basis of S_perp, Phi = W_L ... W_1 E (not invariant for L >= 1)."""
    F = complement_basis(X)
    phi0, phi = end_to_end(layers0[:-1]), end_to_end(layers[:-1])
    return float(np.max(np.abs((phi - phi0) @ F), initial=0.0) / np.linalg.norm(phi0, 2))


def invariant_drifts(trajectory: list[Layers], X: np.ndarray, freeze_embed: bool) -> dict[str, float]:
    """Largest drift over a trajectory of the invariants that hold (see the module docstring).

    Parameters
    ----------
    trajectory : list of list of ndarray
        Layer lists over time, the first the start.
    X : ndarray
        (n, d) training inputs, spanning S.
    freeze_embed : bool
        Whether E was frozen along the trajectory.

    Returns
    -------
    dict
        Relative drifts by name. Full FT: E on S_perp and every balancedness pair; freeze-embed: the
        pairs above E and the first-layer features on (E0^T E0 S)_perp (and, not invariant, the E
        pair). Both: the (not invariant) penultimate-feature change on S_perp.
    """
    start = trajectory[0]
    pairs = np.max([balancedness_drift(start, layers) for layers in trajectory], axis=0)
    out = {"penultimate_change_on_S_perp": max(penultimate_feature_change_on_complement(start, ls, X) for ls in trajectory)}
    if freeze_embed:
        if pairs.size > 1:  # L = 0 has no pair above the embedding
            out["balancedness_above_embed"] = float(np.max(pairs[1:]))
        out["balancedness_embed_pair(not_invariant)"] = float(pairs[0])
        out["first_layer_features_on_(E0^T E0 S)_perp"] = max(frozen_feature_drift(start, ls, X) for ls in trajectory)
    else:
        out["balancedness_all_pairs"] = float(np.max(pairs))
        out["embed_on_S_perp"] = max(embed_drift_on_complement(start[0], ls[0], X) for ls in trajectory)
    return out
