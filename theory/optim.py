"""Discrete optimizers over a list of NumPy parameter arrays, with torch.optim semantics.

Why: the simulator compares SGD, SGD with momentum, AdamW, LARS and LAMB on linear networks, with
some layers frozen and per-layer learning-rate multipliers (the SGD paper's "freeze-embed" and
"5x lower LR on the embedding"). Each rule reproduces the update of its torch / timm counterpart so
that simulator results transfer to the deep-net runs.

Usage::

    opt = make_optimizer("adamw", [W1, W2], lr=1e-3, frozen=[True, False], weight_decay=0.01)
    for grads in ...:
        opt.step(grads)          # updates W2 in place; W1 is never written
        opt.lr = schedule(t)     # the base lr is settable; each parameter uses lr * lr_mults[i]

Rules (g the gradient, p the parameter, t the 1-based step count, lr_i = lr * lr_mults[i]):

- ``sgd`` (torch.optim.SGD, dampening 0): g += wd p (coupled decay); with momentum mu > 0,
  buf = g on the first step, buf = mu buf + g afterwards (heavy ball), g = buf (or g + mu buf with
  nesterov); p -= lr_i g.
- ``adam`` (torch.optim.Adam): g += wd p (coupled L2), then the Adam step below. The Adam-like rule
  used for pretraining.
- ``adamw`` (torch.optim.AdamW): p *= 1 - lr_i wd (decoupled decay), m = b1 m + (1-b1) g,
  s = b2 s + (1-b2) g^2, p -= lr_i / (1-b1^t) * m / (sqrt(s) / sqrt(1-b2^t) + eps).
  Defaults betas (0.9, 0.999), eps 1e-8, weight_decay 0.01 (the paper's default).
- ``lars`` (You et al. 2017, eq. 6; timm.optim.Lars): ratio = trust_coeff ||p|| / (||g|| + wd ||p|| + eps),
  u = (g + wd p) ratio, buf = mu buf + u (buf = u on the first step), p -= lr_i buf.
- ``lamb`` (You et al. 2019; timm.optim.Lamb with max_grad_norm=None): Adam moments with bias
  correction, u = m_hat / (sqrt(s) / sqrt(1-b2^t) + eps) + wd p, p -= lr_i (||p|| / ||u||) u.

Trust ratio choice (LARS, LAMB): the ratio is applied on every step whatever the weight decay.
timm's Lars/Lamb only adapt when weight_decay != 0 unless ``always_adapt=True``; our behaviour is
timm's ``always_adapt=True``. When ||p|| = 0 or ||u|| = 0 the ratio is 1 (as in timm). The norm is
over the whole parameter array (one "layer" per array). LAMB's global gradient-norm clipping
(timm max_grad_norm=1.0) is left out: it is a separate transform, not part of the update rule.

Frozen parameters are never written (bit-for-bit unchanged) and get no optimizer state.
``state_arrays()`` reports the number of state arrays per parameter (0 for frozen ones), the basis
of the optimizer-memory accounting (claim C13: SGD 0, SGD+momentum 1, AdamW 2 arrays per parameter).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from common.registry import Registry

#: rule name -> optimizer class; filled by ``@_register``.
OPTIMIZERS: Registry[type["Optimizer"]] = Registry("optimizer")


def _register(name: str) -> Callable[[type["Optimizer"]], type["Optimizer"]]:
    """Register an update rule as `name` in :data:`OPTIMIZERS` (a name taken raises ``KeyError``)."""
    def wrap(cls: type["Optimizer"]) -> type["Optimizer"]:
        OPTIMIZERS.add(name, cls)
        cls.name = name
        return cls

    return wrap


class Optimizer:
    """Base class: validation, frozen parameters, lr multipliers, per-parameter state."""

    name = "base"
    #: hyperparameter -> default; subclasses override.
    defaults: dict[str, Any] = {}

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float,
        frozen: list[bool] | None = None,
        lr_mults: list[float] | None = None,
        **hparams: Any,
    ) -> None:
        if not isinstance(params, (list, tuple)) or not params:
            raise ValueError("params must be a non-empty list of numpy arrays")
        for i, p in enumerate(params):
            if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
                raise TypeError(f"params[{i}] must be a floating numpy array, got {type(p).__name__}")
        n = len(params)
        frozen = [False] * n if frozen is None else list(frozen)
        lr_mults = [1.0] * n if lr_mults is None else [float(m) for m in lr_mults]
        if len(frozen) != n or len(lr_mults) != n:
            raise ValueError(f"frozen ({len(frozen)}) and lr_mults ({len(lr_mults)}) must match params ({n})")
        if any(m < 0 or not np.isfinite(m) for m in lr_mults):
            raise ValueError(f"lr_mults must be finite and >= 0, got {lr_mults}")
        unknown = set(hparams) - set(self.defaults)
        if unknown:
            raise TypeError(f"{self.name}: unknown hyperparameters {sorted(unknown)}; known: {sorted(self.defaults)}")
        self.hparams: dict[str, Any] = {**self.defaults, **hparams}
        self._validate_hparams()
        self.params = list(params)
        self.frozen = [bool(f) for f in frozen]
        self.lr_mults = lr_mults
        self.lr = lr
        self.t = 0
        k = self._state_arrays_per_param()
        self.state: list[list[np.ndarray] | None] = [
            None if f else [np.zeros_like(p) for _ in range(k)] for p, f in zip(self.params, self.frozen)
        ]

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"lr must be finite and >= 0, got {value}")
        self._lr = float(value)

    def _validate_hparams(self) -> None:
        wd = self.hparams.get("weight_decay", 0.0)
        if wd < 0:
            raise ValueError(f"weight_decay must be >= 0, got {wd}")

    def _state_arrays_per_param(self) -> int:
        raise NotImplementedError

    def state_arrays(self) -> list[int]:
        """Number of optimizer-state arrays held for each parameter (0 if frozen)."""
        return [0 if s is None else len(s) for s in self.state]

    def state_numel(self) -> int:
        """Total number of optimizer-state scalars."""
        return sum(a.size for s in self.state if s is not None for a in s)

    def step(self, grads: list[np.ndarray]) -> None:
        """Apply one update in place; gradients of frozen parameters are ignored (may be None)."""
        if len(grads) != len(self.params):
            raise ValueError(f"got {len(grads)} gradients for {len(self.params)} parameters")
        self.t += 1
        for i, (p, g) in enumerate(zip(self.params, grads)):
            if self.frozen[i]:
                continue
            if g is None or g.shape != p.shape:
                raise ValueError(f"grads[{i}] has shape {None if g is None else g.shape}, param {p.shape}")
            self._update(p, np.asarray(g, dtype=p.dtype), self.state[i], self.lr * self.lr_mults[i])

    def _update(self, p: np.ndarray, g: np.ndarray, state: list[np.ndarray], lr: float) -> None:
        raise NotImplementedError


def _trust_ratio(p: np.ndarray, u: np.ndarray) -> float:
    """||p|| / ||u||, or 1 when either norm is zero (timm's convention)."""
    pn, un = float(np.linalg.norm(p)), float(np.linalg.norm(u))
    return pn / un if pn > 0 and un > 0 else 1.0


@_register("sgd")
class SGD(Optimizer):
    """torch.optim.SGD with dampening 0: coupled weight decay, heavy-ball or Nesterov momentum."""

    defaults = {"momentum": 0.0, "weight_decay": 0.0, "nesterov": False}

    def _validate_hparams(self) -> None:
        super()._validate_hparams()
        if not 0.0 <= self.hparams["momentum"] < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.hparams['momentum']}")
        if self.hparams["nesterov"] and self.hparams["momentum"] == 0:
            raise ValueError("nesterov needs momentum > 0")

    def _state_arrays_per_param(self) -> int:
        return 1 if self.hparams["momentum"] > 0 else 0

    def _update(self, p: np.ndarray, g: np.ndarray, state: list[np.ndarray], lr: float) -> None:
        mu, wd = self.hparams["momentum"], self.hparams["weight_decay"]
        if wd:
            g = g + wd * p
        if mu > 0:
            buf = state[0]
            if self.t == 1:
                buf[...] = g
            else:
                buf *= mu
                buf += g
            g = g + mu * buf if self.hparams["nesterov"] else buf
        p -= lr * g


