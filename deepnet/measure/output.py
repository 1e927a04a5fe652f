"""The measurement commands' row files: ``<stem>.jsonl`` and a CSV of the same rows."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from common.io import write_text

#: the stems of the gradient-norm and feature-distortion row files (read back by the claims ledger)
GRADNORMS = "gradnorms"
DISTORTION = "distortion"


def write_rows(out: Path, stem: str, rows: list[dict[str, Any]]) -> None:
    """``<stem>.jsonl`` and ``<stem>.csv`` with the same rows (CSV: scalar fields only), each atomically.

    Parameters
    ----------
    out : Path
        Folder for both files (created if absent).
    stem : str
        The files' name without suffix.
    rows : list of dict
        One JSON object per line, keys sorted; the CSV's columns are every scalar key, sorted.
    """
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / f"{stem}.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    buf = io.StringIO()
    fields = sorted({k for r in rows for k in r if not isinstance(r[k], (dict, list))})
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / f"{stem}.csv", buf.getvalue())
