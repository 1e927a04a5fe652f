"""Accuracy and worst-group accuracy of a classifier on one split (sharded over ranks under DDP).

Worst-group accuracy (Sagawa et al. 2020; Waterbirds' OOD metric in the SGD paper) is the minimum,
over the groups present in the split, of the accuracy within the group. Items are
``(image, label, group)`` with ``group = -1`` where a dataset has no groups.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ContextManager

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from deepnet.distributed import DistContext, all_reduce, shard_indices
from deepnet.progress import progress_bar

if TYPE_CHECKING:
    from deepnet.run_inputs import RunInputs


@dataclass
class SplitMetrics:
    """Accuracy (fraction in [0, 1]) over the split, per group, and the worst group (None without groups)."""

    acc: float
    group_acc: dict[int, float]
    worst_group_acc: float | None
    n: int

    def metric(self, name: str) -> float:
        """The dataset's headline metric: ``"acc"`` or ``"worst_group_acc"``."""
        if name == "acc":
            return self.acc
        if name == "worst_group_acc":
            if self.worst_group_acc is None:
                raise ValueError("worst_group_acc requested but the split has no group labels")
            return self.worst_group_acc
        raise ValueError(f"unknown metric {name!r}; known: acc, worst_group_acc")


def metrics_from_counts(correct: torch.Tensor, total: torch.Tensor) -> SplitMetrics:
    """Build metrics from per-group counts indexed by ``group + 1`` (index 0 = no group)."""
    n = int(total.sum())
    if n == 0:
        raise ValueError("cannot evaluate an empty split")
    group_acc = {
        g - 1: float(correct[g]) / float(total[g]) for g in range(1, len(total)) if total[g] > 0
    }
    worst = min(group_acc.values()) if group_acc else None
    return SplitMetrics(acc=float(correct.sum()) / n, group_acc=group_acc, worst_group_acc=worst, n=n)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    device: torch.device,
    batch_size: int,
    num_workers: int = 0,
    ctx: DistContext = DistContext(),
    autocast: ContextManager | None = None,
    channels_last: bool = False,
    desc: str = "eval",
) -> SplitMetrics:
    """Evaluate ``model`` (in eval mode) on every item of ``dataset``; each rank takes a shard.

    A progress bar labelled ``desc`` counts the batches when progress bars are on
    (:mod:`deepnet.progress`).
    """
    shard = Subset(dataset, shard_indices(len(dataset), ctx))
    loader = DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    was_training = model.training
    model.eval()
    correct_by: dict[int, int] = {}
    total_by: dict[int, int] = {}
    for x, y, g in progress_bar(loader, desc=desc):
        x = x.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast or contextlib.nullcontext():
            pred = model(x).argmax(dim=1).cpu()
        hit = pred == y
        for group in g.unique().tolist():
            mask = g == group
            correct_by[group] = correct_by.get(group, 0) + int(hit[mask].sum())
            total_by[group] = total_by.get(group, 0) + int(mask.sum())
    model.train(was_training)
    size = torch.tensor([max(total_by, default=-1) + 2], dtype=torch.long)
    size = int(all_reduce(size, ctx, op="max"))
    counts = torch.zeros(2, size, dtype=torch.float64)
    for group, total in total_by.items():
        counts[0, group + 1] = correct_by[group]
        counts[1, group + 1] = total
    counts = all_reduce(counts, ctx)
    return metrics_from_counts(counts[0], counts[1])


def evaluate_run(model: nn.Module, inputs: "RunInputs", device: torch.device, batch_size: int, num_workers: int,
                 ctx: DistContext, autocast: Callable[[], ContextManager], channels_last: bool) -> dict[str, Any]:
    """A run's evaluation: ID val / ID test accuracy and each OOD split's dataset metric.

    Parameters
    ----------
    model : nn.Module
        The classifier, on ``device``.
    inputs : RunInputs
        The run's splits, OOD split names and OOD metric.
    device, batch_size, num_workers, ctx, channels_last
        As :func:`evaluate`'s.
    autocast : callable
        Returns a fresh autocast context (or a null one) per split.

    Returns
    -------
    dict
        ``id_val``, ``id_test``, ``ood`` ({split: metric}), ``ood_avg``, ``worst_group`` (the
        smallest OOD metric when it is ``worst_group_acc``, else None) and ``ood_acc`` (plain OOD
        accuracy per split).
    """
    def run(name: str) -> SplitMetrics:
        return evaluate(model, inputs.splits[name], device, batch_size, num_workers, ctx, autocast(), channels_last,
                        desc=f"eval {name}")

    id_val, id_test = run("id_val"), run("id_test")
    ood = {name: run(name) for name in inputs.ood_splits}
    metric = inputs.metric
    ood_metric = {name: m.metric(metric) for name, m in ood.items()}
    return {
        "id_val": id_val.acc,
        "id_test": id_test.acc,
        "ood": ood_metric,
        "ood_avg": float(np.mean(list(ood_metric.values()))) if ood_metric else None,
        "worst_group": min(ood_metric.values()) if metric == "worst_group_acc" and ood_metric else None,
        "ood_acc": {name: m.acc for name, m in ood.items()},
    }
