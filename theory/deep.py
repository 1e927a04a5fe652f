"""Deep linear networks with a distinct embedding layer: exact gradients, gradient flow, discrete
training with frozen layers and per-layer learning-rate multipliers, and the flow's invariants.

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

Invariants (Arora et al. 2018 for the balancedness; proved here by dL/dW_l = A_l^T H_{l-1}):
- the gradient of E is A_0^T X, whose rows lie in S = rowspace(X); any rule that moves E by linear
  combinations of gradients (GD, SGD, momentum, not Adam) keeps E(t) x = E0 x for x in S_perp;
- under gradient flow with equal lr multipliers, D_l = M_{l+1}^T M_{l+1} - M_l M_l^T is conserved for
  every adjacent pair (M_0 = E, ..., M_{L+1} = V): W_1^T W_1 - E E^T, ..., V^T V - W_L W_L^T;
- with E frozen (freeze-embed) only the pairs above E are conserved, and the first-layer features
  W_1(t) E0 x = W_1(0) E0 x exactly for x in (E0^T E0 S)_perp (the rows of dL/dW_1 lie in E0 S).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy.integrate import solve_ivp
from scipy.linalg import null_space

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
    """Gaussian layers [E, W_1..W_L, V]; entry std = scale_l / sqrt(fan_in) (scale per layer or one)."""
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


def _check_data(layers: Layers, X: np.ndarray, Y: np.ndarray) -> None:
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"X must be (n, d) and Y (n, c) with the same n, got {X.shape}, {Y.shape}")
    if X.shape[1] != layers[0].shape[1] or Y.shape[1] != layers[-1].shape[0]:
        raise ValueError(f"net maps {layers[0].shape[1]} -> {layers[-1].shape[0]}, data {X.shape[1]} -> {Y.shape[1]}")


def loss_and_grads(layers: Layers, X: np.ndarray, Y: np.ndarray) -> tuple[float, Layers]:
    """Mean squared error and its exact gradient for every layer (one forward and backward pass)."""
    _check_data(layers, X, Y)
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
    """Integrate d M_l/dt = -mult_l dL/dM_l (frozen: mult 0) with solve_ivp (DOP853, rtol, atol).

    Returns the layers at each time in t_eval (increasing, starting at >= 0).
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
    """Minibatch training (reshuffled every epoch) of a copy of `layers` with `theory.optim` rule `optimizer`.

    Records the end-to-end map after every epoch, for early stopping on validation loss. A run whose
    training loss exceeds `max_loss` or becomes non-finite stops and is marked diverged.
    """
    _check_data(layers, X, Y)
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


# ---------------------------------------------------------------- invariants


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


# ---------------------------------------------------------------- layer gradient norms (eq. 3.1)


@dataclass
class LayerGradNorms:
    """SGD paper eq. 3.1: G_l = mean over minibatches of ||g_l(B)||_2, and its two normalizations."""

    names: list[str]
    raw: np.ndarray
    per_param_norm: np.ndarray  # G_l / ||theta_l|| (relative movement of one SGD step)
    per_sqrt_numel: np.ndarray  # G_l / sqrt(#params) (SGD step relative to a first AdamW step)

    def embed_outlier_ratio(self, kind: str = "raw") -> float:
        """G_embed / max over middle layers (head excluded, as the paper's Figures 3-5); inf-safe."""
        values = getattr(self, kind)
        middle = values[1:-1]
        if middle.size == 0:
            raise ValueError("the outlier ratio needs at least one middle layer (L >= 1)")
        return float(values[0] / np.max(middle))


def layer_grad_norms(layers: Layers, X: np.ndarray, Y: np.ndarray, batch_size: int, rng: np.random.Generator) -> LayerGradNorms:
    """Eq. 3.1 over one shuffled pass of minibatches of (X, Y) at `layers` (no update is made)."""
    _check_data(layers, X, Y)
    order = rng.permutation(X.shape[0])
    batches = [order[s : s + batch_size] for s in range(0, X.shape[0], batch_size)]
    norms = np.array([[np.linalg.norm(g) for g in loss_and_grads(layers, X[b], Y[b])[1]] for b in batches])
    raw = norms.mean(axis=0)
    pnorm = np.array([np.linalg.norm(M) for M in layers])
    numel = np.array([M.size for M in layers], dtype=float)
    return LayerGradNorms(layer_names(layers), raw, raw / pnorm, raw / np.sqrt(numel))


# ---------------------------------------------------------------- drift report


def invariant_drifts(trajectory: list[Layers], X: np.ndarray, freeze_embed: bool) -> dict[str, float]:
    """Largest drift over a trajectory (list of layer lists, first = start) of the invariants that hold.

    Full FT: E on S_perp and every balancedness pair. Freeze-embed: the pairs above E and the
    first-layer features on (E0^T E0 S)_perp. Also the (non-invariant) penultimate-feature change on S_perp.
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


def main(argv: list[str] | None = None) -> None:
    """CLI: invariant drift of gradient flow and of discrete GD for depths 0..3, full FT and freeze-embed."""
    from common.helpformat import command_parser

    parser = command_parser(
        "python -m theory.deep",
        "Print the largest drift of each exact invariant along gradient-flow trajectories "
        f"(solve_ivp DOP853, rtol {FLOW_RTOL:g}, atol {FLOW_ATOL:g}) and along full-batch GD with lr --lr, "
        "for random deep linear nets (d=12, n=5 so S_perp has dimension 7). Drifts are relative (see theory.deep).",
        ["python -m theory.deep", "python -m theory.deep --time 2 --lr 1e-2"],
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random nets and data")
    parser.add_argument("--time", type=float, default=5.0, help="flow horizon (default 5)")
    parser.add_argument("--lr", type=float, default=1e-3, help="GD step for the discrete comparison (default 1e-3)")
    args = parser.parse_args(argv)
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
