"""Discrete training of the two-layer linear net f(x) = v^T B x on a `Problem`.

The continuous flows of `theory.flows` are the small-step limit of full-batch gradient descent; this
module runs the actual discrete optimizers (from `theory.optim`, torch semantics) so one can see
where the flow picture holds (GD with small lr: tracks the flow; balancedness drifts by exactly
lr^2 (g_v g_v^T - G_B G_B^T) per step) and where it does not (AdamW's per-coordinate scaling moves
B off S, breaking invariant 1; minibatch noise).

Optimizers: "gd" (full batch, sgd rule), "gd_momentum" (full batch, heavy ball 0.9), "adamw" (full
batch) and "sgd" (minibatches of `batch_size`, the batch loss scaled by n / batch_size so its
gradient is unbiased for L's).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from theory.flows import FLOW_METHODS, ft_gradients
from theory.lp_flow import lp_limit
from theory.optim import make_optimizer
from theory.problem import Problem

#: our optimizer name -> (theory.optim rule, default hyperparameters)
OPTIMIZERS = {
    "gd": ("sgd", {}),
    "gd_momentum": ("sgd", {"momentum": 0.9}),
    "adamw": ("adamw", {}),
    "sgd": ("sgd", {}),
}


@dataclass(frozen=True, eq=False)
class DiscreteRun:
    """Quantities recorded at `steps` (R,): v (R, k), B (R, k, d), losses and drifts as in flows.Trajectory."""

    method: str
    optimizer: str
    lr: float
    steps: np.ndarray
    v: np.ndarray
    B: np.ndarray
    train_loss: np.ndarray
    id_loss: np.ndarray
    ood_loss: np.ndarray
    feature_change: np.ndarray
    balance_drift: np.ndarray
    perp_drift: np.ndarray


def balance_matrix(v: np.ndarray, B: np.ndarray) -> np.ndarray:
    """v v^T - B B^T (conserved by the FT gradient flow, Lemma A.4)."""
    return np.outer(v, v) - B @ B.T


def train(problem: Problem, method: str = "ft", optimizer: str = "gd", lr: float = 1e-3, steps: int = 1000,
          batch_size: int | None = None, record_every: int = 1, seed: int = 0, progress: bool = False,
          **hparams: float) -> DiscreteRun:
    """Train (v, B) from (v0, B0) (LP-FT: from (lp_limit, B0); LP: B frozen) for `steps` updates.

    hparams go to `theory.optim.make_optimizer` (e.g. weight_decay, momentum, betas) and override
    the defaults in OPTIMIZERS. batch_size is used (and required) only by "sgd".
    """
    if method not in FLOW_METHODS:
        raise ValueError(f"method must be one of {FLOW_METHODS}, got {method!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)}, got {optimizer!r}")
    if not (lr > 0 and np.isfinite(lr)) or steps < 1 or record_every < 1:
        raise ValueError(f"need lr > 0, steps >= 1, record_every >= 1; got {lr}, {steps}, {record_every}")
    if optimizer == "sgd" and not (batch_size and 1 <= batch_size <= problem.n):
        raise ValueError(f"'sgd' needs 1 <= batch_size <= n = {problem.n}, got {batch_size}")
    rule, defaults = OPTIMIZERS[optimizer]
    v = (lp_limit(problem) if method == "lp_ft" else problem.v0).copy()
    B = problem.B0.copy()
    opt = make_optimizer(rule, [v, B], lr=lr, frozen=[False, method == "lp"], **{**defaults, **hparams})
    rng = np.random.default_rng(seed)
    S = problem.S_basis
    bal0 = balance_matrix(v, B)
    rec: dict[str, list] = {key: [] for key in ("steps", "v", "B", "train", "id", "ood", "move", "bal", "perp")}

    def record(step: int) -> None:
        delta = B - problem.B0
        for key, val in (("steps", step), ("v", v.copy()), ("B", B.copy()), ("train", problem.train_loss(v, B)),
                         ("id", problem.id_loss(v, B)), ("ood", problem.ood_loss(v, B)),
                         ("move", np.linalg.norm(delta)), ("bal", np.linalg.norm(balance_matrix(v, B) - bal0)),
                         ("perp", np.linalg.norm(delta - (delta @ S) @ S.T, 2))):
            rec[key].append(val)

    record(0)
    with np.errstate(over="ignore", invalid="ignore"):           # divergence is reported below
        for step in tqdm(range(1, steps + 1), disable=not progress, desc=f"{method}/{optimizer}"):
            if optimizer == "sgd":
                idx = rng.choice(problem.n, size=batch_size, replace=False)
                gv, gB = ft_gradients(problem.X[idx], problem.Y[idx], v, B)
                gv, gB = gv * (problem.n / batch_size), gB * (problem.n / batch_size)
            else:
                gv, gB = ft_gradients(problem.X, problem.Y, v, B)
            opt.step([gv, gB])
            if not (np.all(np.isfinite(v)) and np.all(np.isfinite(B))):
                raise FloatingPointError(f"{optimizer} diverged at step {step} (lr={lr}); lower the learning rate")
            if step % record_every == 0 or step == steps:
                record(step)
    arr = {key: np.array(val) for key, val in rec.items()}
    return DiscreteRun(method, optimizer, lr, arr["steps"], arr["v"], arr["B"], arr["train"], arr["id"], arr["ood"],
                       arr["move"], arr["bal"], arr["perp"])
