"""``python -m deepnet.data``: list the benchmarks, show a layout, check a dataset on disk, write a
fixture tree, or fit a raw-pixel baseline (linear, or a small CNN) that measures how large a
benchmark's shift is."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from tqdm import tqdm

from . import DATASETS, DatasetLayoutError, build_splits, dataset_info, make_fixture
from .transforms import IMAGENET_MEAN, IMAGENET_STD


def _spec(size: int) -> SimpleNamespace:
    return SimpleNamespace(mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size=(size, size))


def cmd_list(args: argparse.Namespace) -> None:
    print(f"{'name':16} {'classes':>7} {'epochs':>6}  {'metric':16} {'root':9} OOD splits")
    for name in DATASETS.names():
        info = dataset_info(name)
        root = "required" if info.needs_root else "optional"
        print(f"{name:16} {info.num_classes:7d} {info.epochs:6d}  {info.metric:16} {root:9} {', '.join(info.ood_splits)}")


def cmd_layout(args: argparse.Namespace) -> None:
    print(dataset_info(args.name).layout)


def cmd_check(args: argparse.Namespace) -> None:
    splits = build_splits(args.name, args.root, _spec(args.size), train_augment=False)
    num_classes = dataset_info(args.name).num_classes
    for split, ds in splits.items():
        counts = np.bincount(np.asarray(ds.labels), minlength=num_classes)
        print(f"{split:10} {len(ds):8d} images  per class min {counts.min()} max {counts.max()}")
        indices = range(len(ds)) if args.all else sorted({0, len(ds) - 1})
        for i in tqdm(indices, desc=f"decode {split}", disable=not args.all, leave=False):
            ds[i]
    print("ok: every split built" + (" and every image decoded" if args.all else ", first/last images decoded"))


def cmd_fixture(args: argparse.Namespace) -> None:
    print(make_fixture(args.name, args.dir, n_per_class=args.n_per_class, image_size=args.image_size))


def _features(ds, limit: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = np.arange(len(ds)) if len(ds) <= limit else np.sort(rng.choice(len(ds), limit, replace=False))
    x = np.stack([ds[int(i)][0].mean(0).flatten().numpy() for i in tqdm(idx, desc="features", leave=False)])
    return x, np.asarray(ds.labels)[idx], np.asarray(ds.groups)[idx]


def _small_cnn(size: int, num_classes: int) -> torch.nn.Module:
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(32 * (size // 4) ** 2, 64), nn.ReLU(), nn.Linear(64, num_classes),
    )


def _fit_cnn(x: np.ndarray, y: np.ndarray, size: int, num_classes: int, epochs: int, seed: int):
    """Plain ERM with Adam (lr 1e-3, batch 64) on grey images; returns a predict function."""
    torch.manual_seed(seed)
    net = _small_cnn(size, num_classes)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x).float().view(-1, 1, size, size), torch.from_numpy(y).long()
    for _ in tqdm(range(epochs), desc="cnn epochs", leave=False):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            b = perm[i:i + 64]
            loss = torch.nn.functional.cross_entropy(net(xt[b]), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()

    @torch.no_grad()
    def predict(xs: np.ndarray) -> np.ndarray:
        return net.eval()(torch.from_numpy(xs).float().view(-1, 1, size, size)).argmax(1).numpy()

    return predict


def cmd_probe(args: argparse.Namespace) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    splits = build_splits(args.name, args.root, _spec(args.size), train_augment=False)
    rng = np.random.default_rng(args.seed)
    x, y, _ = _features(splits["train"], args.max_images, rng)
    if args.cnn_epochs:
        predict = _fit_cnn(x, y, args.size, dataset_info(args.name).num_classes, args.cnn_epochs, args.seed)
        model = f"small CNN, {args.cnn_epochs} epochs of Adam"
    else:
        scaler = StandardScaler().fit(x)
        clf = LogisticRegression(C=args.C, max_iter=2000).fit(scaler.transform(x), y)
        predict = lambda xs: clf.predict(scaler.transform(xs))  # noqa: E731
        model = f"logistic regression, C={args.C}"
    print(f"{args.name}: {model} on {args.size}x{args.size} grey pixels, {len(y)} train images")
    for split, ds in splits.items():
        if split == "train":
            continue
        xs, ys, gs = _features(ds, args.max_images, rng)
        correct = predict(xs) == ys
        line = f"  {split:10} acc {correct.mean():.3f}  (n={len(ys)})"
        if gs.min() >= 0:
            per_group = {int(g): correct[gs == g].mean() for g in np.unique(gs)}
            line += f"  worst-group {min(per_group.values()):.3f} " + " ".join(
                f"g{g}={a:.3f}" for g, a in per_group.items())
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deepnet.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the registered benchmarks").set_defaults(func=cmd_list)
    p = sub.add_parser("layout", help="the on-disk layout a benchmark expects")
    p.add_argument("name")
    p.set_defaults(func=cmd_layout)
    p = sub.add_parser("check", help="build every split from ROOT and decode images (all with --all)")
    p.add_argument("name")
    p.add_argument("--root", default=None, help="dataset directory (optional for offline benchmarks)")
    p.add_argument("--size", type=int, default=224, help="input size to transform to (default 224)")
    p.add_argument("--all", action="store_true", help="decode every image, reporting any corrupt file")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("fixture", help="write a tiny random-image tree in a benchmark's layout")
    p.add_argument("name")
    p.add_argument("dir", type=Path)
    p.add_argument("--n-per-class", type=int, default=2)
    p.add_argument("--image-size", type=int, default=16)
    p.set_defaults(func=cmd_fixture)
    p = sub.add_parser("probe", help="raw-pixel baseline (linear, or CNN): ID vs OOD (and per-group) accuracy")
    p.add_argument("name")
    p.add_argument("--root", default=None)
    p.add_argument("--size", type=int, default=16, help="pixels per side of the grey features (default 16)")
    p.add_argument("--max-images", type=int, default=5000, help="subsample each split to at most this")
    p.add_argument("--C", type=float, default=0.1, help="inverse L2 strength (default 0.1)")
    p.add_argument("--cnn-epochs", type=int, default=0,
                   help="fit a small 2-layer CNN for this many epochs instead of the linear model")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_probe)
    args = parser.parse_args(argv)
    # per-image transforms are tiny: intra-op threads only add overhead (20x on a loaded 2-core box)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        args.func(args)
    except (DatasetLayoutError, KeyError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
