"""``python -m deepnet plot``: a run's or a sweep's curves from ``metrics.jsonl``, one line per run.

Panels: train loss, learning rate and (when logged) the gradient norm of each layer-map kind
against optimizer steps, then each evaluated metric (ID val, ID test, each OOD split) against steps.
"""
from __future__ import annotations

import json
from pathlib import Path

from common.io import atomic_path
from deepnet.metrics_log import GRAD_NORM, KINDS, read_metrics
from deepnet.run_files import CONFIG, METRICS, RESULT


def find_runs(paths: list[Path]) -> list[Path]:
    """The run directories (holding ``metrics.jsonl``) that are ``paths`` or lie under them, sorted.

    Raises
    ------
    ValueError
        A path does not exist or holds no run with a ``metrics.jsonl``.
    """
    runs = []
    for path in paths:
        if not path.exists():
            raise ValueError(f"{path} does not exist")
        found = sorted(p.parent for p in path.rglob(METRICS)) if path.is_dir() else []
        if not found:
            raise ValueError(f"no {METRICS} in {path} (a run directory or a sweep root)")
        runs += found
    return runs


def run_label(run_dir: Path) -> str:
    """``model-dataset-method-lrX-sN`` from the run's ``result.json`` or sweep ``config.json``,
    else the directory name."""
    from deepnet.config import RunConfig

    for name, pick in ((RESULT, lambda d: d["config"]), (CONFIG, lambda d: d)):
        if (run_dir / name).exists():
            return RunConfig.from_dict(pick(json.loads((run_dir / name).read_text()))).run_name()
    return run_dir.name


def plot_runs(runs: list[Path]):
    """A figure with the train loss, LR, gradient norms (if logged) and evaluation metrics of ``runs``
    against steps.

    Returns
    -------
    matplotlib.figure.Figure
        One axis per quantity (titled by it), one line per run (labelled by :func:`run_label`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {run: read_metrics(run) for run in runs}
    evals = sorted({k for _, ev in curves.values() for r in ev for k in r if k not in ("kind", "step", "epoch")},
                   key=lambda k: ({"id_val": 0, "id_test": 1}.get(k, 2), k))
    norms = [GRAD_NORM + kind for kind in KINDS
             if any(GRAD_NORM + kind in r for steps, _ in curves.values() for r in steps)]
    per_step = ["loss", "lr", *norms]
    panels = [*per_step, *evals]
    cols = min(len(panels), 3)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        for run, (steps, ev) in curves.items():
            source = [r for r in (steps if panel in per_step else ev) if r.get(panel) is not None]
            ax.plot([r["step"] for r in source], [r[panel] for r in source],
                    marker="" if panel in per_step else "o", label=run_label(run))
        ax.set_title("train loss" if panel == "loss" else panel)
        ax.set_xlabel("step")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize="small")
    fig.tight_layout()
    return fig


def save_figure(fig, out: Path) -> list[Path]:
    """Write ``fig`` as ``out`` with suffix .png and .pdf, each atomically; returns both paths."""
    paths = [out.with_suffix(suffix) for suffix in (".png", ".pdf")]
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:], dpi=150)
    return paths
