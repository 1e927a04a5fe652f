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
SEEDS = (0, 1, 2)


def record(model: str, dataset: str, method: str, lr: float, id_val: float, id_test: float, ood: float,
           seed: int = 0) -> dict:
    return {
        "config": {"model": model, "dataset": dataset, "method": method, "lr": lr, "seed": seed,
                   "pretrained": False, "max_train_steps": 5},
        "status": "ok", "best_epoch": 0,
        "metrics": {"id_val": id_val, "id_test": id_test, "ood": {"ood_test": ood}, "ood_avg": ood, "worst_group": None},
        "history": [{"epoch": 0, "train_loss": 1.0, "id_val": id_val}],
        "commit": "0" * 40, "env": {"torch": "x", "device": "cpu"}, "time_s": 1.0,
    }


def noise(method: str, seed: int) -> float:
    """A small, reproducible per-(method, seed) perturbation (|.| <= 0.006), so paired differences vary by seed."""
    return 0.002 * ((len(method) * (seed + 1)) % 7 - 3)


def seeded_records(model: str, dataset: str, runs=RUNS, seeds=SEEDS) -> list[dict]:
    """`runs` on every seed, each metric moved by :func:`noise` (the LR choice on ID val is kept)."""
    return [record(model, dataset, m, lr, *(v + noise(m, s) for v in (iv, it, ood)), seed=s)
            for s in seeds for m, lr, iv, it, ood in runs]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def results_file(tmp_path: Path) -> Path:
    """Three seeds of RUNS on (small_vit, digits)."""
    return write_jsonl(tmp_path / "results" / "synthetic.jsonl", seeded_records("small_vit", "digits"))
