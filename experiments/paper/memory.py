"""The SGD paper's memory comparisons: every text number that compares two cells of Table 4.

The comparisons are not typed here: :func:`paper_memory_claims` reads every text number of the SGD
paper that compares two cells of Table 4 (``experiments/paper/stated.toml``, stat ``pct_more`` or
``pct_less``) and the two cells themselves (``experiments/paper/sgd_table4.csv``); the GPU check
(:func:`deepnet.gpucheck.report.memory_ratios`) puts our measured ratio of the same two methods
beside each.
"""
from __future__ import annotations

import tomllib
from typing import Any, Callable

from experiments.paper.tables import PAPER_DIR, load_table

MEMORY_TABLE = "sgd:table4"
# a stated percentage p as the ratio a / b of the two selected cells
RATIO: dict[str, Callable[[float], float]] = {"pct_more": lambda p: 1 + p / 100, "pct_less": lambda p: 1 - p / 100}


def paper_memory_claims() -> list[dict[str, Any]]:
    """The SGD paper's text numbers comparing two methods' memory in one Table 4 column.

    Returns
    -------
    list of dict
        Per text number: ``id`` and ``where`` (from stated.toml), ``model`` (the Table 4 column),
        ``numerator`` and ``denominator`` methods, ``paper_text`` (the stated percentage as the
        ratio numerator / denominator) and ``paper_table`` (the ratio of the two printed cells).
    """
    with open(PAPER_DIR / "stated.toml", "rb") as f:
        entries = tomllib.load(f)["stated"]
    table = load_table(MEMORY_TABLE)
    claims = []
    for e in entries:
        a, b = e.get("a", {}), e.get("b", {})
        if e["stat"] not in RATIO or a.get("table") != MEMORY_TABLE or b.get("table") != MEMORY_TABLE:
            continue
        (model,) = a["columns"]
        if b["columns"] != [model]:
            raise ValueError(f"stated.toml {e['id']}: compares two Table 4 columns, {model} and {b['columns']}")
        cells = table.value(model, method=a["method"]), table.value(model, method=b["method"])
        claims.append({"id": e["id"], "where": e["where"], "model": model, "numerator": a["method"],
                       "denominator": b["method"], "paper_text": RATIO[e["stat"]](float(e["stated"])),
                       "paper_table": cells[0] / cells[1]})
    return claims