class _AdamBase(Optimizer):
    """Shared Adam moments with bias correction."""

    def _validate_hparams(self) -> None:
        super()._validate_hparams()
        b1, b2 = self.hparams["betas"]
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0) or self.hparams["eps"] <= 0:
            raise ValueError(f"need betas in [0, 1) and eps > 0, got {self.hparams}")

    def _state_arrays_per_param(self) -> int:
        return 2

    def _moments(self, g: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, float, float]:
        b1, b2 = self.hparams["betas"]
        m, s = state
        m *= b1
        m += (1 - b1) * g
        s *= b2
        s += (1 - b2) * g * g
        return m, s, 1 - b1**self.t, 1 - b2**self.t

    def _adam_step(self, p: np.ndarray, g: np.ndarray, state: list[np.ndarray], lr: float) -> None:
        m, s, bc1, bc2 = self._moments(g, state)
        p -= (lr / bc1) * m / (np.sqrt(s) / np.sqrt(bc2) + self.hparams["eps"])


@_register("adam")
class Adam(_AdamBase):
    """torch.optim.Adam (coupled L2 weight decay); the Adam-like pretraining rule."""

    defaults = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}

    def _update(self, p: np.ndarray, g: np.ndarray, state: list[np.ndarray], lr: float) -> None:
        wd = self.hparams["weight_decay"]
        self._adam_step(p, g + wd * p if wd else g, state, lr)


