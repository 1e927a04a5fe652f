"""``python -m deepnet.data``: list the benchmarks, show a layout, check a dataset on disk (every
image decoded, near-duplicates of train images counted), write a fixture tree, or fit a raw-pixel
baseline (linear, or a small CNN) that measures how large a benchmark's shift is."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from tqdm import tqdm

from common.helpformat import add_command, command_parser
from common.io import write_json
from common.shutdown import freeze_at_exit

from deepnet.config import USER_DATASET_DEFAULTS
from deepnet.plugins import PluginError, add_import_argument, plugins_from_args

from . import DatasetLayoutError, build_splits, dataset_info, make_fixture, register_user_dataset
from .registry import dataset_table
from .duplicates import CALIBRATION, DEFAULT_IMAGE_SIZE, DEFAULT_THRESHOLD, near_duplicates
from .transforms import IMAGENET_MEAN, IMAGENET_STD


PROG = "python -m deepnet.data"
CHECK_DESCRIPTION = "\n\n".join((
    "Build every split of a benchmark, decode every image, and count the images of each evaluation "
    "split (id_val, id_test, OOD splits) that have a near-duplicate in train.",
    "Two images are near-duplicates when the Pearson correlation of their grey versions at --image-size x "
    "--image-size px (the split's evaluation transform, channels averaged) is at least --threshold "
    f"(default {DEFAULT_THRESHOLD} at {DEFAULT_IMAGE_SIZE} px). {CALIBRATION}",
    "Exit status 2 on a missing or malformed dataset or a bad option.",
))


def _int_at_least(low: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text}")
        return value

    return parse


def _correlation(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _spec(size: int) -> SimpleNamespace:
    return SimpleNamespace(mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size=(size, size))


def cmd_list(args: argparse.Namespace) -> None:
    print(dataset_table())


def cmd_layout(args: argparse.Namespace) -> None:
    print(dataset_info(args.name).layout)


def cmd_check(args: argparse.Namespace) -> None:
    if args.dataset_kind is not None:
        register_user_dataset(args.name, args.dataset_kind, args.data_root, args.metric)
    splits = build_splits(args.name, args.data_root, _spec(args.image_size), train_augment=False)
    num_classes = dataset_info(args.name).num_classes
    for split, ds in splits.items():
        counts = np.bincount(np.asarray(ds.labels), minlength=num_classes)
        print(f"{split:10} {len(ds):8d} images  per class min {counts.min()} max {counts.max()}")
    if args.quick:
        for ds in splits.values():
            for i in sorted({0, len(ds) - 1}):
                ds[i]
        print("ok: every split built, first/last images decoded")
        return
    reports = near_duplicates(splits, args.threshold)
    print(f"near-duplicates in train (grey {args.image_size}x{args.image_size} px, correlation >= {args.threshold}):")
    for r in reports:
        print(f"  {r.split:10} {r.count:6d} of {r.size} images ({100 * r.count / r.size:.2f}%) have one; "
              f"{int(r.same_label.sum())} share its label")
        for i, j, c, same in list(zip(r.index, r.train_index, r.correlation, r.same_label))[:args.show]:
            print(f"      {r.split}[{i}] ~ train[{j}]  correlation {c:.4f}" + ("" if same else "  (labels differ)"))
    if args.out is not None:
        write_json(args.out, {
            "benchmark": args.name, "data_root": None if args.data_root is None else str(args.data_root),
            "image_size": args.image_size, "threshold": args.threshold,
            "splits": {r.split: {"size": r.size, "count": r.count, "same_label": int(r.same_label.sum()),
                                 "pairs": [{"index": int(i), "train_index": int(j), "correlation": round(float(c), 6)}
                                           for i, j, c in zip(r.index, r.train_index, r.correlation)]}
                       for r in reports},
        })
        print(f"wrote {args.out}")
    print("ok: every split built and every image decoded")


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

    splits = build_splits(args.name, args.data_root, _spec(args.image_size), train_augment=False)
    rng = np.random.default_rng(args.seed)
    x, y, _ = _features(splits["train"], args.max_images, rng)
    if args.cnn_epochs:
        predict = _fit_cnn(x, y, args.image_size, dataset_info(args.name).num_classes, args.cnn_epochs, args.seed)
        model = f"small CNN, {args.cnn_epochs} epochs of Adam"
    else:
        scaler = StandardScaler().fit(x)
        clf = LogisticRegression(C=args.C, max_iter=2000).fit(scaler.transform(x), y)
        predict = lambda xs: clf.predict(scaler.transform(xs))  # noqa: E731
        model = f"logistic regression, C={args.C}"
    print(f"{args.name}: {model} on {args.image_size}x{args.image_size} grey pixels, {len(y)} train images")
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


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m deepnet.data`` parser: ``list``, ``layout``, ``check``, ``fixture``, ``probe``."""
    parser = command_parser(PROG, __doc__, [f"{PROG} list", f"{PROG} check fmnist_subpop", f"{PROG} COMMAND --help"])
    sub = parser.add_subparsers(dest="command", required=True)
    add_command(sub, "list", help="the registered benchmarks", description="List the registered benchmarks.",
                examples=[f"{PROG} list"]).set_defaults(func=cmd_list)
    p = add_command(sub, "layout", help="the on-disk layout a benchmark expects",
                    description="Print the directory layout benchmark NAME expects under its data root.",
                    examples=[f"{PROG} layout waterbirds"])
    p.add_argument("name")
    p.set_defaults(func=cmd_layout)
    p = add_command(
        sub, "check", help="build every split, decode every image and count near-duplicates of train images",
        description=CHECK_DESCRIPTION,
        examples=[f"{PROG} check fmnist_subpop",
                  f"{PROG} check waterbirds --data-root ~/data/waterbird_complete95_forest2water2 --out dups.json",
                  f"{PROG} check my_shift --dataset-kind folder --data-root data/my_shift"])
    p.add_argument("name")
    p.add_argument("--data-root", default=None,
                   help="dataset directory (optional for offline benchmarks; default: their installed data)")
    p.add_argument("--image-size", type=_int_at_least(2), default=DEFAULT_IMAGE_SIZE,
                   help="pixels per side images are transformed to and compared at")
    p.add_argument("--threshold", type=_correlation, default=DEFAULT_THRESHOLD,
                   help="correlation at or above which two images are near-duplicates, in (0, 1]")
    p.add_argument("--show", type=_int_at_least(0), default=5,
                   help="print this many of the most similar pairs per split")
    p.add_argument("--out", type=Path, default=None, help="also write every pair to this JSON file")
    p.add_argument("--quick", action="store_true",
                   help="only build the splits and decode their first and last images (no duplicate count)")
    p.add_argument("--dataset-kind", default=None,
                   help="NAME is your own data of this kind (folder, csv, npz) at --data-root (default: registered)")
    p.add_argument("--metric", default=USER_DATASET_DEFAULTS["metric"],
                   help="with --dataset-kind: the OOD metric to check the data for")
    p.set_defaults(func=cmd_check)
    p = add_command(sub, "fixture", help="write a tiny random-image tree in a benchmark's layout",
                    description="Write a tiny tree of random images in benchmark NAME's layout under DIR (tests, "
                                "trying a command without the real data).",
                    examples=[f"{PROG} fixture waterbirds /tmp/fixture --n-per-class 4"])
    p.add_argument("name")
    p.add_argument("dir", type=Path)
    p.add_argument("--n-per-class", type=int, default=2, help="images per class and split")
    p.add_argument("--image-size", type=int, default=16, help="pixels per side")
    p.set_defaults(func=cmd_fixture)
    p = add_command(sub, "probe", help="raw-pixel baseline (linear, or CNN): ID vs OOD (and per-group) accuracy",
                    description="Fit a raw-pixel baseline on benchmark NAME's train split (logistic regression on "
                                "grey pixels, or a small CNN) and print each other split's accuracy (and "
                                "worst-group accuracy): how large the benchmark's shift is without pretraining.",
                    examples=[f"{PROG} probe spurious_fmnist", f"{PROG} probe waterbirds --data-root "
                              "~/data/waterbird_complete95_forest2water2 --cnn-epochs 5"])
    p.add_argument("name")
    p.add_argument("--data-root", default=None, help="dataset directory")
    p.add_argument("--image-size", type=int, default=16, help="pixels per side of the grey features")
    p.add_argument("--max-images", type=int, default=5000, help="subsample each split to at most this")
    p.add_argument("--C", type=float, default=0.1, help="inverse L2 strength")
    p.add_argument("--cnn-epochs", type=int, default=0,
                   help="fit a small 2-layer CNN for this many epochs instead of the linear model (0: linear)")
    p.add_argument("--seed", type=int, default=0, help="subsampling and CNN seed")
    p.set_defaults(func=cmd_probe)
    for command in sub.choices.values():
        add_import_argument(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # per-image transforms are tiny: intra-op threads only add overhead (20x on a loaded 2-core box)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        plugins_from_args(args)
        args.func(args)
    except (DatasetLayoutError, KeyError, ValueError, PluginError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)
    return 0


if __name__ == "__main__":
    freeze_at_exit()
    sys.exit(main())
