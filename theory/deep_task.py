"""The random task of the two-stage deep-linear-net experiment (`theory.deep_experiment`): its
configuration and its draw.

One task per seed (`make_deep_task`):
- pretraining: x ~ N(0, s^2 I_d) (s = ``pre_input_scale``), targets M* x with M* = A B* (``pre_out``
  outputs, rank ``rank``, B* orthonormal rows); the net [E, W_1..W_L, V_pre] starts from Gaussian layers of std
  ``init_scale / sqrt(fan_in)`` and is trained with the pretraining rule (fixed lr, cosine schedule);
- fine-tuning: scalar labels y = w* x, w* = v*^T B* + ``feature_shift`` * (a unit direction outside
  rowspace(B*)), scaled to ||w*|| = 1; ID inputs x = P_S z on a random ``id_dim``-dimensional subspace
  S (n_train train, n_val validation points); OOD inputs x ~ N(0, I_d), so the OOD loss is exactly
  ||W - w*||^2 and the ID loss (W - w*) P_S (W - w*)^T. The pretrained head is replaced by a random
  one of std ``head_scale / sqrt(fan_in)`` (as the paper replaces the classifier).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from theory.deep import Layers, init_layers


@dataclass(frozen=True)
class DeepConfig:
    """Dimensions and training settings of the two-stage experiment (defaults: the claims' setting).

    The default shape puts few parameters in the embedding (E: 16 x 16 = 256 entries, W_1: 1024,
    W_2: 4096; a ViT-B patch embedding is 0.7% of the model), the ingredient that produces AdamW's
    embedding-gradient outlier (see README / C9). E is square, so freezing it loses no expressivity.
    """

    d: int = 16
    embed_dim: int = 16
    widths: tuple[int, ...] = (64, 64)
    pre_out: int = 8
    rank: int = 4
    init_scale: float = 0.3
    pre_n: int = 512
    pre_input_scale: float = 1.0  # pretraining inputs ~ N(0, pre_input_scale^2 I); downstream stay unit scale
    pre_epochs: int = 30
    pre_batch: int = 32
    pre_lr: tuple[tuple[str, float], ...] = (("sgd", 3e-3), ("adamw", 3e-3))
    id_dim: int = 6
    n_train: int = 32
    n_val: int = 32
    feature_shift: float = 0.3
    head_scale: float = 0.1
    ft_epochs: int = 20
    ft_batch: int = 8
    grad_batch: int = 8

    def pretrain_lr(self, pretrainer: str) -> float:
        """The fixed pretraining learning rate of `pretrainer`."""
        return dict(self.pre_lr)[pretrainer]



@dataclass
class DeepTask:
    """One random instance: pretraining data and init, the downstream task, a fresh head.

    Attributes
    ----------
    pre_X, pre_Y : ndarray
        (pre_n, d) pretraining inputs and (pre_n, pre_out) targets M* x.
    pre_init : list of ndarray
        The net's layers [E, W_1..W_L, V_pre] before pretraining.
    w_star : ndarray
        (1, d) downstream map, ||w*|| = 1.
    id_basis : ndarray
        (d, id_dim) orthonormal basis of S, where the ID inputs lie.
    X, Y, X_val, Y_val : ndarray
        ID train and validation inputs (on S) and labels y = w* x.
    head : ndarray
        (1, h_L) random fine-tuning head replacing V_pre.
    pre_target : ndarray
        (pre_out, d) the pretraining map M*.
    """

    pre_X: np.ndarray
    pre_Y: np.ndarray
    pre_init: Layers
    w_star: np.ndarray  # (1, d)
    id_basis: np.ndarray  # (d, id_dim), orthonormal basis of S
    X: np.ndarray
    Y: np.ndarray
    X_val: np.ndarray
    Y_val: np.ndarray
    head: np.ndarray  # (1, h_L) random fine-tuning head
    pre_target: np.ndarray  # M*


def make_deep_task(cfg: DeepConfig, rng: np.random.Generator) -> DeepTask:
    """Draw one task (see the module docstring).

    Parameters
    ----------
    cfg : DeepConfig
        Dimensions, sample sizes and scales.
    rng : numpy.random.Generator
        The only source of randomness: the same stream gives the same task.

    Returns
    -------
    DeepTask

    Raises
    ------
    ValueError
        rank >= d or id_dim >= d (no direction left outside rowspace(B*) or S).

    Examples
    --------
    >>> task = make_deep_task(config_with(d=6, embed_dim=6, widths=[8], rank=2, id_dim=3, n_train=8),
    ...                       np.random.default_rng(0))
    >>> task.X.shape, task.w_star.shape, task.head.shape, [M.shape for M in task.pre_init]
    ((8, 6), (1, 6), (1, 8), [(6, 6), (8, 6), (8, 8)])
    >>> float(round(np.linalg.norm(task.w_star), 12))
    1.0
    """
    if not cfg.rank < cfg.d or not cfg.id_dim < cfg.d:
        raise ValueError(f"need rank < d and id_dim < d, got {cfg}")
    basis = np.linalg.qr(rng.standard_normal((cfg.d, cfg.rank + 1)))[0]
    B_star, outside = basis[:, : cfg.rank].T, basis[:, cfg.rank]
    M_star = rng.standard_normal((cfg.pre_out, cfg.rank)) @ B_star
    pre_X = cfg.pre_input_scale * rng.standard_normal((cfg.pre_n, cfg.d))
    pre_init = init_layers(cfg.d, cfg.embed_dim, list(cfg.widths), cfg.pre_out, cfg.init_scale, rng)
    w = rng.standard_normal(cfg.rank) @ B_star
    w = w / np.linalg.norm(w) + cfg.feature_shift * outside
    w_star = (w / np.linalg.norm(w))[None, :]
    S = np.linalg.qr(rng.standard_normal((cfg.d, cfg.id_dim)))[0]
    X = rng.standard_normal((cfg.n_train, cfg.id_dim)) @ S.T
    X_val = rng.standard_normal((cfg.n_val, cfg.id_dim)) @ S.T
    head = init_layers(cfg.d, cfg.embed_dim, list(cfg.widths), 1, cfg.head_scale, rng)[-1]
    return DeepTask(pre_X, pre_X @ M_star.T, pre_init, w_star, S, X, X @ w_star.T, X_val, X_val @ w_star.T, head, M_star)


def config_with(**overrides: Any) -> DeepConfig:
    """DeepConfig with some fields replaced (lists become tuples).

    Parameters
    ----------
    **overrides
        DeepConfig fields and their values.

    Returns
    -------
    DeepConfig

    Raises
    ------
    TypeError
        A name that is not a DeepConfig field.

    Examples
    --------
    >>> config_with(widths=[32, 32]).widths
    (32, 32)
    """
    return replace(DeepConfig(), **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})


def config_dict(cfg: DeepConfig) -> dict[str, Any]:
    """The config as a JSON-ready dict (for provenance in printed / saved summaries)."""
    return asdict(cfg)
