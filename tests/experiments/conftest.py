"""Fixtures: a small synthetic results file in the deepnet contract's record format."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

# (method, lr, id_val, id_test, ood) on one (model, dataset): the best-on-ID-val LR is the first.
RUNS = [
    ("sgd", 1e-3, 0.90, 0.91, 0.60), ("sgd", 1e-2, 0.80, 0.82, 0.70),
    ("adamw", 1e-4, 0.92, 0.92, 0.72),
    ("sgd_freeze_embed", 1e-3, 0.91, 0.915, 0.74),
    ("lp", 1e-2, 0.85, 0.86, 0.75),
    ("lp_ft", 1e-4, 0.905, 0.90, 0.76),
]


def record(model: str, dataset: str, method: str, lr: float, id_val: float, id_test: float, ood: float) -> dict:
    return {
        "config": {"model": model, "dataset": dataset, "method": method, "lr": lr, "seed": 0,
                   "pretrained": False, "max_train_steps": 5},
        "status": "ok", "best_epoch": 0,
        "metrics": {"id_val": id_val, "id_test": id_test, "ood": {"ood_test": ood}, "ood_avg": ood, "worst_group": None},
        "history": [{"epoch": 0, "train_loss": 1.0, "id_val": id_val}],
        "commit": "0" * 40, "env": {"torch": "x", "device": "cpu"}, "time_s": 1.0,
    }


@pytest.fixture
def results_file(tmp_path: Path) -> Path:
    path = tmp_path / "results" / "synthetic.jsonl"
    path.parent.mkdir()
    lines = [json.dumps(record("small_vit", "digits", *run)) for run in RUNS]
    path.write_text("\n".join(lines) + "\n")
    return path
