"""Every registered fine-tuning method, each documented with where it comes from in the papers.

LR grids: SGD paper Appendix A (six values each for SGD and AdamW; LP-FT divides by 10). The paper
does not list grids or hyperparameters for LARS and LAMB ("also sweeping over 6 learning rates");
ours are our assumption, not the paper's. Both rescale each layer's step to a fixed fraction of the
layer's weight norm: LAMB by ``lr`` and LARS (timm, trust coefficient 1e-3) by ``lr * 1e-3`` (before
momentum). Both grids therefore span relative per-step changes 1e-5 .. 3e-3 per layer; check that
the best learning rate is inside the grid, as the paper does for its own.
"""
from __future__ import annotations

from deepnet.methods.base import (
    ADAMW_LR_GRID,
    SGD_LR_GRID,
    Method,
    freeze_embed,
    freeze_embed_not_ln,
    freeze_stem,
)
from deepnet.methods.gradual_unfreeze import GradualUnfreeze
from deepnet.methods.linear_probe import ProbeThenTune
from common.registry import Registry

METHODS: Registry[Method] = Registry("method")

LPFT_SGD_LR_GRID = tuple(float(f"{lr / 10:.6g}") for lr in SGD_LR_GRID)
LPFT_ADAMW_LR_GRID = tuple(float(f"{lr / 10:.6g}") for lr in ADAMW_LR_GRID)
LAMB_LR_GRID = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)
LARS_LR_GRID = (1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0)
ADAMW_WD = 0.01


def _add(method: Method) -> Method:
    METHODS.add(method.name, method)
    return method


_add(Method("sgd", "SGD, momentum 0.9, no weight decay: the paper's baseline (Tables 1-2)."))
_add(Method("sgd_no_momentum", "SGD without momentum (Table 7 ablation).", momentum=0.0))
_add(Method("sgd_wd", "SGD with weight decay 0.01 (Table 7 ablation).", weight_decay=0.01))
_add(Method("adamw", "AdamW, weight decay 0.01, betas (0.9, 0.999) (Tables 1-2).",
            optimizer="adamw", weight_decay=ADAMW_WD, lr_grid=ADAMW_LR_GRID))
_add(Method("sgd_freeze_embed", "SGD with the embedding layer frozen (the paper's method, Tables 1-2).",
            frozen=freeze_embed))
_add(Method("sgd_freeze_embed_no_momentum", "SGD (freeze-embed) without momentum (Tables 1-2).",
            momentum=0.0, frozen=freeze_embed))
_add(Method("adamw_freeze_embed", "AdamW with the embedding layer frozen (Appendix D, Tables 11-12).",
            optimizer="adamw", weight_decay=ADAMW_WD, lr_grid=ADAMW_LR_GRID, frozen=freeze_embed))
_add(Method("sgd_freeze_embed_not_ln", "SGD freezing the patch embedding but not its layer norm (Table 7).",
            frozen=freeze_embed_not_ln))
_add(Method("sgd_embed_lr_div5", "SGD with a 5x smaller learning rate on the embedding layer (Table 7).",
            lr_mult={"embed": 0.2}))
_add(Method("sgd_freeze_stem", "SGD freezing only the minimal stem (ConvNeXt ablation, Table 9).",
            frozen=freeze_stem))
_add(Method("lars", "LARS (timm), momentum 0.9, trust ratio always applied (Table 5).",
            optimizer="lars", lr_grid=LARS_LR_GRID))
_add(Method("lamb", "LAMB (timm), weight decay 0.01, trust ratio always applied (Table 5).",
            optimizer="lamb", weight_decay=ADAMW_WD, lr_grid=LAMB_LR_GRID))
_add(GradualUnfreeze("gradual_unfreeze", "SGD unfreezing layer groups top-down, exp LR decay (Table 5)."))
_add(ProbeThenTune("lp", "Linear probe: logistic regression on frozen features, C chosen on ID val "
                   "(Table 7). The learning rate is unused; its grid has one placeholder value.",
                   lr_grid=(1.0,), fine_tunes=False))
_add(ProbeThenTune("lp_ft", "LP-FT: linear probe, then SGD fine-tuning at the SGD grid / 10 (Table 7).",
                   lr_grid=LPFT_SGD_LR_GRID))
_add(ProbeThenTune("lp_ft_adamw", "LP-FT with AdamW fine-tuning at the AdamW grid / 10 (Table 7).",
                   optimizer="adamw", weight_decay=ADAMW_WD, lr_grid=LPFT_ADAMW_LR_GRID))
_add(ProbeThenTune("lp_ft_sgd_freeze_embed", "LP-FT with SGD (freeze-embed) fine-tuning, grid / 10 (Table 7).",
                   lr_grid=LPFT_SGD_LR_GRID, frozen=freeze_embed))


def get_method(name: str) -> Method:
    """The registered fine-tuning method called ``name``.

    Parameters
    ----------
    name : str
        A registered method (``python -m deepnet methods`` lists them with their summaries).

    Returns
    -------
    Method
        The recipe: optimizer, momentum, weight decay, the paper's LR grid, the frozen parameter
        groups and per-group LR multipliers.

    Raises
    ------
    KeyError
        ``name`` is not registered (the message lists the registered ones).

    References
    ----------
    Kumar, Shen, Bubeck, Gunasekar, "How to Fine-Tune Vision Models with SGD", arXiv:2211.09359,
    Appendix A (grids) and Tables 5 and 7 (the other methods); Kumar et al., "Fine-Tuning can
    Distort Pretrained Features and Underperform Out-of-Distribution", ICLR 2022,
    arXiv:2202.10054 (LP and LP-FT).

    Examples
    --------
    >>> from deepnet.methods import get_method
    >>> method = get_method("sgd_freeze_embed")
    >>> method.optimizer, method.momentum, len(method.lr_grid)
    ('sgd', 0.9, 6)
    """
    return METHODS.get(name)
