"""Linear probing (LP) and LP-FT.

LP (LP-FT paper, Kumar et al. 2022; SGD paper Appendix B): L2-regularised logistic regression
(scikit-learn, lbfgs, multinomial) on standardized frozen backbone features, the inverse
regularisation ``C`` chosen by ID-validation accuracy over a log grid starting at 1e-7 and ending at
1e2. The SGD paper's text says "50 regularization values in np.logspace(-7, 2, 5)", which is
self-contradictory (that call gives 5 values); we use 50 values, ``np.logspace(-7, 2, 50)``.

The fitted probe is written into the model's linear head exactly (standardization folded into the
weights), so ``model(x)`` reproduces the probe's decision function. LP-FT then fine-tunes the whole
model from that head with the base recipe at a 10x smaller learning-rate grid.

The LP-FT authors' code (AnanyaKumar/transfer_learning: ``unlabeled_extrapolation/log_reg_sk.py``,
``baseline_train.py``) has four knobs, each an option here, set per run from the run's config
(:meth:`ProbeThenTune.configure`; ``RunConfig.lp_scaling`` / ``lp_max_iter`` / ``normalize_lp`` /
``use_net_val_mode``): one global mean / std for all features instead of per-feature
standardization; a small ``max_iter`` per C (200; 20 in an earlier version) along the warm-started
C sweep instead of a fit to convergence; ``normalize_lp``, the probe rescaled to a fresh head's
std before fine-tuning (:func:`normalize_probe`); and ``use_net_val_mode``, the network in eval
mode while it trains (BatchNorm statistics frozen, dropout off).

Defaults: per-feature standardization fit to convergence (1000 iterations per C), no
``normalize_lp``, and eval mode while LP-FT fine-tunes; the README (*Offline evidence*, C6) gives
the screen that chose them and what each option does to the probe's head and to LP-FT.
"""
from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from deepnet.methods.base import Method, ProbeData
from deepnet.progress import progress_bar

PAPER_C_GRID = tuple(float(c) for c in np.logspace(-7, 2, 50))
# Logit given to a class absent from the probe's training labels, so it is never predicted.
_ABSENT_CLASS_LOGIT = -30.0
# Fits kept per process, keyed by a digest of everything the fit depends on. The frozen features
# are the same for every seed and LR of a sweep cell, and for LP and LP-FT, so one fit (50 lbfgs
# solves, minutes on a CPU core) serves all of them.
_FIT_CACHE: OrderedDict[str, "ProbeFit"] = OrderedDict()
_FIT_CACHE_SIZE = 8
SCALINGS = ("per_feature", "global")


@dataclass
class ProbeFit:
    """A fitted probe in the space of raw (unstandardized) features: logits = x @ weight.T + bias.

    ``classes`` are the rows sklearn fitted (the train split's labels; other rows are absent
    classes, weight 0 and bias ``_ABSENT_CLASS_LOGIT``); ``n_iter`` is lbfgs's iteration count at
    the chosen C (equal to ``max_iter`` when that solve stopped at the cap).
    """

    weight: np.ndarray  # (num_classes, feature_dim)
    bias: np.ndarray  # (num_classes,)
    C: float
    val_acc: float
    val_acc_by_C: dict[float, float]
    classes: np.ndarray
    n_iter: int


