"""Command line of the deepnet suite: ``python -m deepnet {train,methods,sweep,collect} ...``.

``train`` runs one fine-tuning run (resumable; run it under ``torchrun --nproc_per_node N`` for
multi-GPU data parallelism); ``methods`` lists the registered methods with their LR grids;
``sweep`` and ``collect`` (from :mod:`deepnet.sweep.cli`) run a sweep spec and tabulate it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deepnet.config import RunConfig
from deepnet.sweep.cli import add_parser as add_sweep_parsers


def _add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="fine-tune one model on one dataset with one method and learning rate",
        description=(
            "Fine-tune MODEL on DATASET with METHOD at learning rate LR, evaluating ID val, ID test and "
            "every OOD split after each epoch, and write OUT/result.json (metrics of the best-on-ID-val "
            "epoch, per-epoch history, git commit, environment). Re-running the same command resumes "
            "from OUT/checkpoint.pt, or returns the finished result. For several GPUs: "
            "torchrun --nproc_per_node N -m deepnet train ... (BATCH stays the global batch)."
        ),
        epilog="Lists of names: python -m deepnet methods; deepnet.models.MODELS; deepnet.data.DATASETS.",
    )
    p.add_argument("--model", required=True, help="registered model name, e.g. clip_vit_b16, small_vit")
    p.add_argument("--dataset", required=True, help="registered dataset name, e.g. waterbirds, digits")
    p.add_argument("--method", required=True, help="registered method name, e.g. sgd, sgd_freeze_embed, lp_ft")
    p.add_argument("--lr", type=float, required=True, help="base learning rate (see the method's paper grid)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="default: the dataset's paper epochs")
    p.add_argument("--batch-size", type=int, default=32, help="examples per optimizer step, over all GPUs (default 32)")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step (default 1)")
    p.add_argument("--weight-decay", type=float, default=None, help="default: the method's (SGD 0, AdamW 0.01)")
    p.add_argument("--data-root", default=None, help="dataset directory in the layout the dataset documents, or a parent "
                   "directory holding one directory per dataset name")
    p.add_argument("--no-pretrained", action="store_true", help="random weights (offline; also DEEPNET_OFFLINE=1)")
    p.add_argument("--image-size", type=int, default=None, help="override the model's input size (square)")
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on GPU (bf16, else fp16)")
    p.add_argument("--grad-checkpointing", action="store_true", help="trade compute for activation memory")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format (faster convnets)")
    p.add_argument("--max-train-steps", type=int, default=None, help="stop after N optimizer steps (smoke tests)")
    p.add_argument("--num-workers", type=int, default=2, help="data loader workers per process (default 2)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (speed option; rounds differently)")
    p.add_argument("--fused-optimizer", action="store_true", help="fused SGD / AdamW kernels (speed option)")
    p.add_argument("--tf32", action="store_true", help="float32 matmuls on TF32 tensor cores (speed option)")
    p.add_argument("--persistent-workers", action="store_true",
                   help="keep loader workers between epochs (speed option; their random streams then run on, "
                        "so a resumed run no longer replays an uninterrupted one's augmentations)")
    p.add_argument("--device", default="auto", help="auto (GPU if available), cpu, cuda, cuda:1 ...")
    p.add_argument("--out", default=None, help="run directory (default: runs/<config key>)")
    p.add_argument("--keep-checkpoint", action="store_true", help="keep OUT/checkpoint.pt after the run ends")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_train)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return RunConfig(
        model=args.model, dataset=args.dataset, method=args.method, lr=args.lr, seed=args.seed,
        epochs=args.epochs, batch_size=args.batch_size, grad_accum=args.grad_accum,
        weight_decay=args.weight_decay, data_root=args.data_root, pretrained=not args.no_pretrained,
        image_size=args.image_size, amp=not args.no_amp, grad_checkpointing=args.grad_checkpointing,
        channels_last=args.channels_last, max_train_steps=args.max_train_steps,
        num_workers=args.num_workers, device=args.device, compile=args.compile,
        fused_optimizer=args.fused_optimizer, tf32=args.tf32, persistent_workers=args.persistent_workers,
    )


def _run_train(args: argparse.Namespace) -> int:
    from deepnet.methods import get_method
    from deepnet.train import train

    cfg = config_from_args(args)
    get_method(cfg.method)  # fail on an unknown method before building models and data
    out = Path(args.out) if args.out else Path("runs") / cfg.key()
    record = train(cfg, out, progress=not args.no_progress, keep_checkpoint=args.keep_checkpoint)
    summary = {k: record[k] for k in ("status", "best_epoch", "metrics", "time_s")}
    print(json.dumps({"run_dir": str(out), **summary}, indent=2))
    return 0 if record["status"] == "ok" else 1


def _add_methods_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("methods", help="list the registered fine-tuning methods",
                              description="List every registered method with its optimizer, default weight "
                                          "decay, paper LR grid and summary.")
    p.set_defaults(func=_run_methods)


def _run_methods(args: argparse.Namespace) -> int:
    from deepnet.methods import METHODS

    for name in METHODS.names():
        m = METHODS.get(name)
        grid = ", ".join(f"{lr:g}" for lr in m.lr_grid)
        print(f"{name:30s} {m.optimizer:6s} wd={m.weight_decay:g}  lr=[{grid}]\n    {m.summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deepnet",
        description="Fine-tune pretrained vision models with the SGD / LP-FT papers' methods.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train_parser(subparsers)
    _add_methods_parser(subparsers)
    add_sweep_parsers(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from deepnet.data import DatasetLayoutError
    from deepnet.models import PretrainedUnavailableError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (KeyError, ValueError, DatasetLayoutError, PretrainedUnavailableError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
