"""Feature distortion (LP-FT paper, Kumar et al. 2022): how far fine-tuning moves the pretrained
features of each example, ``||phi_ft(x) - phi_0(x)||_2``, on ID vs OOD inputs.

The paper's claim is that full fine-tuning (FT) from a random head changes the features of ID
training-like inputs more than those of OOD inputs, and LP-FT (starting from a fitted linear probe)
changes them less overall. :func:`feature_distortion` reports per split the mean / median / std of
the absolute change and the mean relative change ``||phi_ft(x) - phi_0(x)|| / ||phi_0(x)||``;
both backbones run in eval mode without gradients.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import torch
from tqdm import tqdm

if TYPE_CHECKING:
    from deepnet.models.classifier import Classifier


@dataclass(frozen=True)
class DistortionStats:
    """Summary of per-example feature change on one split."""

    split: str
    n: int
    mean: float  # mean of ||phi_ft(x) - phi_0(x)||_2
    median: float
    std: float
    relative_mean: float  # mean of ||phi_ft(x) - phi_0(x)|| / ||phi_0(x)||

    def as_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def feature_change(
    model_0: "Classifier",
    model_ft: "Classifier",
    batches: Iterable[Sequence[torch.Tensor]],
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example ``(||phi_ft(x) - phi_0(x)||_2, ||phi_0(x)||_2)``, each of shape ``(N,)``.

    ``batches`` yields ``(x, ...)`` on the models' device; ``phi`` is ``model.features``.
    Both models are put in eval mode and restored afterwards.
    """
    modes = (model_0.training, model_ft.training)
    model_0.eval()
    model_ft.eval()
    deltas, norms = [], []
    try:
        for batch in tqdm(batches, desc="feature change", disable=not progress):
            x = batch[0]
            f0 = model_0.features(x).flatten(1).double()
            f1 = model_ft.features(x).flatten(1).double()
            if f0.shape != f1.shape:
                raise ValueError(f"feature shapes differ: {tuple(f0.shape)} vs {tuple(f1.shape)}")
            deltas.append((f1 - f0).norm(dim=1).cpu())
            norms.append(f0.norm(dim=1).cpu())
    finally:
        model_0.train(modes[0])
        model_ft.train(modes[1])
    if not deltas:
        raise ValueError("no examples to measure feature change on")
    return torch.cat(deltas), torch.cat(norms)


def summarize(split: str, delta: torch.Tensor, norm_0: torch.Tensor) -> DistortionStats:
    """Mean / median / std of ``delta`` and mean of ``delta / norm_0`` (examples with a zero
    pretrained feature are left out of the relative mean)."""
    nonzero = norm_0 > 0
    relative = (delta[nonzero] / norm_0[nonzero]).mean().item() if nonzero.any() else float("nan")
    return DistortionStats(
        split=split,
        n=int(delta.numel()),
        mean=delta.mean().item(),
        median=delta.median().item(),
        std=delta.std().item() if delta.numel() > 1 else 0.0,
        relative_mean=relative,
    )


def feature_distortion(
    model_0: "Classifier",
    model_ft: "Classifier",
    splits: Mapping[str, Iterable[Sequence[torch.Tensor]]],
    progress: bool = False,
) -> dict[str, DistortionStats]:
    """:class:`DistortionStats` for each named split (e.g. ``"id_test"``, ``"ood_test"``)."""
    return {name: summarize(name, *feature_change(model_0, model_ft, batches, progress)) for name, batches in splits.items()}
