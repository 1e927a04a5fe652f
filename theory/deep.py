"""Deep linear networks with a distinct embedding layer: exact gradients, gradient flow, discrete
training with frozen layers and per-layer learning-rate multipliers.

Why: neither fine-tuning paper has a theory of freeze-embed. A deep linear net is the smallest model
with an "embedding" below other trainable layers, so it is where the SGD paper's mechanism (large
embedding gradients, SGD over-training the embedding, freezing it) can be tested exactly.

Parameterization. ``layers = [E, W_1, ..., W_L, V]`` bottom to top, with

    f(x) = V W_L ... W_1 E x,   E in R^{p x d} (embedding),  W_l in R^{h_l x h_{l-1}} (h_0 = p),
    V in R^{c x h_L} (head, c outputs; c = 1 is the scalar v^T of the notes).

L >= 0 counts the middle layers: L = 0 is the two-layer net V E x (E plays the role of B), L = 1 the
three-layer v^T B E x of ``notes/theory-facts.md`` with B = W_1. Inputs are rows of X (n x d), targets
rows of Y (n x c). The loss is the mean squared error ``L = (1/n) sum_i ||f(x_i) - y_i||^2``; the
two-layer core uses the sum (no 1/n), which only rescales time by n.

The flow's invariants and their drift: `theory.deep_invariants` (``python -m theory.deep`` prints
them for random nets).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy.integrate import solve_ivp

from common.helpformat import command_parser
from theory.optim import make_optimizer

Layers = list[np.ndarray]

#: solve_ivp tolerances for gradient flow (RK45 / DOP853 on the flattened parameters).
FLOW_RTOL = 1e-10
FLOW_ATOL = 1e-12


def layer_names(layers: Layers) -> list[str]:
    """["embed", "mid1", ..., "midL", "head"] for a net with len(layers) - 2 middle layers."""
    if len(layers) < 2:
        raise ValueError(f"a deep linear net needs at least an embedding and a head, got {len(layers)} layers")
    return ["embed"] + [f"mid{i}" for i in range(1, len(layers) - 1)] + ["head"]


def init_layers(
    d: int,
    embed_dim: int,
    widths: list[int],
    out_dim: int,
    scale: float | list[float],
    rng: np.random.Generator,
) -> Layers:
    """Gaussian layers [E, W_1..W_L, V] with entry std scale_l / sqrt(fan_in).

    Parameters
    ----------
    d, embed_dim, out_dim : int
        Input, embedding and output dimensions.
    widths : list of int
        Widths h_1..h_L of the middle layers (empty: the two-layer net V E).
    scale : float or list of float
        One scale, or one per layer (L + 2).
    rng : numpy.random.Generator
        Source of the entries.

    Returns
    -------
    list of ndarray
        E (embed_dim, d), W_l (h_l, h_{l-1}), V (out_dim, h_L).

    Raises
    ------
    ValueError
        A scale list of the wrong length, or a dimension < 1.

    Examples
    --------
    >>> [M.shape for M in init_layers(5, 4, [3], 1, 1.0, np.random.default_rng(0))]
    [(4, 5), (3, 4), (1, 3)]
    """
    dims = [d, embed_dim, *widths, out_dim]
    scales = [scale] * (len(dims) - 1) if np.isscalar(scale) else list(scale)
    if len(scales) != len(dims) - 1:
        raise ValueError(f"need {len(dims) - 1} scales, got {len(scales)}")
    if min(dims) < 1:
        raise ValueError(f"all dimensions must be >= 1, got {dims}")
    return [s / np.sqrt(fan_in) * rng.standard_normal((fan_out, fan_in)) for fan_in, fan_out, s in zip(dims[:-1], dims[1:], scales)]


def end_to_end(layers: Layers) -> np.ndarray:
    """The linear map V W_L ... W_1 E (c x d)."""
    out = layers[0]
    for M in layers[1:]:
        out = M @ out
    return out


def check_data(layers: Layers, X: np.ndarray, Y: np.ndarray) -> None:
    """Raise ValueError unless X (n, d) and Y (n, c) fit the net's input d and output c."""
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"X must be (n, d) and Y (n, c) with the same n, got {X.shape}, {Y.shape}")
    if X.shape[1] != layers[0].shape[1] or Y.shape[1] != layers[-1].shape[0]:
        raise ValueError(f"net maps {layers[0].shape[1]} -> {layers[-1].shape[0]}, data {X.shape[1]} -> {Y.shape[1]}")


