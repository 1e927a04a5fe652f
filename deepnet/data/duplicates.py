"""Near-duplicate images between a benchmark's train split and its evaluation splits.

Fingerprint: an image as its split's evaluation transform gives it at ``image_size`` x
``image_size`` pixels (default :data:`DEFAULT_IMAGE_SIZE` = 32), averaged over the colour
channels, centred and scaled to unit norm. The similarity of two images is the Pearson correlation
of their fingerprints (a dot product, in [-1, 1]), blind to brightness and contrast. An image of an
evaluation split (``id_val``, ``id_test``, each OOD split) *has a near-duplicate in train* when its
most correlated train image reaches the threshold (default :data:`DEFAULT_THRESHOLD` = 0.995).
Images that are constant at that size have no correlation and are never counted.

The defaults come from a calibration on MNIST and Fashion-MNIST at 32 px (:data:`CALIBRATION`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

DEFAULT_IMAGE_SIZE = 32
DEFAULT_THRESHOLD = 0.995
CALIBRATION = (
    "Calibration on MNIST / Fashion-MNIST at 32 px: copies that keep the pixel grid (JPEG quality 75, "
    "brightness / contrast changed, noise of std 5 grey levels) correlate 0.999 with their original "
    "(median; 1st percentile about 0.99), distinct digits of one class at most 0.986, distinct but look-alike "
    "Fashion-MNIST products (plain trousers, T-shirts) 0.98-0.995; shifted or cropped copies are not "
    "counted (a 1-px shift gives about 0.8)."
)
#: correlations held in memory at once (float32: 128 MiB); evaluation images go in chunks of this / len(train)
MAX_SIMILARITIES = 2 ** 25


def fingerprints(ds: Dataset, desc: str = "fingerprints", progress: bool = True) -> np.ndarray:
    """Unit-norm, zero-mean grey fingerprints of every item of ``ds``, one row per image.

    Parameters
    ----------
    ds : Dataset
        Items ``(image, label, group)`` with ``image`` a (C, H, W) tensor (the size the split was
        built at is the fingerprint size).
    desc : str
        Progress-bar label.
    progress : bool
        Show a progress bar.

    Returns
    -------
    numpy.ndarray
        float32 array of shape (len(ds), H * W); rows of constant images are all zero.
    """
    x = None
    for i in tqdm(range(len(ds)), desc=desc, disable=not progress, leave=False):
        grey = torch.as_tensor(ds[i][0], dtype=torch.float64).mean(0).flatten()
        if x is None:
            x = np.zeros((len(ds), grey.numel()), dtype=np.float32)
        grey -= grey.mean()
        norm = float(grey.norm())
        if norm > 1e-6:
            x[i] = (grey / norm).numpy()
    return np.zeros((0, 0), dtype=np.float32) if x is None else x


def best_matches(queries: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query fingerprint, the most correlated reference and that correlation.

    Parameters
    ----------
    queries, references : numpy.ndarray
        Fingerprints from :func:`fingerprints`, shapes (n, d) and (m, d) with m >= 1.

    Returns
    -------
    index : numpy.ndarray
        (n,) int, row of ``references`` most correlated with each query.
    correlation : numpy.ndarray
        (n,) float, that correlation.
    """
    if len(references) == 0 or queries.shape[1:] != references.shape[1:]:
        raise ValueError(f"cannot match queries {queries.shape} against references {references.shape}")
    index, corr = np.empty(len(queries), dtype=np.int64), np.empty(len(queries), dtype=np.float64)
    step = max(1, MAX_SIMILARITIES // len(references))
    for start in range(0, len(queries), step):
        sims = queries[start:start + step] @ references.T
        best = sims.argmax(1)
        index[start:start + step] = best
        corr[start:start + step] = sims[np.arange(len(best)), best]
    return index, corr


@dataclass(frozen=True)
class SplitDuplicates:
    """Near-duplicates of one evaluation split in train.

    Attributes
    ----------
    split : str
        Evaluation split name.
    size : int
        Images in the split.
    index, train_index : numpy.ndarray
        Split images with a near-duplicate, and their most correlated train image, most similar first.
    correlation : numpy.ndarray
        Their correlations (>= the threshold).
    same_label : numpy.ndarray
        bool, whether each pair shares its label.
    """

    split: str
    size: int
    index: np.ndarray
    train_index: np.ndarray
    correlation: np.ndarray
    same_label: np.ndarray

    @property
    def count(self) -> int:
        return len(self.index)


def near_duplicates(splits: dict[str, Dataset], threshold: float = DEFAULT_THRESHOLD,
                    progress: bool = True) -> list[SplitDuplicates]:
    """Near-duplicates in ``splits["train"]`` of every other split's images.

    Parameters
    ----------
    splits : dict of str to Dataset
        As :func:`deepnet.data.build_splits` returns them (with ``train_augment=False``, so train is
        fingerprinted through the evaluation transform); each dataset has a ``labels`` array.
    threshold : float
        Correlation at or above which a pair counts, in (0, 1].
    progress : bool
        Show progress bars.

    Returns
    -------
    list of SplitDuplicates
        One per evaluation split, in the order of ``splits``.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if "train" not in splits or len(splits["train"]) == 0:
        raise ValueError("a non-empty 'train' split is needed")
    train = fingerprints(splits["train"], "fingerprint train", progress)
    train_labels = np.asarray(splits["train"].labels)
    out = []
    for name, ds in splits.items():
        if name == "train":
            continue
        match, corr = best_matches(fingerprints(ds, f"fingerprint {name}", progress), train)
        hit = np.flatnonzero(corr >= threshold)
        hit = hit[np.argsort(-corr[hit], kind="stable")]
        same = np.asarray(ds.labels)[hit] == train_labels[match[hit]]
        out.append(SplitDuplicates(name, len(ds), hit, match[hit], corr[hit], same))
    return out
