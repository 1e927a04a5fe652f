"""Pretrain a small model on Fashion-MNIST with SGD or AdamW: the controlled experiment of Appendix E.

The SGD paper pretrains the same architecture on the same data once with SGD and once with AdamW,
then asks whether the embedding layer's gradients at the pretrained initialisation are outliers
(claim C9) and whether fine-tuning with the mismatched optimizer hurts OOD (C12). This command does
that at CPU scale for ``small_vit`` and ``small_resnet`` (see :mod:`deepnet.models.small`): the
10-class Fashion-MNIST task on a seeded, class-balanced subset of the 60k training images, the same
augmentation, schedule, batch size and step count for both optimizers; only the optimizer (and its
usual learning rate / weight decay) differs. The backbone (head dropped) is written to
``deepnet/checkpoints/<name>.pt`` and its entry (sha256, config, per-epoch log, test accuracy on
the 10k test images, commit) to ``MANIFEST.json``.

The downstream offline benchmarks ``fmnist_subpop`` and ``spurious_fmnist`` are built from the
same Fashion-MNIST classes: like BREEDS on ImageNet, the pretraining has seen every subclass,
including the ones those benchmarks hold out as OOD.

Example::

    python -m deepnet.pretrain --arch small_vit --optimizer adamw
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from common.helpformat import command_parser
from common.io import atomic_path, locked, write_text
from common.provenance import git_commit
from deepnet.data.fmnist_subpop import load_fashion_mnist
from deepnet.methods.optimizers import create_optimizer
from deepnet.models.small import ARCHS, CHECKPOINT_DIR, MANIFEST, build, sha256_of

# Each optimizer's usual recipe for training a small net from scratch (lr, weight decay).
OPTIMIZER_DEFAULTS = {"sgd": (0.05, 5e-4), "adamw": (1e-3, 0.05)}
MOMENTUM = 0.9  # SGD's; AdamW takes none


@dataclass
class PretrainConfig:
    arch: str
    optimizer: str
    train_images: int = 6000
    epochs: int = 3
    batch_size: int = 128
    lr: float | None = None            # None -> OPTIMIZER_DEFAULTS
    weight_decay: float | None = None  # None -> OPTIMIZER_DEFAULTS
    warmup_steps: int = 20
    grad_clip: float = 1.0
    seed: int = 0
    data_root: str | None = None
    test_images: int | None = None     # None -> all 10k Fashion-MNIST test images (smaller: smoke runs)

    def resolved(self) -> "PretrainConfig":
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; known: {sorted(ARCHS)}")
        if self.optimizer not in OPTIMIZER_DEFAULTS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; known: {sorted(OPTIMIZER_DEFAULTS)}")
        lr, wd = OPTIMIZER_DEFAULTS[self.optimizer]
        return PretrainConfig(**{**asdict(self), "lr": self.lr if self.lr is not None else lr,
                                 "weight_decay": self.weight_decay if self.weight_decay is not None else wd})


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 3, 28, 28) normalised with mean = std = 0.5 (the models' preprocess)."""
    x = torch.from_numpy(images).float().div_(255.0).sub_(0.5).div_(0.5)
    return x[:, None].expand(-1, 3, -1, -1).contiguous()


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 28 px crop from a 2 px zero-padded (background = -1) image, and horizontal flip."""
    n = x.shape[0]
    padded = F.pad(x, (2, 2, 2, 2), value=-1.0)
    dx, dy = torch.randint(0, 5, (2,), generator=gen).tolist()
    out = padded[:, :, dy:dy + 28, dx:dx + 28]
    flip = torch.rand(n, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


def balanced_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` training images, equally many per class, drawn with ``seed``."""
    classes = np.unique(labels)
    if n % len(classes):
        raise ValueError(f"train_images={n} is not a multiple of the {len(classes)} classes")
    rng = np.random.default_rng(seed)
    per = n // len(classes)
    picks = [rng.choice(np.flatnonzero(labels == c), per, replace=False) for c in classes]
    return np.sort(np.concatenate(picks))


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    model.eval()
    correct = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    return correct / len(x)