def loss_and_grads(layers: Layers, X: np.ndarray, Y: np.ndarray) -> tuple[float, Layers]:
    """Mean squared error and its exact gradient for every layer (one forward and backward pass).

    Parameters
    ----------
    layers : list of ndarray
        [E, W_1..W_L, V], bottom to top.
    X, Y : ndarray
        (n, d) inputs and (n, c) targets.

    Returns
    -------
    loss : float
        (1/n) sum_i ||f(x_i) - y_i||^2.
    grads : list of ndarray
        dL/dM_l, shaped as the layers.

    Raises
    ------
    ValueError
        X, Y and the net's shapes disagree.

    Examples
    --------
    >>> loss, grads = loss_and_grads([np.eye(2), np.ones((1, 2))], np.eye(2), np.zeros((2, 1)))
    >>> loss, grads[1].tolist()
    (1.0, [[1.0, 1.0]])
    """
    check_data(layers, X, Y)
    acts = [X]  # H_{-1} = X, H_l = H_{l-1} M_l^T
    for M in layers:
        acts.append(acts[-1] @ M.T)
    resid = acts[-1] - Y
    n = X.shape[0]
    back = (2.0 / n) * resid  # dL/dF
    grads: Layers = [np.empty(0)] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        grads[i] = back.T @ acts[i]
        back = back @ layers[i]
    return float(np.sum(resid * resid) / n), grads


def mse_of_map(W: np.ndarray, w_star: np.ndarray, second_moment: np.ndarray) -> float:
    """Population loss E||(W - w*) x||^2 = tr((W - w*) Sigma (W - w*)^T) for x with E[x x^T] = Sigma."""
    e = W - w_star
    return float(np.einsum("ij,jk,ik->", e, second_moment, e))


def gradient_flow(
    layers: Layers,
    X: np.ndarray,
    Y: np.ndarray,
    t_eval: np.ndarray,
    frozen: list[bool] | None = None,
    lr_mults: list[float] | None = None,
    rtol: float = FLOW_RTOL,
    atol: float = FLOW_ATOL,
) -> list[Layers]:
    """Integrate the gradient flow d M_l/dt = -mult_l dL/dM_l with solve_ivp (DOP853).

    Parameters
    ----------
    layers : list of ndarray
        The start, bottom to top.
    X, Y : ndarray
        (n, d) inputs and (n, c) targets.
    t_eval : ndarray
        Increasing times, starting at >= 0.
    frozen : list of bool, optional
        Layers that do not move (multiplier 0).
    lr_mults : list of float, optional
        Per-layer multipliers (default 1).
    rtol, atol : float
        solve_ivp tolerances.

    Returns
    -------
    list of list of ndarray
        The layers at each time of t_eval.

    Raises
    ------
    RuntimeError
        solve_ivp failed.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> layers, X, Y = init_layers(4, 3, [3], 1, 1.0, rng), rng.standard_normal((2, 4)), rng.standard_normal((2, 1))
    >>> path = gradient_flow(layers, X, Y, np.array([0.0, 1.0]), frozen=[True, False, False])
    >>> len(path), bool(np.array_equal(path[1][0], layers[0])), loss_and_grads(path[1], X, Y)[0] < loss_and_grads(layers, X, Y)[0]
    (2, True, True)
    """
    mults = np.ones(len(layers)) if lr_mults is None else np.asarray(lr_mults, dtype=float)
    if frozen is not None:
        mults = np.where(np.asarray(frozen, dtype=bool), 0.0, mults)
    shapes = [M.shape for M in layers]
    sizes = [M.size for M in layers]
    splits = np.cumsum(sizes)[:-1]

    def unflatten(theta: np.ndarray) -> Layers:
        return [part.reshape(shape) for part, shape in zip(np.split(theta, splits), shapes)]

    def rhs(_t: float, theta: np.ndarray) -> np.ndarray:
        _, grads = loss_and_grads(unflatten(theta), X, Y)
        return -np.concatenate([m * g.ravel() for m, g in zip(mults, grads)])

    theta0 = np.concatenate([M.ravel() for M in layers])
    t_eval = np.asarray(t_eval, dtype=float)
    sol = solve_ivp(rhs, (0.0, float(t_eval[-1])), theta0, method="DOP853", t_eval=t_eval, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"gradient flow failed: {sol.message}")
    return [unflatten(sol.y[:, j]) for j in range(sol.y.shape[1])]


def cosine_lr(base_lr: float, step: int, total: int) -> float:
    """Cosine decay from base_lr to 0 over `total` steps (the SGD paper's schedule)."""
    return 0.5 * base_lr * (1.0 + np.cos(np.pi * min(step, total) / total))


@dataclass
class TrainResult:
    """Per-epoch end-to-end maps (index 0 = before training) and the final layers."""

    maps: list[np.ndarray]
    layers: Layers
    diverged: bool