def fit_linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    num_classes: int,
    c_grid: tuple[float, ...] = PAPER_C_GRID,
    max_iter: int = 1000,
    scaling: str = "per_feature",
) -> ProbeFit:
    """Fit logistic regression along ``c_grid`` and keep the best C on ID validation.

    Parameters
    ----------
    train_x, train_y, val_x, val_y : np.ndarray
        Frozen features and labels of the train and ID-validation splits.
    num_classes : int
        Rows of the returned head (classes absent from ``train_y`` get a logit that never wins).
    c_grid : tuple of float
        Inverse regularisation strengths, solved in increasing order, each solve warm-started from
        the previous one (as ``test_log_reg_warm_starting`` in the LP-FT authors' code).
    max_iter : int
        lbfgs iterations per C. 1000 fits every C to (near) convergence; the authors' code runs
        200 per C (20 in an earlier version), so along the warm-started grid a solution is refined
        over several C values rather than converged at each.
    scaling : {"per_feature", "global"}
        ``"per_feature"`` standardizes each feature with the train split's statistics;
        ``"global"`` subtracts one mean and divides by one std over the whole train feature matrix
        (the authors' ``normalize_features``). Either map is folded into the returned weights (the
        authors' ``inv_normalize_weights``).

    Returns
    -------
    ProbeFit
        Ties go to the smaller C (stronger regularisation), as the authors' strict ``>``.

    Notes
    -----
    The result is deterministic, so a process remembers its last few fits by content and returns a
    copy for identical inputs. A progress bar counts the C values solved when progress bars are on
    (:mod:`deepnet.progress`).

    References
    ----------
    Kumar et al., "Fine-Tuning can Distort Pretrained Features and Underperform
    Out-of-Distribution", ICLR 2022 (arXiv:2202.10054), Appendix on linear probing; code:
    AnanyaKumar/transfer_learning, ``unlabeled_extrapolation/log_reg_sk.py``.
    """
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    arrays = [np.ascontiguousarray(a) for a in (train_x, train_y, val_x, val_y)]
    digest = hashlib.sha256(repr((num_classes, tuple(c_grid), max_iter, scaling)).encode())
    for array in arrays:
        digest.update(repr((array.dtype.str, array.shape)).encode())
        digest.update(array.tobytes())
    key = digest.hexdigest()
    if key not in _FIT_CACHE:
        _FIT_CACHE[key] = _fit_linear_probe(*arrays, num_classes, c_grid, max_iter, scaling)
        while len(_FIT_CACHE) > _FIT_CACHE_SIZE:
            _FIT_CACHE.popitem(last=False)
    _FIT_CACHE.move_to_end(key)
    return copy.deepcopy(_FIT_CACHE[key])


