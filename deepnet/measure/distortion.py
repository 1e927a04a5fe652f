"""Feature distortion (LP-FT paper, Kumar et al. 2022): how far fine-tuning moves the pretrained
features of each example, ``||phi_ft(x) - phi_0(x)||_2``, on ID vs OOD inputs.

The paper's claim is that full fine-tuning (FT) from a random head changes the features of ID
training-like inputs more than those of OOD inputs, and LP-FT (starting from a fitted linear probe)
changes them less overall. :func:`feature_distortion` reports per split the mean / median / std of
the absolute change and the mean relative change ``||phi_ft(x) - phi_0(x)|| / ||phi_0(x)||``;
both backbones run in eval mode without gradients.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from deepnet.measure.batches import loader, on_device

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


def measure_distortion(model_0: torch.nn.Module, runs: list[dict[str, Any]], splits: Mapping[str, Dataset],
                       device: torch.device, batch_size: int, seed: int,
                       max_batches: int | None = None) -> list[dict[str, Any]]:
    """Rows of per-split feature change of each fine-tuned run against the pretrained ``model_0``.

    Parameters
    ----------
    model_0 : torch.nn.Module
        The pretrained init the runs started from.
    runs : list of dict
        Each with ``state`` (the fine-tuned state dict) and ``row`` (fields every row of the run
        starts with: ``method``, ``lr`` ...).
    splits : mapping of str to Dataset
        The splits measured; names starting with ``id_`` are of kind ``id``, the others ``ood``.
    device : torch.device
        Where both models run.
    batch_size, seed : int
        Of the (unshuffled) loaders.
    max_batches : int, optional
        At most this many batches per split.

    Returns
    -------
    list of dict
        One row per run and split: the run's ``row``, ``kind`` and :class:`DistortionStats`' fields.
    """
    model_0 = model_0.to(device)
    rows = []
    for run in runs:
        tuned = copy.deepcopy(model_0)
        tuned.load_state_dict(run["state"])
        loaders = {s: on_device(device, loader(d, batch_size, seed, shuffle=False), max_batches)
                   for s, d in splits.items()}
        for split, st in feature_distortion(model_0, tuned, loaders, progress=True).items():
            rows.append({**run["row"], "kind": "id" if split.startswith("id_") else "ood", **st.as_dict()})
            print(f"{run['row']['method']:24s} {split:10s} mean ||dphi|| {st.mean:.4g} "
                  f"(relative {st.relative_mean:.4g}), median {st.median:.4g}, n={st.n}")
        del tuned
    return rows


def distortion_ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean change per (method, ID/OOD) and the paper's ratios, when exactly one FT and one LP-FT run.

    Parameters
    ----------
    rows : list of dict
        :func:`measure_distortion` rows.

    Returns
    -------
    dict
        ``ft_id_change``, ``ft_ood_change``, ``lpft_id_change``, ``lpft_ood_change``,
        ``ft_id_over_ood`` and ``ft_over_lpft_id``; empty unless the rows are of exactly one
        ``sgd`` and one ``lp_ft`` run.
    """
    def mean_change(method: str, kind: str) -> float:
        vals = [r["mean"] for r in rows if r["method"] == method and r["kind"] == kind]
        return sum(vals) / len(vals)

    runs = {(r["method"], r["lr"]) for r in rows}
    if len(runs) != 2 or {m for m, _ in runs} != {"sgd", "lp_ft"}:
        return {}
    ft_id, ft_ood, lpft_id = mean_change("sgd", "id"), mean_change("sgd", "ood"), mean_change("lp_ft", "id")
    return {"ft_id_change": ft_id, "ft_ood_change": ft_ood, "lpft_id_change": lpft_id,
            "lpft_ood_change": mean_change("lp_ft", "ood"), "ft_id_over_ood": _ratio(ft_id, ft_ood),
            "ft_over_lpft_id": _ratio(ft_id, lpft_id)}


def _ratio(num: float, den: float) -> float:
    """``num / den``; ``inf`` for a zero denominator (``nan`` for 0 / 0)."""
    if den > 0:
        return num / den
    return math.inf if num > 0 else math.nan
