"""The runs feature distortion is measured on, with the pretrained init they started from: FT and
LP-FT trained here (:func:`train_ft_and_lpft`) or existing run directories (:func:`load_runs`).

Both build the init and the measured splits as a run of the same config does
(:func:`deepnet.run_inputs.build_inputs`).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterable

import torch
from torch.utils.data import Dataset, Subset

from deepnet.config import RunConfig

# (model_0, {split: dataset}, runs, summary): what the distortion command measures
Measured = tuple[torch.nn.Module, dict[str, Dataset], list[dict[str, Any]], dict[str, Any]]


def sample(dataset: Dataset, n: int | None) -> Dataset:
    """``n`` examples of ``dataset`` drawn at random (seed 0, so every call picks the same), or all."""
    if n is None or n >= len(dataset):
        return dataset
    return Subset(dataset, torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:n].tolist())


def _run_row(cfg: RunConfig, **extra: Any) -> dict[str, Any]:
    return {"model": cfg.model, "dataset": cfg.dataset, "method": cfg.method, "lr": cfg.lr, "seed": cfg.seed, **extra}


def train_ft_and_lpft(base: RunConfig, lrs: dict[str, float], runs_dir: Path, subset: int | None = None) -> Measured:
    """Fine-tune each method of ``lrs`` (FT ``sgd`` and LP-FT ``lp_ft``) from one pretrained init.

    Parameters
    ----------
    base : RunConfig
        The runs' config but method and learning rate.
    lrs : dict of str to float
        Learning rate per method.
    runs_dir : Path
        The runs' directories (``<config key>``, checkpoints kept) go under it.
    subset : int, optional
        Train on and measure only this many random examples (:func:`sample`) of every split.

    Returns
    -------
    tuple
        The init's model, the measured splits (``id_test`` and the dataset's OOD splits), the runs
        (``state`` and ``row``) and a summary per method (metrics, status, run directory).
    """
    from deepnet.run_files import CHECKPOINT
    from deepnet.run_inputs import build_inputs
    from deepnet.runtime import seed_everything
    from deepnet.train import train

    init = build_inputs(base)
    runs, summary = [], {}
    for method, lr in lrs.items():
        cfg = dataclasses.replace(base, method=method, lr=lr)
        run_dir = runs_dir / cfg.key()
        inputs = None
        if subset is not None:
            seed_everything(cfg.seed)  # as train() does before building the model: same head init
            full = build_inputs(cfg)
            inputs = dataclasses.replace(full, splits={k: sample(v, subset) for k, v in full.splits.items()},
                                         probe_train=lambda full=full: sample(full.probe_train(), subset))
        record = train(cfg, run_dir, keep_checkpoint=True, inputs=inputs)
        state = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=False)["model"]
        runs.append({"state": state, "row": _run_row(cfg)})
        summary[method] = {"metrics": record["metrics"], "status": record["status"], "run_dir": run_dir.name}
    eval_splits = {s: sample(init.splits[s], subset) for s in ["id_test", *init.ood_splits]}
    return init.bundle.model, eval_splits, runs, summary


def load_runs(run_dirs: Iterable[Path], data_root: str | None = None, splits: list[str] | None = None,
              subset: int | None = None) -> Measured:
    """Existing run directories (trained with ``keep_checkpoint``) and their shared pretrained init.

    Parameters
    ----------
    run_dirs : iterable of Path
        Run directories holding ``checkpoint.pt``, all of one model, dataset and image size.
    data_root : str, optional
        The dataset's root (default: the runs' own).
    splits : list of str, optional
        The splits measured (default: ``id_test`` and the dataset's OOD splits).
    subset : int, optional
        Measure only this many random examples (:func:`sample`) of every split.

    Returns
    -------
    tuple
        As :func:`train_ft_and_lpft`'s; the summary is per run directory (method, lr, metrics).

    Raises
    ------
    ValueError
        A directory without a checkpoint, runs of different models, datasets or image sizes, or
        runs whose pretrained init cannot be rebuilt (random weights).
    """
    from deepnet.models.registry import pretrained_weights_used
    from deepnet.run_files import CHECKPOINT, RESULT
    from deepnet.run_inputs import build_inputs

    runs, configs, summary = [], [], {}
    for run_dir in map(Path, run_dirs):
        if not (run_dir / CHECKPOINT).exists():
            raise ValueError(f"{run_dir} holds no {CHECKPOINT}; train the run with keep_checkpoint (--keep-checkpoint)")
        state = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=False)
        cfg = RunConfig.from_dict(state["config"])
        configs.append(cfg)
        runs.append({"state": state["model"], "row": _run_row(cfg, run=str(run_dir))})
        result = run_dir / RESULT
        summary[str(run_dir)] = {"method": cfg.method, "lr": cfg.lr,
                                 "metrics": json.loads(result.read_text())["metrics"] if result.exists() else None}
    first = configs[0]
    if any((c.model, c.dataset, c.image_size) != (first.model, first.dataset, first.image_size) for c in configs):
        raise ValueError("all runs must share model, dataset and image size (their features are compared to one init)")
    if not (first.pretrained and pretrained_weights_used(first.model, True)):
        raise ValueError("distortion is measured against the pretrained features, which a random-weight run "
                         "(--no-pretrained, or DEEPNET_OFFLINE=1 for hub weights) cannot rebuild")
    init = build_inputs(dataclasses.replace(first, data_root=data_root or first.data_root))
    names = splits or ["id_test", *init.ood_splits]
    return init.bundle.model, {s: sample(init.splits[s], subset) for s in names}, runs, summary