def _fit_linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    num_classes: int,
    c_grid: tuple[float, ...],
    max_iter: int,
    scaling: str,
) -> ProbeFit:
    from sklearn.linear_model import LogisticRegression

    train_x = np.asarray(train_x, dtype=np.float64)
    val_x = np.asarray(val_x, dtype=np.float64)
    train_y = np.asarray(train_y)
    val_y = np.asarray(val_y)
    if len(np.unique(train_y)) < 2:
        raise ValueError("linear probing needs at least two classes in the train split")
    center, scale = _feature_scaling(train_x, scaling)
    tx, vx = (train_x - center) / scale, (val_x - center) / scale
    best: tuple[float, float, Any] | None = None
    accs: dict[float, float] = {}
    clf = LogisticRegression(max_iter=max_iter, warm_start=True)
    sweep = progress_bar(sorted(c_grid), desc="linear probe C")
    for C in sweep:
        clf.set_params(C=C)
        clf.fit(tx, train_y)
        acc = float(np.mean(clf.predict(vx) == val_y))
        accs[float(C)] = acc
        if best is None or acc > best[1]:
            best = (float(C), acc, (clf.coef_.copy(), clf.intercept_.copy(), clf.classes_.copy(),
                                    int(np.max(clf.n_iter_))))
        sweep.set_postfix(C=f"{C:.2g}", best_id_val=f"{best[1]:.3f}")
    assert best is not None
    C, acc, (coef, intercept, classes, n_iter) = best
    if coef.shape[0] == 1:  # binary: sklearn stores one row for class 1; split it symmetrically
        coef = np.concatenate([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    w_raw = coef / scale
    b_raw = intercept - w_raw @ center
    weight = np.zeros((num_classes, train_x.shape[1]))
    bias = np.full(num_classes, _ABSENT_CLASS_LOGIT)
    weight[classes.astype(int)] = w_raw
    bias[classes.astype(int)] = b_raw
    return ProbeFit(weight=weight, bias=bias, C=C, val_acc=acc, val_acc_by_C=accs,
                    classes=classes.astype(int), n_iter=n_iter)


def _feature_scaling(train_x: np.ndarray, scaling: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature ``(center, scale)`` of the train features; a (numerically) constant feature or
    matrix gets scale 1."""
    if scaling == "per_feature":
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(train_x)
        return scaler.mean_, scaler.scale_
    std = train_x.std()
    return np.full(train_x.shape[1], train_x.mean()), np.full(train_x.shape[1], std if std > 0 else 1.0)


def normalize_probe(fit: ProbeFit, fresh_weight: np.ndarray) -> ProbeFit:
    """The probe rescaled so its weights' std equals that of a freshly initialised head.

    Weights and biases of the fitted classes are multiplied by one factor,
    ``std(fresh_weight) / std(weight of the fitted classes)``, so the head's decisions (argmax) are
    unchanged and only its scale, hence the size of the gradient it sends into the backbone, goes
    back to that of a new head: the authors' ``normalize_lp`` (``baseline_train.py``), done before
    fine-tuning starts. Absent classes keep their never-winning logit.

    Parameters
    ----------
    fit : ProbeFit
        A fitted probe (not modified).
    fresh_weight : np.ndarray
        The weight matrix of the head as initialised before the probe is loaded.

    Returns
    -------
    ProbeFit
        A copy with ``weight`` and ``bias`` rescaled.

    References
    ----------
    Kumar et al., ICLR 2022 (arXiv:2202.10054); code: AnanyaKumar/transfer_learning,
    ``unlabeled_extrapolation/baseline_train.py`` (``normalize_lp``).
    """
    out = copy.deepcopy(fit)
    rows = fit.classes
    std = float(np.std(fit.weight[rows]))
    if std == 0.0:
        return out
    factor = float(np.std(fresh_weight)) / std
    out.weight[rows] *= factor
    out.bias[rows] *= factor
    return out


def load_probe_into_head(head: nn.Linear, fit: ProbeFit) -> None:
    """Copy a fitted probe into the model's linear head (in place)."""
    if tuple(head.weight.shape) != fit.weight.shape:
        raise ValueError(f"head shape {tuple(head.weight.shape)} != probe shape {fit.weight.shape}")
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(fit.weight, dtype=head.weight.dtype))
        head.bias.copy_(torch.as_tensor(fit.bias, dtype=head.bias.dtype))


@dataclass(frozen=True)
class ProbeThenTune(Method):
    """Fit the head by linear probing, then (if ``fine_tunes``) fine-tune with the base recipe.

    With ``fine_tunes=False`` this is LP; otherwise LP-FT (Kumar et al., ICLR 2022,
    arXiv:2202.10054). The probe's options (``scaling``, ``max_iter``: :func:`fit_linear_probe`;
    ``normalize_lp``: :func:`normalize_probe` before fine-tuning) and the base recipe's
    ``net_val_mode`` are fields, set per run by :meth:`configure` from the run's config. The LP
    stage's chosen C, its ID-val accuracy, lbfgs's iteration count at that C, the head's norm and
    the options in effect are returned by :meth:`prepare` and recorded in the run's result.
    """

    c_grid: tuple[float, ...] = field(default=PAPER_C_GRID)
    scaling: str = "per_feature"
    max_iter: int = 1000
    normalize_lp: bool = False
    net_val_mode: bool = True
    run_options: ClassVar[dict[str, str]] = {**Method.run_options, "lp_scaling": "scaling", "lp_max_iter": "max_iter",
                   "normalize_lp": "normalize_lp"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {self.scaling!r}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter}")

    @property
    def needs_probe_data(self) -> bool:
        return True

    def prepare(self, model: nn.Module, probe_data: ProbeData | None) -> dict[str, Any]:
        if probe_data is None:
            raise ValueError(f"method {self.name!r} needs frozen features (probe_data)")
        fit = fit_linear_probe(
            probe_data.train_x, probe_data.train_y, probe_data.val_x, probe_data.val_y,
            probe_data.num_classes, self.c_grid, max_iter=self.max_iter, scaling=self.scaling,
        )
        if self.normalize_lp:
            fit = normalize_probe(fit, model.head.weight.detach().cpu().numpy())
        load_probe_into_head(model.head, fit)
        return {"lp_C": fit.C, "lp_id_val": fit.val_acc, "lp_n_iter": fit.n_iter,
                "lp_head_norm": float(np.linalg.norm(fit.weight)), "lp_scaling": self.scaling,
                "lp_max_iter": self.max_iter, "normalize_lp": self.normalize_lp,
                "use_net_val_mode": self.net_val_mode}
