"""Tiny fixture trees in each real benchmark's on-disk layout, for tests and smoke runs.

``make_fixture(name, root)`` writes random-noise images (deterministic per name) in exactly the
layout the loader for ``name`` reads, with ``n_per_class`` images per class in every split, and
returns the directory to pass to ``build_splits`` as the data root.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from deepnet.registry import Registry

FixtureWriter = Callable[[Path, int, int, np.random.Generator], None]
FIXTURES: Registry[FixtureWriter] = Registry("dataset fixture")


def make_fixture(name: str, root: str | Path, n_per_class: int = 2, image_size: int = 16) -> Path:
    """Write a fixture tree for dataset ``name`` under ``root/name`` and return that directory."""
    if n_per_class < 1 or image_size < 1:
        raise ValueError("n_per_class and image_size must be positive")
    writer = FIXTURES.get(name)
    out = Path(root) / name
    out.mkdir(parents=True, exist_ok=True)
    seed = sum(name.encode())
    writer(out, n_per_class, image_size, np.random.default_rng(seed))
    return out


def _noise(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def _write_image(path: Path, rng: np.random.Generator, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_noise(rng, size)).save(path)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


@FIXTURES.register("waterbirds")
def _waterbirds(out: Path, n: int, size: int, rng: np.random.Generator) -> None:
    rows = []
    for split in (0, 1, 2):
        for y in (0, 1):
            for place in (0, 1):
                # train is spuriously correlated (more majority-group images), val/test balanced
                count = n * (2 if split == 0 and y == place else 1)
                for k in range(count):
                    rel = f"{y:03d}.class{y}/s{split}_p{place}_{k}.jpg"
                    _write_image(out / rel, rng, size)
                    rows.append([len(rows) + 1, rel, y, split, place, f"place{place}/{k}.jpg"])
    _write_csv(out / "metadata.csv", ["img_id", "img_filename", "y", "split", "place", "place_filename"], rows)
