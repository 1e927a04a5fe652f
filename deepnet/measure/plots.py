"""Figures of the measurement commands (matplotlib, Agg backend), written atomically as PNG.

Gradient norms follow the SGD paper's Figure 2 / Appendix F markers (`common.grad_norms.KIND_MARKERS`),
one row per normalization (the head is left out of the normalized rows).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from common.grad_norms import GRAD_NORMALIZATIONS, KIND_MARKERS
from common.io import atomic_path

#: (record field, axis label) of each normalization, in `GRAD_NORMALIZATIONS`' order.
NORMALIZATIONS = tuple((n.field, n.label) for n in GRAD_NORMALIZATIONS.values())
GIB = 2**30


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """Write ``fig`` as a PNG at ``path`` atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)


def plot_gradnorms(rows: list[dict[str, Any]], models: list[str], omit: Sequence[str], title: str):
    """One column per model, one row per normalization, groups bottom -> top on the x axis (log y)."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(NORMALIZATIONS), len(models), figsize=(3.6 * len(models), 8.5), squeeze=False)
    for j, model in enumerate(models):
        mrows = [r for r in rows if r["model"] == model and r["label"] not in omit]
        for i, (key, ylabel) in enumerate(NORMALIZATIONS):
            ax = axes[i][j]
            for x, r in enumerate(mrows):
                if r["kind"] == "head" and i > 0:  # Appendix F leaves the head out of the normalized plots
                    continue
                marker, color = KIND_MARKERS[r["kind"]]
                ax.scatter([x], [r[key]], marker=marker, color=color, s=36 if r["kind"] != "middle" else 18)
            ax.set_yscale("log")
            ax.set_xticks([])
            if j == 0:
                ax.set_ylabel(ylabel)
            if i == 0:
                ax.set_title(model, fontsize=9)
        axes[-1][j].set_xlabel("layer group (bottom -> top)")
    fig.suptitle(title)
    return fig


def plot_memory(rows: list[dict[str, Any]], models: list[str], methods: list[str]):
    """Grouped bars: params + grads + optimizer state (GiB) per model and method."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.6 + 1.7 * len(models), 3.6))
    width = 0.8 / len(methods)
    for k, method in enumerate(methods):
        vals = [next(r["static_bytes"] for r in rows if r["model"] == m and r["method"] == method) / GIB
                for m in models]
        ax.bar([i + k * width for i in range(len(models))], vals, width, label=method)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(models))], models)
    ax.set_ylabel("params + grads + optimizer state (GiB)")
    ax.legend(fontsize=7)
    ax.set_title("Training memory without activations (exact tensor accounting)")
    return fig


def plot_throughput(rows: list[dict[str, Any]], models: list[str], methods: list[str], title: str):
    """Grouped bars: training images/s per model and method, the CUDA peak (GiB) written on each bar."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.6 + 1.7 * len(models), 3.6))
    width = 0.8 / len(methods)
    for k, method in enumerate(methods):
        found = [next(r for r in rows if r["model"] == m and r["method"] == method) for m in models]
        xs = [i + k * width for i in range(len(models))]
        ax.bar(xs, [r["images_per_s"] for r in found], width, label=method)
        for x, r in zip(xs, found):
            if r["cuda_peak_bytes"] is not None:
                ax.text(x, r["images_per_s"], f"{r['cuda_peak_bytes'] / GIB:.1f}", ha="center", va="bottom", fontsize=6)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(models))], models)
    ax.set_ylabel("training images / s")
    ax.legend(fontsize=7)
    ax.set_title(f"Training throughput ({title}; GiB peak on bars when on a GPU)", fontsize=9)
    return fig


def distortion_label(method: str, lr: float, ambiguous: bool) -> str:
    """``FT`` / ``LP-FT`` for the paper's two methods, else the method name (with the lr if needed)."""
    name = {"sgd": "FT", "lp_ft": "LP-FT"}.get(method, method)
    return f"{name} lr {lr:g}" if ambiguous else name


def plot_distortion(rows: list[dict[str, Any]], title: str):
    """Bars of mean ||phi_ft(x) - phi_0(x)|| per split, one bar per fine-tuned run (log y)."""
    plt = _pyplot()
    splits = list(dict.fromkeys(r["split"] for r in rows))
    runs = list(dict.fromkeys((r["method"], r["lr"]) for r in rows))
    ambiguous = len({m for m, _ in runs}) < len(runs)
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    for k, (method, lr) in enumerate(runs):
        vals = [next(r["mean"] for r in rows if (r["method"], r["lr"]) == (method, lr) and r["split"] == s)
                for s in splits]
        ax.bar([i + width * k for i in range(len(splits))], vals, width, label=distortion_label(method, lr, ambiguous))
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(splits))], splits)
    ax.set_ylabel("mean ||phi_ft(x) - phi_0(x)||")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title(f"Feature change, {title}", fontsize=9)
    return fig
