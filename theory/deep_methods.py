"""The recipes of the two-stage deep-linear-net experiment: pretraining rules and fine-tuning methods.

Method names are deepnet's (`deepnet.methods.recipes`) for the same recipes. Learning-rate grids
have six points each, as the SGD paper's Appendix A, placed for this model's scale (the selected
learning rates land inside them).

References
----------
.. [1] A. Kumar, R. Shen, S. Bubeck, S. Gunasekar, "How to Fine-Tune Vision Models with SGD",
   arXiv:2211.09359, Appendix A (grids; LP-FT at the SGD grid / 10) and Table 5 (LARS, LAMB).
"""
from __future__ import annotations

from dataclasses import dataclass, field

SGD_LRS = (3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
ADAMW_LRS = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
#: layer-wise rules step by lr * (trust ratio) relative to ||w||: LARS's trust_coeff 1e-3 needs lr ~ 1-100.
LARS_LRS = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
LAMB_LRS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)


@dataclass(frozen=True)
class Pretrainer:
    """A pretraining rule: theory.optim name and hyperparameters (the paper's torch defaults)."""

    optimizer: str
    hparams: dict[str, float] = field(default_factory=dict)


PRETRAINERS: dict[str, Pretrainer] = {
    "sgd": Pretrainer("sgd", {"momentum": 0.9}),
    "adamw": Pretrainer("adamw", {"weight_decay": 0.01}),
}


@dataclass(frozen=True)
class DeepMethod:
    """A fine-tuning recipe: optimizer, which layers train, head initialization, lr grid."""

    optimizer: str | None  # None: closed-form linear probe, no training
    hparams: dict[str, float] = field(default_factory=dict)
    freeze_embed: bool = False
    embed_lr_mult: float = 1.0  # lr multiplier on the embedding (the paper's "5x lower LR on embed": 0.2)
    lp_head: bool = False  # start from the linear-probe head (LP-FT)
    lrs: tuple[float, ...] = ()


DEEP_METHODS: dict[str, DeepMethod] = {
    "sgd": DeepMethod("sgd", {"momentum": 0.9}, lrs=SGD_LRS),
    "sgd_freeze_embed": DeepMethod("sgd", {"momentum": 0.9}, freeze_embed=True, lrs=SGD_LRS),
    "sgd_freeze_embed_no_momentum": DeepMethod("sgd", {}, freeze_embed=True, lrs=SGD_LRS),
    "sgd_embed_lr_div5": DeepMethod("sgd", {"momentum": 0.9}, embed_lr_mult=0.2, lrs=SGD_LRS),
    "adamw": DeepMethod("adamw", {"weight_decay": 0.01}, lrs=ADAMW_LRS),
    "adamw_freeze_embed": DeepMethod("adamw", {"weight_decay": 0.01}, freeze_embed=True, lrs=ADAMW_LRS),
    "lars": DeepMethod("lars", {"momentum": 0.9}, lrs=LARS_LRS),  # the paper's Table 5 baselines
    "lamb": DeepMethod("lamb", {"weight_decay": 0.01}, lrs=LAMB_LRS),
    "lp": DeepMethod(None),  # ridge head, L2 strength selected on ID validation (deep_experiment.RIDGES)
    # LP-FT: SGD from the LP head with the SGD grid divided by 10, as the paper's Appendix A.
    "lp_ft": DeepMethod("sgd", {"momentum": 0.9}, lp_head=True, lrs=tuple(lr / 10 for lr in SGD_LRS)),
}
