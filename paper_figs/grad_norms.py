"""SGD paper Figs. 2-8: layer gradient norms at the pretrained initialization (eq. 3.1).

The paper's per-layer values exist only as images, so they are not digitizable; the only numbers
its text gives are Fig. 5's caption (embedding vs other layers after dividing by sqrt(#params):
about 2-3x for SGD-pretrained, over 10x for AdamW-pretrained ResNets), plotted as the paper panel.
Our panels plot the ``gradnorms.jsonl`` rows of ``python -m deepnet.measure gradnorms``
(embedding = red squares, middle = black circles, head = green triangles, as in the paper).
"""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from common.grad_norms import GRAD_NORMALIZATIONS, KIND_MARKERS
from experiments.paper.tables import load_table
from paper_figs import style
from paper_figs.ours import grad_norm_records


def _paper_panel(ax) -> None:
    table = load_table("sgd:fig5_text")
    for x, pre in enumerate(("sgd", "adamw")):
        row = table.row(pretrain=pre)
        lo = row["ratio_low"]
        hi = row["ratio_high"] if row["ratio_high"] is not None else lo
        ax.bar(x, hi, color=style.color("sgd" if pre == "sgd" else "adamw"), alpha=0.4)
        ax.bar(x, lo, color=style.color("sgd" if pre == "sgd" else "adamw"))
        ax.text(x, hi, f"{lo:g}-{hi:g}x" if hi != lo else f">{lo:g}x", ha="center", va="bottom")
    ax.set_xticks([0, 1], ["SGD-pretrained", "AdamW-pretrained"])
    ax.set_ylabel("embed / other layers")
    ax.set_title("paper (Fig. 5 caption), BiT-R50")


def figure(results=None, normalization: str = "raw") -> Figure:
    """The paper's Fig. 5 ratios, then one panel per gradient-norm record of ours.

    Parameters
    ----------
    results : list of path, optional
        Files or folders searched for ``gradnorms.jsonl`` rows.
    normalization : str
        A key of `common.grad_norms.GRAD_NORMALIZATIONS`; normalized panels leave out the head.

    Returns
    -------
    matplotlib.figure.Figure
        Its first axes holds the paper's bars; each next one one scatter point per layer group.
    """
    norm = GRAD_NORMALIZATIONS[normalization]
    records = grad_norm_records(results)
    ncols = min(4, 1 + len(records))
    nrows = -(-(1 + len(records)) // ncols)
    fig, axes = style.plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.0 * nrows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    _paper_panel(flat[0])
    for ax, rec in zip(flat[1:], records):
        groups = [g for g in rec["groups"] if normalization == "raw" or g["kind"] != "head"]
        for i, g in enumerate(groups):
            marker, col = KIND_MARKERS[g["kind"]]
            ax.scatter(i, g[norm.field], marker=marker, color=col, s=18)
        ax.set_yscale("log")
        ax.set_xlabel("layer (bottom -> top)")
        ax.set_ylabel(norm.label)
        ax.set_title(f"ours: {rec['model']}\non {rec['dataset']}", fontsize=8)
    for ax in flat[1 + len(records):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def make(out_dir: Path, results=None, normalization: str = "raw") -> list[Path]:
    """Write :func:`figure` as ``grad_norms_<normalization>.png`` and ``.pdf``; returns both paths."""
    return style.save(figure(results, normalization), out_dir / f"grad_norms_{normalization}.png")
