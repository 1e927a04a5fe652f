"""Layer gradient norms of a deep linear net at given weights (SGD paper eq. 3.1, Appendix F).

G_l is the mean over one pass of minibatches of ||dL/dM_l||_F, reported raw and in the two
normalizations of `common.grad_norms.GRAD_NORMALIZATIONS` (the same quantity
``deepnet.measure.grad_norms`` measures on real networks).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.grad_norms import GRAD_NORMALIZATIONS
from theory.deep import Layers, check_data, layer_names, loss_and_grads


@dataclass
class LayerGradNorms:
    """SGD paper eq. 3.1 per layer, bottom to top: G_l = mean over minibatches of ||g_l(B)||_2, and G_l
    divided by ||theta_l|| (relative movement of one SGD step) and by sqrt(#params_l) (an SGD step
    relative to a first AdamW step). Fields are named as `common.grad_norms.GRAD_NORMALIZATIONS`'s."""

    names: list[str]
    grad_norm: np.ndarray
    grad_over_param_norm: np.ndarray
    grad_over_sqrt_numel: np.ndarray

    def normalized(self, normalization: str = "raw") -> np.ndarray:
        """The per-layer values of `normalization` (a key of `GRAD_NORMALIZATIONS`)."""
        return getattr(self, GRAD_NORMALIZATIONS[normalization].field)

    def embed_outlier_ratio(self, normalization: str = "raw") -> float:
        """G_embed / max over middle layers (head excluded, as the paper's Figures 3-5); inf-safe."""
        values = self.normalized(normalization)
        middle = values[1:-1]
        if middle.size == 0:
            raise ValueError("the outlier ratio needs at least one middle layer (L >= 1)")
        return float(values[0] / np.max(middle))


def layer_grad_norms(layers: Layers, X: np.ndarray, Y: np.ndarray, batch_size: int, rng: np.random.Generator) -> LayerGradNorms:
    """Eq. 3.1 over one shuffled pass of minibatches of (X, Y) at `layers` (no update is made).

    Parameters
    ----------
    layers : list of ndarray
        [E, W_1..W_L, V], bottom to top.
    X, Y : ndarray
        (n, d) inputs and (n, c) targets.
    batch_size : int
        Minibatch size (the last batch may be smaller).
    rng : numpy.random.Generator
        Draws the one permutation the minibatches are cut from.

    Returns
    -------
    LayerGradNorms

    Raises
    ------
    ValueError
        X, Y and the net's shapes disagree.

    References
    ----------
    .. [1] A. Kumar, R. Shen, S. Bubeck, S. Gunasekar, "How to Fine-Tune Vision Models with SGD",
       arXiv:2211.09359, eq. 3.1 and Appendix F.

    Examples
    --------
    >>> from theory.deep import init_layers
    >>> rng = np.random.default_rng(0)
    >>> gn = layer_grad_norms(init_layers(6, 4, [5], 1, 1.0, rng), rng.standard_normal((8, 6)),
    ...                       rng.standard_normal((8, 1)), 4, rng)
    >>> gn.names, gn.grad_norm.shape
    (['embed', 'mid1', 'head'], (3,))
    >>> bool(np.allclose(gn.normalized("sqrt_numel"), gn.grad_norm / np.sqrt([24, 20, 5])))
    True
    """
    check_data(layers, X, Y)
    order = rng.permutation(X.shape[0])
    batches = [order[s : s + batch_size] for s in range(0, X.shape[0], batch_size)]
    norms = np.array([[np.linalg.norm(g) for g in loss_and_grads(layers, X[b], Y[b])[1]] for b in batches])
    raw = norms.mean(axis=0)
    pnorm = np.array([np.linalg.norm(M) for M in layers])
    numel = np.array([M.size for M in layers], dtype=float)
    return LayerGradNorms(layer_names(layers), raw, raw / pnorm, raw / np.sqrt(numel))
