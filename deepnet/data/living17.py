"""BREEDS Living-17 (Santurkar et al., 2020) built from an ImageNet folder and the BREEDS hierarchy.

The 17 superclasses and their disjoint ID ("source") / OOD ("target") subclasses are computed from
the hierarchy files exactly as BREEDS' ``make_living17(info_dir, split="rand")`` does (robustness
library): superclasses = nodes at depth 5 (longest path from the root ``n00001740``) below "living
thing" ``n00004258`` with at least 4 ImageNet descendants; for each (in sorted order) descend
single-child chains, pool the ImageNet leaves under its children, and draw 4 with
``numpy.random.RandomState(2).choice(sorted_leaves, 4, replace=False)`` (one generator shared across
superclasses): the first 2 are ID, the last 2 OOD. ``tests/deepnet/test_reference_splits.py``
checks the result against the robustness library's own ``make_living17`` on the real hierarchy.

Splits: ``train`` = ImageNet train images of ID subclasses minus a fixed 10% (seed 0) held out as
``id_val``; ``id_test`` / ``ood_test`` = ImageNet val images of ID / OOD subclasses. Groups are the
ImageNet class numbers of the subclasses.
"""
from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import ImageFiles, holdout, require_file
from .registry import DatasetInfo, register_dataset
from .transforms import ImageSpec, living17_transform

ROOT_WNID, LIVING_THING = "n00001740", "n00004258"
LEVEL, N_SUBCLASSES, SPLIT_SEED, MAX_DEPTH = 5, 4, 2, 20
HIERARCHY_FILES = ("dataset_class_info.json", "class_hierarchy.txt", "node_names.txt")
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}

LAYOUT = """\
ROOT/train/<wnid>/*.JPEG          ImageNet train, one folder per class (standard ImageFolder layout)
ROOT/val/<wnid>/*.JPEG            ImageNet val, same layout
ROOT/breeds/dataset_class_info.json, class_hierarchy.txt, node_names.txt
                                  BREEDS hierarchy files (BREEDS-Benchmarks imagenet_class_hierarchy/modified)"""

INFO = DatasetInfo(name="living17", num_classes=17, ood_splits=("ood_test",), epochs=20, metric="acc",
                   layout=LAYOUT)


@dataclass(frozen=True)
class BreedsTask:
    superclasses: list[str]          # wnids, index = label
    names: list[str]
    id_subclasses: list[list[str]]   # per superclass, ImageNet wnids seen in training
    ood_subclasses: list[list[str]]  # per superclass, disjoint wnids for OOD
    class_number: dict[str, int]     # ImageNet wnid -> ImageNet class number


class BreedsHierarchy:
    """The ImageNet class hierarchy restricted to ImageNet classes and their ancestors."""

    def __init__(self, info_dir: Path) -> None:
        for name in HIERARCHY_FILES:
            require_file(info_dir / name, INFO)
        try:
            class_info = json.loads((info_dir / "dataset_class_info.json").read_text())
            self.class_number = {str(c[1]): int(c[0]) for c in class_info}
        except (ValueError, TypeError, IndexError, KeyError) as e:
            raise INFO.error(f"dataset_class_info.json must be a list of [number, wnid, name]: {e!r}") from None
        edges = [line.split() for line in (info_dir / "class_hierarchy.txt").read_text().splitlines() if line.strip()]
        if any(len(e) != 2 for e in edges):
            raise INFO.error("class_hierarchy.txt must hold one 'parent child' pair per line")
        self.node_name = dict(
            line.split("\t", 1) for line in (info_dir / "node_names.txt").read_text().splitlines() if "\t" in line
        )
        parents: dict[str, set[str]] = {}
        for p, c in edges:
            parents.setdefault(c, set()).add(p)
        # keep only ImageNet classes and their ancestors
        kept, todo = set(), [w for w in self.class_number if w in parents]
        while todo:
            w = todo.pop()
            if w not in kept:
                kept.add(w)
                todo.extend(parents.get(w, ()))
        self.children: dict[str, set[str]] = {}
        for p, c in edges:
            if c in kept:
                self.children.setdefault(p, set()).add(c)
        self.level = self._longest_path_levels()

    def _longest_path_levels(self) -> dict[str, int]:
        if ROOT_WNID not in self.children:
            raise INFO.error(f"class_hierarchy.txt has no edges from the root {ROOT_WNID}")
        reach, todo = {ROOT_WNID}, [ROOT_WNID]
        while todo:
            for c in self.children.get(todo.pop(), ()):
                if c not in reach:
                    reach.add(c)
                    todo.append(c)
        indegree = {n: 0 for n in reach}
        for n in reach:
            for c in self.children.get(n, ()):
                indegree[c] += 1
        level, ready = {n: 0 for n in reach}, deque([ROOT_WNID])
        while ready:
            n = ready.popleft()
            for c in self.children.get(n, ()):
                level[c] = max(level[c], level[n] + 1)
                indegree[c] -= 1
                if indegree[c] == 0:
                    ready.append(c)
        if any(indegree.values()):
            raise INFO.error("class_hierarchy.txt contains a cycle")
        return level

    def children_sorted(self, node: str) -> list[str]:
        return sorted(self.children.get(node, ()))

    def descendants(self, node: str, max_depth: int) -> set[str]:
        found, frontier = {node}, [node]
        for _ in range(max_depth):
            frontier = [c for n in frontier for c in self.children.get(n, ())]
            found.update(frontier)
        return found

    def leaves_under(self, node: str) -> set[str]:
        """ImageNet classes below ``node`` (search stops at an ImageNet class), and node itself if one."""
        leaves, todo, seen = set(), [node], set()
        while todo:
            n = todo.pop()
            for c in self.children.get(n, ()):
                if c in self.class_number:
                    leaves.add(c)
                elif c not in seen:
                    seen.add(c)
                    todo.append(c)
        if node in self.class_number:
            leaves.add(node)
        return leaves