def pretrain(cfg: PretrainConfig, progress: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
    """Train ``cfg.arch`` from scratch; return (backbone state dict, record with config and log)."""
    cfg = cfg.resolved()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    (tr_img, tr_lab), (te_img, te_lab) = load_fashion_mnist(cfg.data_root)
    idx = balanced_subset(tr_lab, cfg.train_images, cfg.seed)
    x_tr, y_tr = to_input(tr_img[idx]), torch.from_numpy(tr_lab[idx].astype(np.int64))
    n_test = cfg.test_images or len(te_img)
    x_te, y_te = to_input(te_img[:n_test]), torch.from_numpy(te_lab[:n_test].astype(np.int64))
    model = build(cfg.arch, num_classes=10, checkpoint=None).model
    opt = create_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay, MOMENTUM)
    steps_per_epoch = math.ceil(len(x_tr) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs

    def lr_factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        return 0.5 * (1 + math.cos(math.pi * (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    log, start = [], time.time()
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(len(x_tr), generator=gen)
        loss_sum, correct = 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"{cfg.arch}/{cfg.optimizer} epoch {epoch}", disable=not progress)
        for s in bar:
            b = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            xb, yb = augment(x_tr[b], gen), y_tr[b]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch} step {s}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(b)
            correct += int((logits.argmax(1) == yb).sum())
        entry = {"epoch": epoch, "train_loss": loss_sum / len(x_tr), "train_acc": correct / len(x_tr),
                 "test_acc_first2k": accuracy(model, x_te[:2000], y_te[:2000]),  # cheap progress signal
                 "time_s": round(time.time() - start, 1)}
        log.append(entry)
        if progress:
            print(json.dumps(entry), flush=True)
    record = {"arch": cfg.arch, "optimizer": cfg.optimizer, "config": asdict(cfg), "log": log,
              "test_acc": accuracy(model, x_te, y_te), "test_images": n_test, "params": sum(p.numel() for p in model.backbone.parameters()),
              "commit": git_commit() or "unknown", "torch": torch.__version__, "threads": torch.get_num_threads()}
    return model.backbone.state_dict(), record


def save_checkpoint(name: str, state: dict[str, torch.Tensor], record: dict, out_dir: Path = CHECKPOINT_DIR) -> Path:
    """Write ``<name>.pt`` (fp32 backbone) and its manifest entry, both atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.pt"
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    manifest_path = out_dir / MANIFEST.name
    with locked(manifest_path):  # concurrent pretraining runs must not drop entries
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        manifest[name] = {"file": path.name, "sha256": sha256_of(path), "bytes": path.stat().st_size, **record}
        write_text(manifest_path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m deepnet.pretrain``."""
    p = command_parser("python -m deepnet.pretrain", __doc__.split("\n\nExample::")[0],
                       ["python -m deepnet.pretrain --arch small_vit --optimizer adamw",
                        "python -m deepnet.pretrain --arch small_resnet --optimizer sgd --epochs 5 --out my_checkpoints"])
    p.add_argument("--arch", required=True, choices=sorted(ARCHS))
    p.add_argument("--optimizer", required=True, choices=sorted(OPTIMIZER_DEFAULTS))
    p.add_argument("--train-images", type=int, default=6000, help="class-balanced subset of the 60k (default 6000)")
    p.add_argument("--epochs", type=int, default=3, help="passes over the subset")
    p.add_argument("--batch-size", type=int, default=128, help="images per optimizer step")
    p.add_argument("--lr", type=float, default=None, help="default: sgd 0.05, adamw 1e-3")
    p.add_argument("--weight-decay", type=float, default=None, help="default: sgd 5e-4, adamw 0.05")
    p.add_argument("--seed", type=int, default=0, help="seed of the subset, the initialisation and the data order")
    p.add_argument("--data-root", default=None, help="Fashion-MNIST idx folder (default: the Debian package's)")
    p.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="checkpoint folder (default: the shipped one)")
    p.add_argument("--name", default=None, help="checkpoint name (default: <arch>_fmnist_<optimizer>)")
    return p


def main(argv: list[str] | None = None) -> None:
    a = build_parser().parse_args(argv)
    cfg = PretrainConfig(arch=a.arch, optimizer=a.optimizer, train_images=a.train_images, epochs=a.epochs,
                         batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay, seed=a.seed,
                         data_root=a.data_root)
    state, record = pretrain(cfg)
    path = save_checkpoint(a.name or f"{a.arch}_fmnist_{a.optimizer}", state, record, a.out)
    print(f"wrote {path} (test acc {record['test_acc']:.4f})")


if __name__ == "__main__":
    main()
