"""The layer gradient-norm vocabulary shared by theory, deepnet.measure and paper_figs.

``G_l`` (SGD paper eq. 3.1) is the mean over minibatches of the norm of layer ``l``'s gradient;
Appendix F also divides it by the layer's parameter norm ``||theta_l||`` and by ``sqrt(#params_l)``.
Each normalization has one name (a key of `GRAD_NORMALIZATIONS`: what ``G_l`` is divided by), the
record field that holds its value (in ``deepnet.measure.grad_norms`` records, the committed
``gradnorms.jsonl`` files and ``theory.deep.LayerGradNorms``) and a plot label. `KIND_MARKERS` is
the paper's Figure 2 look for the three kinds of layer.

Examples
--------
>>> GRAD_NORMALIZATIONS["param_norm"].field
'grad_over_param_norm'
>>> [name for name in GRAD_NORMALIZATIONS]
['raw', 'param_norm', 'sqrt_numel']
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Normalization:
    """One normalization of ``G_l``: the record field that holds it and its axis label."""

    field: str
    label: str


GRAD_NORMALIZATIONS: dict[str, Normalization] = {
    "raw": Normalization("grad_norm", "G_l (eq. 3.1)"),
    "param_norm": Normalization("grad_over_param_norm", "G_l / ||theta_l||"),
    "sqrt_numel": Normalization("grad_over_sqrt_numel", "G_l / sqrt(#params_l)"),
}

#: layer kind -> (matplotlib marker, colour): embedding red squares, middle layers black circles,
#: head green triangles (SGD paper Figure 2).
KIND_MARKERS: dict[str, tuple[str, str]] = {"embed": ("s", "red"), "middle": ("o", "black"), "head": ("^", "green")}
