"""theory.deep, deep_invariants, deep_grad_norms: gradients vs finite differences, flow invariants, freezing, eq. 3.1 normalizations."""
from __future__ import annotations

import numpy as np
import pytest

from theory.deep import end_to_end, gradient_flow, init_layers, layer_names, loss_and_grads, train
from theory.deep_grad_norms import layer_grad_norms
from theory.deep_invariants import (
    balancedness_drift,
    complement_basis,
    embed_drift_on_complement,
    frozen_feature_drift,
    penultimate_feature_change_on_complement,
)

INVARIANT_TOL = 1e-8  # flow integrated at rtol 1e-10 / atol 1e-12; drift observed ~1e-12


def _net(depth: int, seed: int = 0, d: int = 10, out: int = 1):
    rng = np.random.default_rng(seed)
    layers = init_layers(d, 6, [5] * depth, out, 1.0, rng)
    X = rng.standard_normal((4, d))  # n < d: S_perp has dimension d - 4
    Y = rng.standard_normal((4, out))
    return layers, X, Y


@pytest.mark.parametrize("depth,out", [(0, 1), (1, 1), (2, 3)])
def test_gradients_match_finite_differences(depth, out):
    layers, X, Y = _net(depth, out=out)
    _, grads = loss_and_grads(layers, X, Y)
    h = 1e-6
    for M, G in zip(layers, grads):
        fd = np.zeros_like(M)
        for idx in np.ndindex(M.shape):
            M[idx] += h
            lp = loss_and_grads(layers, X, Y)[0]
            M[idx] -= 2 * h
            lm = loss_and_grads(layers, X, Y)[0]
            M[idx] += h
            fd[idx] = (lp - lm) / (2 * h)
        np.testing.assert_allclose(G, fd, rtol=1e-5, atol=1e-7)


def test_layer_names_and_end_to_end():
    layers, X, _ = _net(2)
    assert layer_names(layers) == ["embed", "mid1", "mid2", "head"]
    np.testing.assert_allclose(X @ end_to_end(layers).T, X @ layers[0].T @ layers[1].T @ layers[2].T @ layers[3].T)


@pytest.mark.parametrize("depth", [1, 2])
def test_full_ft_flow_invariants(depth):
    layers, X, Y = _net(depth, seed=1)
    final = gradient_flow(layers, X, Y, np.array([0.0, 3.0]))[-1]
    assert loss_and_grads(final, X, Y)[0] < 0.5 * loss_and_grads(layers, X, Y)[0]  # it trained
    assert max(balancedness_drift(layers, final)) < INVARIANT_TOL
    assert embed_drift_on_complement(layers[0], final[0], X) < INVARIANT_TOL
    # the two-layer lemma does not carry over: penultimate features move on S_perp
    assert penultimate_feature_change_on_complement(layers, final, X) > 1e-3


def test_freeze_embed_flow_invariants():
    layers, X, Y = _net(1, seed=2)
    final = gradient_flow(layers, X, Y, np.array([0.0, 3.0]), frozen=[True, False, False])[-1]
    assert np.array_equal(final[0], layers[0])
    drift = balancedness_drift(layers, final)
    assert drift[1] < INVARIANT_TOL  # V / W_1 pair still conserved
    assert drift[0] > 1e-3  # the E / W_1 pair is not
    assert frozen_feature_drift(layers, final, X) < INVARIANT_TOL
    # on S_perp itself (not (E0^T E0 S)_perp) the first-layer features do move
    moved = np.max(np.abs((final[1] - layers[1]) @ layers[0] @ complement_basis(X)))
    assert moved > 1e-3


def test_discrete_sgd_keeps_embed_on_complement_adam_does_not():
    layers, X, Y = _net(1, seed=3)
    sgd = train(layers, X, Y, "sgd", 0.01, 20, 2, np.random.default_rng(0), momentum=0.9)
    adam = train(layers, X, Y, "adamw", 0.01, 20, 2, np.random.default_rng(0))
    assert embed_drift_on_complement(layers[0], sgd.layers[0], X) < 1e-12
    assert embed_drift_on_complement(layers[0], adam.layers[0], X) > 1e-3


