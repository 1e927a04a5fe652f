"""What every deep-net record is stamped with: the software and hardware environment, and a
fingerprint of the data.

File writing and the git commit live in :mod:`common.io` and :mod:`common.provenance`.
"""
from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch.utils.data import Dataset


def environment(device: str | torch.device | None = None) -> dict[str, Any]:
    """Versions and hardware a result was produced with."""
    import timm

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
        "device": str(device) if device is not None else None,
    }
    if device is not None and torch.device(device).type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
        env["gpu_count"] = torch.cuda.device_count()
    return env


def split_fingerprint(splits: Mapping[str, Dataset], root: str | Path | None) -> dict[str, Any]:
    """A cheap fingerprint of a dataset's splits: which data a run trained on.

    The digest covers, per split, its name and size, its labels and groups, and either its image
    files' paths relative to ``root`` (file-backed splits) or its image array's shape (in-memory
    ones); no image is read, so it takes seconds even for large datasets. It does not depend on
    where the data lives, so a copy of the same data elsewhere has the same digest, while a
    fixture, a subset or a changed metadata file does not.

    Parameters
    ----------
    splits : mapping of str to Dataset
        ``build_splits`` output; datasets exposing ``files`` or ``images``, ``labels``, ``groups``.
    root : str or Path or None
        The resolved data root (None: installed offline data).

    Returns
    -------
    dict
        ``{"root": absolute root or None, "digest": 16 hex digits}``.
    """
    digest = hashlib.sha256()
    for name in sorted(splits):
        split = splits[name]
        digest.update(f"{name}:{len(split)}\n".encode())
        if hasattr(split, "files"):
            digest.update("\n".join(os.path.relpath(f, root) if root else str(f) for f in split.files).encode())
        elif hasattr(split, "images"):
            digest.update(repr(split.images.shape).encode())
        for array in ("labels", "groups"):
            if hasattr(split, array):
                digest.update(np.ascontiguousarray(getattr(split, array), dtype=np.int64).tobytes())
    return {"root": str(Path(root).expanduser().resolve()) if root else None, "digest": digest.hexdigest()[:16]}
