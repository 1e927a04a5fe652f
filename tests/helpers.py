"""Builders the test folders share: tiny image datasets on disk, run configs that train in a moment,
and result records in the deepnet contract's format."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest
from PIL import Image

from deepnet.config import RunConfig
from deepnet.run_loop import RunLoop

# ---------------------------------------------------------------- image datasets

#: the splits of :func:`make_folder`: the three ID splits and two OOD splits
FOLDER_SPLITS = ("train", "id_val", "id_test", "ood_sketch", "ood_night")


def write_image(path: Path, seed: int, size: tuple[int, int] = (20, 14)) -> Path:
    """Write a random RGB PNG of ``size`` (width, height) at ``path``, creating its folder.

    Parameters
    ----------
    path : Path
        Where the image goes.
    seed : int
        Seed of its pixels.
    size : tuple of int
        Width and height in pixels.

    Returns
    -------
    Path
        ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def make_folder(root: Path, classes=("cat", "dog"), per_class: int = 2, splits=FOLDER_SPLITS) -> Path:
    """A folder dataset: ``root/<split>/<class>/<i>.png``, each image with its own seed.

    Parameters
    ----------
    root : Path
        The dataset's root directory.
    classes : sequence of str
        Class directories of every split.
    per_class : int
        Images per class and split.
    splits : sequence of str
        Split directories.

    Returns
    -------
    Path
        ``root``.
    """
    seed = 0
    for split in splits:
        for c in classes:
            for i in range(per_class):
                seed += 1
                write_image(root / split / c / f"{i}.png", seed)
    return root


# ---------------------------------------------------------------- run configs


def tiny_run_config(root: str, **overrides) -> RunConfig:
    """A run that trains in a moment: the random-weight small ViT on the Waterbirds fixture at
    ``root``, SGD at lr 1e-2, 2 epochs of batch 4, no loader workers.

    Parameters
    ----------
    root : str
        The Waterbirds fixture tree (``make_fixture("waterbirds", ...)``).
    **overrides
        Any other :class:`~deepnet.config.RunConfig` field, or one of the above changed.

    Returns
    -------
    RunConfig
    """
    base = dict(model="small_vit", dataset="waterbirds", method="sgd", lr=1e-2, epochs=2, batch_size=4,
                data_root=root, pretrained=False, num_workers=0)
    return RunConfig(**{**base, **overrides})


@contextlib.contextmanager
def killed_after_checkpoint(saves: int = 1, on_kill: Callable[[Path], None] | None = None) -> Iterator[None]:
    """Within the block, a run dies (``KeyboardInterrupt``, as if killed) right after writing its
    ``saves``-th checkpoint.

    Parameters
    ----------
    saves : int
        How many checkpoints the run writes before it dies.
    on_kill : callable, optional
        Called with the run directory just before the run dies (e.g. to leave a torn file).
    """
    original, done = RunLoop._save_checkpoint, []

    def save_then_die(self, next_epoch):
        original(self, next_epoch)
        done.append(next_epoch)
        if len(done) == saves:
            if on_kill is not None:
                on_kill(self.run_dir)
            raise KeyboardInterrupt(f"killed after checkpoint {saves}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RunLoop, "_save_checkpoint", save_then_die)
        yield


# ---------------------------------------------------------------- result records

#: (method, lr, id_val, id_test, ood) on one (model, dataset): the best-on-ID-val LR is the first.
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
    """One finished run's record in the deepnet results contract, with one OOD split ``ood_test``.

    Returns
    -------
    dict
        ``config``, ``status`` "ok", ``metrics``, a one-epoch ``history`` and the provenance keys.
    """
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
    """Write ``records`` one JSON object a line at ``path`` (creating its folder); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def write_mnist_subset(root: Path, every: int = 10) -> Path:
    """A ``digits`` data root holding every ``every``-th row of the shipped MNIST 5k CSV (its rows are
    sorted by label, so each class keeps ``500 / every`` real images); UCI OOD digits need no root.

    Parameters
    ----------
    root : Path
        The data root to write ``mnist_5k.csv.gz`` into (created).
    every : int
        Keep one row in ``every``.

    Returns
    -------
    Path
        ``root``.
    """
    import gzip

    from deepnet.data.digits import MNIST_FILE, mnist_path

    with gzip.open(mnist_path(None), "rt") as f:
        rows = f.readlines()[::every]
    root.mkdir(parents=True, exist_ok=True)
    with gzip.open(root / MNIST_FILE, "wt") as f:
        f.writelines(rows)
    return root