def test_train_frozen_layers_bit_for_bit_and_lr_mults():
    layers, X, Y = _net(2, seed=4)
    res = train(layers, X, Y, "sgd", 0.05, 5, 2, np.random.default_rng(0), frozen=[True, False, True, False])
    assert res.layers[0].tobytes() == layers[0].tobytes()
    assert res.layers[2].tobytes() == layers[2].tobytes()
    assert not np.array_equal(res.layers[1], layers[1])
    assert len(res.maps) == 6 and not res.diverged
    slow = train(layers, X, Y, "sgd", 0.05, 1, 4, np.random.default_rng(0), lr_mults=[0.2, 1, 1, 1], schedule=None)
    fast = train(layers, X, Y, "sgd", 0.05, 1, 4, np.random.default_rng(0), schedule=None)
    np.testing.assert_allclose(slow.layers[0] - layers[0], 0.2 * (fast.layers[0] - layers[0]), rtol=1e-12, atol=1e-15)


def test_train_reports_divergence():
    layers, X, Y = _net(1, seed=5)
    assert train(layers, X * 100, Y, "sgd", 10.0, 50, 4, np.random.default_rng(0)).diverged


def test_grad_norm_normalizations():
    layers, X, Y = _net(2, seed=6)
    gn = layer_grad_norms(layers, X, Y, batch_size=2, rng=np.random.default_rng(0))
    # eq. 3.1 by hand: the two minibatches of the same permutation
    order = np.random.default_rng(0).permutation(4)
    batches = [order[:2], order[2:]]
    by_hand = np.mean([[np.linalg.norm(g) for g in loss_and_grads(layers, X[b], Y[b])[1]] for b in batches], axis=0)
    np.testing.assert_allclose(gn.grad_norm, by_hand, rtol=1e-14)
    np.testing.assert_allclose(gn.grad_over_param_norm, by_hand / [np.linalg.norm(M) for M in layers], rtol=1e-14)
    np.testing.assert_allclose(gn.grad_over_sqrt_numel, by_hand / np.sqrt([M.size for M in layers]), rtol=1e-14)
    assert gn.embed_outlier_ratio() == pytest.approx(by_hand[0] / max(by_hand[1], by_hand[2]))
    with pytest.raises(ValueError, match="middle layer"):
        layer_grad_norms(_net(0)[0], X, Y, 2, np.random.default_rng(0)).embed_outlier_ratio()


def test_bad_shapes_raise():
    layers, X, Y = _net(1)
    with pytest.raises(ValueError, match="maps"):
        loss_and_grads(layers, X[:, :3], Y)
    with pytest.raises(ValueError):
        init_layers(4, 3, [2], 1, [1.0, 1.0], np.random.default_rng(0))


def test_invariant_drift_report_flow_vs_gd():
    from theory.deep_invariants import invariant_drifts

    layers, X, Y = _net(2, seed=7)
    flow = gradient_flow(layers, X, Y, np.linspace(0, 2.0, 5))
    report = invariant_drifts(flow, X, freeze_embed=False)
    assert report["balancedness_all_pairs"] < INVARIANT_TOL and report["embed_on_S_perp"] < INVARIANT_TOL
    gd = train(layers, X, Y, "sgd", 0.01, 200, 4, np.random.default_rng(0), schedule=None)
    gd_report = invariant_drifts([layers, gd.layers], X, freeze_embed=False)
    assert gd_report["embed_on_S_perp"] < 1e-12  # exact for GD too
    assert gd_report["balancedness_all_pairs"] > 1e-6  # GD drifts from balancedness (O(lr))
    frozen = invariant_drifts(gradient_flow(layers, X, Y, np.array([0, 2.0]), frozen=[True, False, False, False]), X, True)
    assert frozen["first_layer_features_on_(E0^T E0 S)_perp"] < INVARIANT_TOL
    assert frozen["balancedness_above_embed"] < INVARIANT_TOL


def test_input_scale_is_a_loss_scale_adamw_ignores():
    """Scaling inputs and targets by c scales every layer's gradient by c^2: AdamW's path is unchanged."""
    layers, X, Y = _net(2, seed=8)
    a = train(layers, X, Y, "adamw", 0.01, 30, 2, np.random.default_rng(0), eps=1e-14)
    b = train(layers, 3.0 * X, 3.0 * Y, "adamw", 0.01, 30, 2, np.random.default_rng(0), eps=1e-14)
    for p, q in zip(a.layers, b.layers):
        np.testing.assert_allclose(p, q, rtol=1e-9, atol=1e-12)
    sgd = train(layers, X, Y, "sgd", 0.009, 30, 2, np.random.default_rng(0))
    sgd_scaled = train(layers, 3.0 * X, 3.0 * Y, "sgd", 0.001, 30, 2, np.random.default_rng(0))
    for p, q in zip(sgd.layers, sgd_scaled.layers):  # SGD absorbs c^2 into the lr
        np.testing.assert_allclose(p, q, rtol=1e-9, atol=1e-12)