def breeds_task(info_dir: Path, level: int = LEVEL, ancestor: str = LIVING_THING,
                n_subclasses: int = N_SUBCLASSES, seed: int = SPLIT_SEED) -> BreedsTask:
    """Superclasses with a random ("rand") split of subclasses, as BREEDS defines Living-17."""
    h = BreedsHierarchy(info_dir)
    below = h.descendants(ancestor, MAX_DEPTH)
    candidates = sorted(n for n, lv in h.level.items() if lv == level and n in below)
    superclasses = [n for n in candidates if len(h.leaves_under(n)) >= n_subclasses]
    if not superclasses:
        raise INFO.error(f"no node at depth {level} below {ancestor} has {n_subclasses} ImageNet classes")
    rng = np.random.RandomState(seed)
    half = n_subclasses // 2
    id_subs, ood_subs = [], []
    for sc in superclasses:
        kids = h.children_sorted(sc)
        while len(kids) == 1:
            kids = h.children_sorted(kids[0])
        pooled = sorted(w for kid in kids for w in sorted(h.leaves_under(kid)))
        chosen = [str(w) for w in rng.choice(pooled, 2 * half, replace=False)]
        if set(chosen[:half]) & set(chosen[half:]):
            raise INFO.error(f"superclass {sc}: ID and OOD subclasses overlap ({chosen})")
        id_subs.append(chosen[:half])
        ood_subs.append(chosen[half:])
    names = [h.node_name.get(s, s) for s in superclasses]
    return BreedsTask(superclasses, names, id_subs, ood_subs, h.class_number)


def _images_of(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise INFO.error(f"missing ImageNet class folder {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise INFO.error(f"ImageNet class folder {folder} holds no images")
    return files


def _collect(split_dir: Path, subclasses: list[list[str]], class_number: dict[str, int]):
    files, labels, groups = [], [], []
    for label, wnids in enumerate(subclasses):
        for wnid in wnids:
            imgs = _images_of(split_dir / wnid)
            files += imgs
            labels += [label] * len(imgs)
            groups += [class_number[wnid]] * len(imgs)
    return files, np.asarray(labels), np.asarray(groups)


@register_dataset(INFO)
def build(root: Path, spec: ImageSpec, train_augment: bool) -> dict:
    task = breeds_task(root / "breeds")
    if len(task.superclasses) != INFO.num_classes:
        raise INFO.error(f"the hierarchy gives {len(task.superclasses)} superclasses, Living-17 has 17")
    files, labels, groups = _collect(root / "train", task.id_subclasses, task.class_number)
    keep, held = holdout(len(files))
    parts = {
        "train": ([files[i] for i in keep], labels[keep], groups[keep]),
        "id_val": ([files[i] for i in held], labels[held], groups[held]),
        "id_test": _collect(root / "val", task.id_subclasses, task.class_number),
        "ood_test": _collect(root / "val", task.ood_subclasses, task.class_number),
    }
    return {
        name: ImageFiles(f, y, g, living17_transform(spec, train_augment and name == "train"), INFO)
        for name, (f, y, g) in parts.items()
    }
