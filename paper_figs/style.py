"""One shared look for every figure: method colours and labels, the Agg backend, atomic saving as PNG and PDF."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from common.io import atomic_path  # noqa: E402

METHOD_LABELS = {
    "sgd": "SGD", "adamw": "AdamW", "sgd_freeze_embed": "SGD (freeze-embed)",
    "sgd_freeze_embed_no_momentum": "SGD (FE, no mom.)", "adamw_freeze_embed": "AdamW (freeze-embed)",
    "lp": "LP", "ft": "FT", "lp_ft": "LP-FT", "scratch": "Scratch",
}
METHOD_COLORS = {
    "sgd": "#7f7f7f", "ft": "#7f7f7f", "adamw": "#1f77b4", "sgd_freeze_embed": "#d62728",
    "sgd_freeze_embed_no_momentum": "#ff9896", "adamw_freeze_embed": "#aec7e8", "lp": "#2ca02c",
    "lp_ft": "#9467bd", "scratch": "#bcbd22",
}

plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})


def label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def order(method: str) -> tuple[int, str]:
    """Sort key: the methods of METHOD_LABELS in its order, then any other by name."""
    names = list(METHOD_LABELS)
    return (names.index(method) if method in names else len(names), method)


def color(method: str) -> str:
    return METHOD_COLORS.get(method, "#17becf")


FORMATS = ("png", "pdf")


def save(fig, path: Path) -> list[Path]:
    """Save `fig` in every format of FORMATS (``path`` with each suffix), each atomically (temp file
    + rename), and close it; returns the written paths.

    Every format is cropped to one tight bounding box (``bbox_inches="tight"``'s, padded by
    ``savefig.pad_inches``), laid out once: asked for per format, it took a layout pass of its own
    in each save (a 3-panel figure's PNG + PDF: 0.41 s, with the box computed once 0.34 s).
    """
    fig.draw_without_rendering()
    bbox = fig.get_tightbbox().padded(plt.rcParams["savefig.pad_inches"])
    written = []
    for fmt in FORMATS:
        target = Path(path).with_suffix(f".{fmt}")
        with atomic_path(target) as tmp:
            fig.savefig(tmp, bbox_inches=bbox, format=fmt)
        written.append(target)
    plt.close(fig)
    return written
