"""Fine-tuning methods: one registered, documented recipe per method (see ``recipes``)."""
from deepnet.methods.base import ADAMW_LR_GRID, SGD_LR_GRID, Method, ProbeData
from deepnet.methods.gradual_unfreeze import GradualUnfreeze, gradual_lr_factor, num_trainable_groups
from deepnet.methods.linear_probe import PAPER_C_GRID, ProbeFit, ProbeThenTune, fit_linear_probe, load_probe_into_head
from deepnet.methods.recipes import METHODS, get_method

__all__ = [
    "ADAMW_LR_GRID",
    "METHODS",
    "PAPER_C_GRID",
    "SGD_LR_GRID",
    "GradualUnfreeze",
    "Method",
    "ProbeData",
    "ProbeFit",
    "ProbeThenTune",
    "fit_linear_probe",
    "get_method",
    "gradual_lr_factor",
    "load_probe_into_head",
    "num_trainable_groups",
]
