"""Layer-wise gradient norms at the pretrained initialization (SGD paper eq. 3.1, Figure 2,
Appendix F).

For each layer-map group ``l`` and minibatch ``B_t`` of the training data,
``g_l(B_t) = 1/|B| sum_i grad_{theta_l} loss(f(x_i), y_i)`` (the gradient of the mean loss), and

    G_l = (1/m) sum_{t=1..m} ||g_l(B_t)||_2                                    (eq. 3.1)

Appendix F also divides ``G_l`` by the parameter norm ``||theta_l||_2`` (relative movement of the
first SGD step) and by ``sqrt(#params_l)`` (the per-layer movement of a first, sign-like AdamW
step). Parameters that do not require gradients (frozen by a method) are left out of every sum;
a group with no trainable parameter is left out of the result instead of being reported as zero.
No optimizer step is taken and ``.grad`` is untouched (gradients come from ``torch.autograd.grad``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from common.grad_norms import GRAD_NORMALIZATIONS

if TYPE_CHECKING:
    from deepnet.models.registry import LayerMap


@dataclass(frozen=True)
class GroupGradNorm:
    """``G_l`` (eq. 3.1) of one layer-map group and its two Appendix-F normalizations."""

    label: str  # the layer map's group label ("embed", "block3.attn", ..., "head")
    kind: str  # "embed", "middle" or "head"
    num_params: int  # trainable parameters in the group
    param_norm: float  # ||theta_l||_2 at initialization
    grad_norm: float  # G_l: mean over minibatches of ||g_l(B_t)||_2
    num_batches: int

    @property
    def grad_over_param_norm(self) -> float:
        """``G_l / ||theta_l||_2`` (``inf`` for an all-zero group, e.g. a zero-initialized bias)."""
        return self.grad_norm / self.param_norm if self.param_norm > 0 else math.inf

    @property
    def grad_over_sqrt_numel(self) -> float:
        """``G_l / sqrt(#params_l)``."""
        return self.grad_norm / math.sqrt(self.num_params)

    def as_dict(self) -> dict:
        """The record: every field and each normalization's field (`GRAD_NORMALIZATIONS`)."""
        return {**asdict(self), **{n.field: getattr(self, n.field) for n in GRAD_NORMALIZATIONS.values()}}


def group_kind(label: str) -> str:
    """``"embed"`` / ``"head"`` for those groups, ``"middle"`` for every other layer-map group."""
    return label if label in ("embed", "head") else "middle"


def layer_grad_norms(
    model: nn.Module,
    layer_map: "LayerMap",
    batches: Iterable[Sequence[torch.Tensor]],
    max_batches: int | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    train_mode: bool = True,
    progress: bool = False,
) -> list[GroupGradNorm]:
    """``G_l`` for every layer-map group with trainable parameters, bottom -> top.

    ``batches`` yields ``(x, y, ...)`` (extra items such as group labels are ignored) already on
    the model's device; ``max_batches`` stops after that many (``m`` in eq. 3.1). ``train_mode``
    puts the model in train mode for the measurement (as in the first fine-tuning step); the mode
    is restored afterwards.
    """
    params = dict(model.named_parameters())
    groups = []
    for label, names in layer_map.groups():
        trainable = [params[n] for n in names if params[n].requires_grad]
        if trainable:
            groups.append((label, trainable))
    if not groups:
        raise ValueError("no trainable parameter in any layer-map group")
    flat = [p for _, ps in groups for p in ps]
    sums = torch.zeros(len(groups), dtype=torch.float64)
    was_training = model.training
    model.train(train_mode)
    m = 0
    try:
        for batch in tqdm(batches, total=max_batches, desc="grad norms", disable=not progress):
            if max_batches is not None and m >= max_batches:
                break
            x, y = batch[0], batch[1]
            grads = torch.autograd.grad(loss_fn(model(x), y), flat, allow_unused=True)
            i = 0
            for g_idx, (_, ps) in enumerate(groups):
                sq = sum(float(g.double().pow(2).sum()) for g in grads[i:i + len(ps)] if g is not None)
                sums[g_idx] += math.sqrt(sq)
                i += len(ps)
            m += 1
    finally:
        model.train(was_training)
    if m == 0:
        raise ValueError("no minibatch to measure gradients on")
    with torch.no_grad():
        return [
            GroupGradNorm(
                label=label,
                kind=group_kind(label),
                num_params=sum(p.numel() for p in ps),
                param_norm=math.sqrt(sum(float(p.double().pow(2).sum()) for p in ps)),
                grad_norm=float(sums[k]) / m,
                num_batches=m,
            )
            for k, (label, ps) in enumerate(groups)
        ]


def outlier_summary(rows: list[dict[str, Any]], omit: Sequence[str]) -> dict[str, Any]:
    """Embedding value vs the middle groups' values for each normalization (omitted labels skipped).

    Parameters
    ----------
    rows : list of dict
        One model's :meth:`GroupGradNorm.as_dict` rows.
    omit : sequence of str
        Group labels left out (the ViT's token group, as Appendix F omits it).

    Returns
    -------
    dict
        Per normalization: ``ratio_to_max_middle`` > 1 means the embedding's value exceeds every
        middle group's, the paper's "outlier" (Fig. 2); ``rank`` is the embedding's rank among
        embed + middle (1 = largest). Empty when the embedding or every middle group is absent
        (e.g. frozen by a method).
    """
    embed = [r for r in rows if r["kind"] == "embed"]
    middle = [r for r in rows if r["kind"] == "middle" and r["label"] not in omit]
    if not embed or not middle:
        return {}
    out = {}
    for key in (n.field for n in GRAD_NORMALIZATIONS.values()):
        e, mids = embed[0][key], [r[key] for r in middle]
        out[key] = {"embed": e, "max_middle": max(mids), "median_middle": sorted(mids)[len(mids) // 2],
                    "ratio_to_max_middle": e / max(mids), "rank": 1 + sum(m > e for m in mids),
                    "of": 1 + len(mids)}
    return out
