"""Claim C13: optimizer memory per parameter, from the optimizers' actual state.

The SGD paper (Section 1, Table 4) prices fine-tuning memory at 8 / 12 / 16 bytes per parameter
for SGD without momentum / SGD / AdamW in fp32: the weight and its gradient (4 + 4 bytes) plus
0, 1 or 2 state arrays. This check counts the bytes that :mod:`theory.optim` really holds after a
step, on random layer shapes with random frozen layers (a frozen layer holds its weight only, no
gradient and no state: what freeze-embed saves).
"""
from __future__ import annotations

import numpy as np

from theory.optim import make_optimizer
from theory.verdict import ClaimResult, register_claim

#: method -> (optimizer name, hyperparameters, the paper's bytes per trainable fp32 parameter)
PAPER_BYTES_PER_PARAM = {
    "sgd_no_momentum": ("sgd", {"momentum": 0.0}, 8),
    "sgd": ("sgd", {"momentum": 0.9}, 12),
    "adamw": ("adamw", {}, 16),
}


def training_bytes(name: str, hparams: dict, shapes: list[tuple[int, ...]], frozen: list[bool],
                   rng: np.random.Generator) -> tuple[int, int]:
    """(bytes held by weights + gradients + optimizer state after one step, trainable parameters).

    Frozen layers count their weights only. fp32 throughout, as the paper's accounting.
    """
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [None if f else rng.standard_normal(s).astype(np.float32) for s, f in zip(shapes, frozen)]
    opt = make_optimizer(name, params, lr=1e-3, frozen=frozen, **hparams)
    opt.step(grads)
    state = sum(a.nbytes for s in opt.state if s is not None for a in s)
    weights = sum(p.nbytes for p in params)
    gradients = sum(g.nbytes for g in grads if g is not None)
    trainable = sum(p.size for p, f in zip(params, frozen) if not f)
    return weights + gradients + state, trainable


@register_claim("C13")
def check_c13(instances: int, seed: int) -> ClaimResult:
    """Bytes per trainable parameter (frozen weights excluded) equal 8 / 12 / 16 exactly."""
    rng = np.random.default_rng(seed)
    measured: dict[str, set[float]] = {m: set() for m in PAPER_BYTES_PER_PARAM}
    violations = 0
    for _ in range(instances):
        depth = int(rng.integers(2, 6))
        shapes = [tuple(int(x) for x in rng.integers(1, 40, size=2)) for _ in range(depth)]
        frozen = [bool(f) for f in rng.random(depth) < 0.3]
        frozen[-1] = False  # the head always trains
        frozen_bytes = 4 * sum(int(np.prod(s)) for s, f in zip(shapes, frozen) if f)
        bad = False
        for method, (name, hp, paper) in PAPER_BYTES_PER_PARAM.items():
            total, trainable = training_bytes(name, hp, shapes, frozen, rng)
            per_param = (total - frozen_bytes) / trainable
            measured[method].add(per_param)
            bad |= per_param != paper
        violations += bad
    numbers = {f"bytes_per_param_{m}": sorted(v)[0] if len(v) == 1 else sorted(v)
               for m, v in measured.items()}
    numbers.update({f"paper_{m}": p for m, (_, _, p) in PAPER_BYTES_PER_PARAM.items()})
    return ClaimResult(
        "C13", "pass" if violations == 0 else "fail", numbers,
        detail="weights + grads + optimizer state after one step of theory.optim, fp32, per trainable "
               "parameter (frozen layers hold weights only); random shapes and frozen layers",
        instances=instances, violations=violations, worst_margin=0.0 if violations == 0 else None,
    )