def train(
    layers: Layers,
    X: np.ndarray,
    Y: np.ndarray,
    optimizer: str,
    lr: float,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    frozen: list[bool] | None = None,
    lr_mults: list[float] | None = None,
    schedule: Callable[[float, int, int], float] | None = cosine_lr,
    max_loss: float = 1e8,
    **hparams: Any,
) -> TrainResult:
    """Minibatch training (reshuffled every epoch) of a copy of `layers` with a `theory.optim` rule.

    Parameters
    ----------
    layers : list of ndarray
        The start, bottom to top (not modified).
    X, Y : ndarray
        (n, d) inputs and (n, c) targets.
    optimizer : str
        A `theory.optim.make_optimizer` name ("sgd", "adamw", "lars", "lamb", ...).
    lr : float
        Base learning rate.
    epochs, batch_size : int
        Passes over the data and minibatch size, both >= 1.
    rng : numpy.random.Generator
        Minibatch order.
    frozen, lr_mults : list, optional
        Per-layer freezing and learning-rate multipliers.
    schedule : callable or None
        ``schedule(lr, step, total)`` per step (default `cosine_lr`; None: constant lr).
    max_loss : float
        A training loss above it, or a non-finite one, stops the run as diverged.
    **hparams
        Passed to the optimizer (momentum, weight_decay, ...).

    Returns
    -------
    TrainResult
        The end-to-end map after every epoch (for early stopping on validation loss) and the
        final layers.

    Raises
    ------
    ValueError
        Bad shapes, epochs < 1 or batch_size < 1.

    References
    ----------
    .. [1] A. Kumar, R. Shen, S. Bubeck, S. Gunasekar, "How to Fine-Tune Vision Models with SGD",
       arXiv:2211.09359, Appendix A (cosine schedule, freeze-embed).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> layers, X, Y = init_layers(4, 3, [3], 1, 1.0, rng), rng.standard_normal((6, 4)), rng.standard_normal((6, 1))
    >>> res = train(layers, X, Y, "sgd", 0.05, 3, 2, rng, frozen=[True, False, False], momentum=0.9)
    >>> len(res.maps), res.diverged, bool(np.array_equal(res.layers[0], layers[0]))
    (4, False, True)
    """
    check_data(layers, X, Y)
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
    params = [M.copy() for M in layers]
    opt = make_optimizer(optimizer, params, lr, frozen=frozen, lr_mults=lr_mults, **hparams)
    n = X.shape[0]
    per_epoch = -(-n // batch_size)
    total = epochs * per_epoch
    maps = [end_to_end(params)]
    step = 0
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            if schedule is not None:
                opt.lr = schedule(lr, step, total)
            loss, grads = loss_and_grads(params, X[idx], Y[idx])
            if not np.isfinite(loss) or loss > max_loss:
                return TrainResult(maps, params, diverged=True)
            opt.step(grads)
            step += 1
        maps.append(end_to_end(params))
    return TrainResult(maps, params, diverged=False)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m theory.deep``."""
    parser = command_parser(
        "python -m theory.deep",
        "Print the largest drift of each exact invariant along gradient-flow trajectories "
        f"(solve_ivp DOP853, rtol {FLOW_RTOL:g}, atol {FLOW_ATOL:g}) and along full-batch GD with lr --lr, "
        "for random deep linear nets (d=12, n=5 so S_perp has dimension 7). Drifts are relative (see theory.deep_invariants).",
        ["python -m theory.deep", "python -m theory.deep --time 2 --lr 1e-2"],
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random nets and data")
    parser.add_argument("--time", type=float, default=5.0, help="flow horizon (default 5)")
    parser.add_argument("--lr", type=float, default=1e-3, help="GD step for the discrete comparison (default 1e-3)")
    return parser


def main(argv: list[str] | None = None) -> None:
    """CLI: invariant drift of gradient flow and of discrete GD for depths 0..3, full FT and freeze-embed."""
    from theory.deep_invariants import invariant_drifts

    args = build_parser().parse_args(argv)
    rng = np.random.default_rng(args.seed)
    for depth in range(4):
        layers = init_layers(12, 8, [8] * depth, 1, 1.0, rng)
        X, Y = rng.standard_normal((5, 12)), rng.standard_normal((5, 1))
        for freeze in (False, True):
            frozen = [freeze] + [False] * (len(layers) - 1)
            flow = gradient_flow(layers, X, Y, np.linspace(0.0, args.time, 11), frozen=frozen)
            steps = int(round(args.time / args.lr))
            gd = train(layers, X, Y, "sgd", args.lr, steps, X.shape[0], rng, frozen=frozen, schedule=None)
            for name, traj in (("flow", flow), (f"GD lr={args.lr:g}", [layers, gd.layers])):
                drifts = invariant_drifts(traj, X, freeze)
                text = ", ".join(f"{k} {v:.1e}" for k, v in drifts.items())
                print(f"L={depth} {'freeze-embed' if freeze else 'full FT':<12} {name:<12} {text}")


if __name__ == "__main__":
    main()
