"""The torch optimizers of the deepnet suite as data: name -> class and the keyword arguments fixed for it.

As in timm's optimizer factory, each :class:`OptimizerSpec` names the class (timm's by import path,
imported only when one is built), its fixed keyword arguments, and whether it takes a momentum and
torch's fused kernels. Fine-tuning (:meth:`deepnet.methods.Method.build_optimizer`) and pretraining
(:mod:`deepnet.pretrain`) both build through :func:`create_optimizer`.

Fixed arguments (SGD paper, Appendix A): SGD without Nesterov (no dampening, torch's default);
AdamW with betas (0.9, 0.999) and eps 1e-8. LARS and LAMB (timm) with ``always_adapt``: timm
applies the trust ratio only where weight_decay != 0 unless asked, and with the paper's wd = 0 that
silently degrades LARS to SGD. No trust clipping (LARS, not LARC); timm's defaults otherwise (LARS
trust coefficient 1e-3; LAMB betas (0.9, 0.999), eps 1e-6, global grad-norm clipping at 1.0 as in
the LAMB reference implementation, bias correction on).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch

from common.registry import Registry


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer: its class, fixed keyword arguments, and which run settings it takes.

    Attributes
    ----------
    name : str
        The name methods and configs use.
    cls : type or str
        The optimizer class, or its ``"module.Class"`` path (imported when first built).
    fixed : dict
        Keyword arguments every build passes.
    momentum : bool
        Whether it takes the method's momentum.
    fused : bool
        Whether torch has a fused kernel for it (``fused=True``).
    """

    name: str
    cls: type[torch.optim.Optimizer] | str
    fixed: dict[str, Any] = field(default_factory=dict)
    momentum: bool = False
    fused: bool = False

    def resolve(self) -> type[torch.optim.Optimizer]:
        """The optimizer class, importing it when given by path."""
        if not isinstance(self.cls, str):
            return self.cls
        module, _, name = self.cls.rpartition(".")
        return getattr(importlib.import_module(module), name)


_SPECS = (
    OptimizerSpec("sgd", torch.optim.SGD, {"nesterov": False}, momentum=True, fused=True),
    OptimizerSpec("adamw", torch.optim.AdamW, {"betas": (0.9, 0.999), "eps": 1e-8}, fused=True),
    OptimizerSpec("lars", "timm.optim.Lars", {"always_adapt": True, "trust_clip": False}, momentum=True),
    OptimizerSpec("lamb", "timm.optim.Lamb", {"betas": (0.9, 0.999), "always_adapt": True, "trust_clip": False}),
)

#: optimizer name -> :class:`OptimizerSpec`.
OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer")
for _spec in _SPECS:
    OPTIMIZERS.add(_spec.name, _spec)


def create_optimizer(name: str, params: Iterable[Any], lr: float, weight_decay: float, momentum: float,
                     fused: bool = False) -> torch.optim.Optimizer:
    """Build optimizer ``name`` of :data:`OPTIMIZERS` over ``params``.

    Parameters
    ----------
    name : str
        A registered optimizer name.
    params : iterable
        Parameters or parameter groups, as torch optimizers take them.
    lr, weight_decay : float
        The defaults for groups that set none.
    momentum : float
        Passed to the optimizers that take one (SGD, LARS); ignored by the others.
    fused : bool
        Ask for torch's fused kernel (one launch per step instead of the multi-tensor ``foreach``
        path; same update, different rounding order).

    Returns
    -------
    torch.optim.Optimizer

    Raises
    ------
    KeyError
        For an unknown name.
    ValueError
        With ``fused`` for an optimizer that has no fused kernel.
    """
    spec = OPTIMIZERS.get(name)
    if fused and not spec.fused:
        fusable = " and ".join(s.name for s in _SPECS if s.fused)
        raise ValueError(f"fused optimizers exist for {fusable} only, not {name!r}")
    kwargs = {**spec.fixed, "lr": lr, "weight_decay": weight_decay}
    if spec.momentum:
        kwargs["momentum"] = momentum
    if fused:
        kwargs["fused"] = True
    return spec.resolve()(params, **kwargs)