@_register("adamw")
class AdamW(_AdamBase):
    """torch.optim.AdamW: decoupled weight decay p *= 1 - lr*wd before the Adam step."""

    defaults = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}

    def _update(self, p: np.ndarray, g: np.ndarray, state: list[np.ndarray], lr: float) -> None:
        wd = self.hparams["weight_decay"]
        if wd:
            p *= 1 - lr * wd
        self._adam_step(p, g, state, lr)


@_register("lars")
class LARS(Optimizer):
    """LARS: layer-wise ratio trust_coeff*||p||/(||g|| + wd||p|| + eps), always applied, then momentum."""

    defaults = {"momentum": 0.9, "weight_decay": 0.0, "trust_coeff": 0.001, "eps": 1e-8, "nesterov": False}

    def _validate_hparams(self) -> None:
        super()._validate_hparams()
        if not 0.0 <= self.hparams["momentum"] < 1.0 or self.hparams["trust_coeff"] <= 0:
            raise ValueError(f"need momentum in [0, 1) and trust_coeff > 0, got {self.hparams}")

    def _state_arrays_per_param(self) -> int:
        return 1 if self.hparams["momentum"] > 0 else 0

    def _update(self, p: np.ndarray, g: np.ndarray, state: list[np.ndarray], lr: float) -> None:
        mu, wd = self.hparams["momentum"], self.hparams["weight_decay"]
        pn, gn = float(np.linalg.norm(p)), float(np.linalg.norm(g))
        ratio = self.hparams["trust_coeff"] * pn / (gn + wd * pn + self.hparams["eps"]) if pn > 0 and gn > 0 else 1.0
        u = (g + wd * p) * ratio
        if mu > 0:
            buf = state[0]
            if self.t == 1:
                buf[...] = u
            else:
                buf *= mu
                buf += u
            u = u + mu * buf if self.hparams["nesterov"] else buf
        p -= lr * u


@_register("lamb")
class LAMB(_AdamBase):
    """LAMB: Adam direction plus decoupled decay, scaled by the layer trust ratio ||p||/||u||."""

    defaults = {"betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.01}

    def _update(self, p: np.ndarray, g: np.ndarray, state: list[np.ndarray], lr: float) -> None:
        m, s, bc1, bc2 = self._moments(g, state)
        u = (m / bc1) / (np.sqrt(s / bc2) + self.hparams["eps"])
        wd = self.hparams["weight_decay"]
        if wd:
            u = u + wd * p
        p -= lr * _trust_ratio(p, u) * u


def make_optimizer(
    name: str,
    params: list[np.ndarray],
    lr: float,
    frozen: list[bool] | None = None,
    lr_mults: list[float] | None = None,
    **hparams: Any,
) -> Optimizer:
    """Build optimizer `name` (one of ``OPTIMIZERS``) over `params`, updated in place by ``step``.

    frozen[i] = True leaves params[i] bit-for-bit unchanged and allocates no state for it;
    lr_mults[i] scales the base lr for params[i] (e.g. 0.2 for "5x lower LR on the embedding").
    hparams are the rule's own (momentum, weight_decay, betas, eps, nesterov, trust_coeff).
    """
    return OPTIMIZERS.get(name)(params, lr, frozen=frozen, lr_mults=lr_mults, **hparams)
