"""DomainNet-40 (SENTRY version, Tan et al., 2020): ID sketch, OOD real (SGD paper Section 2.2).

SENTRY ships only train/test lists per domain, so ``id_val`` is a fixed 10% (seed 0) of
``sketch_train_mini.txt``, ``train`` the rest, ``id_test`` = ``sketch_test_mini.txt`` and
``ood_test`` = ``real_test_mini.txt``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import ImageFiles, check_first_file, holdout, require_file
from .registry import DatasetInfo, register_dataset
from .transforms import ImageSpec, domainnet_transform

NUM_CLASSES = 40
ID_DOMAIN, OOD_DOMAIN = "sketch", "real"

LAYOUT = """\
ROOT/{domain}_{train,test}_mini.txt  SENTRY lists, one "relative/path.jpg label" per line, labels 0-39
                                     (needs sketch_train, sketch_test, real_test)
ROOT/<relative path>                 e.g. ROOT/sketch/airplane/sketch_001_000001.jpg"""

INFO = DatasetInfo(name="domainnet", num_classes=NUM_CLASSES, ood_splits=("ood_test",), epochs=50,
                   metric="acc", layout=LAYOUT)


def read_list(root: Path, domain: str, split: str) -> tuple[list[Path], np.ndarray]:
    """Parse ``{domain}_{split}_mini.txt`` into image paths and labels; malformed lines fail."""
    path = require_file(root / f"{domain}_{split}_mini.txt", INFO)
    files, labels = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise INFO.error(f"{path}:{lineno}: expected 'path label', got {line!r}")
        label = int(parts[1])
        if not 0 <= label < NUM_CLASSES:
            raise INFO.error(f"{path}:{lineno}: label {label} outside 0-{NUM_CLASSES - 1}")
        files.append(root / parts[0])
        labels.append(label)
    if not files:
        raise INFO.error(f"{path} lists no images")
    return files, np.asarray(labels, dtype=np.int64)


@register_dataset(INFO)
def build(root: Path, spec: ImageSpec, train_augment: bool) -> dict:
    train_files, train_labels = read_list(root, ID_DOMAIN, "train")
    keep, held = holdout(len(train_files))
    parts = {
        "train": ([train_files[i] for i in keep], train_labels[keep]),
        "id_val": ([train_files[i] for i in held], train_labels[held]),
        "id_test": read_list(root, ID_DOMAIN, "test"),
        "ood_test": read_list(root, OOD_DOMAIN, "test"),
    }
    out = {}
    for name, (files, labels) in parts.items():
        check_first_file(files, name, INFO)
        transform = domainnet_transform(spec, train_augment and name == "train")
        out[name] = ImageFiles(files, labels, np.full(len(files), -1), transform, INFO)
    return out
