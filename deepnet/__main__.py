"""Command line of the deepnet suite: ``python -m deepnet {train,models,datasets,methods,plot,sweep,collect}``.

``train`` runs one fine-tuning run (resumable; run it under ``torchrun --nproc_per_node N`` for
multi-GPU data parallelism); ``models``, ``datasets`` and ``methods`` list what the registries
hold (plus any timm model, and the user dataset kinds); ``plot`` draws runs' curves
(:mod:`deepnet.plot`); ``sweep`` and ``collect`` (from
:mod:`deepnet.sweep.cli`) run a sweep spec and tabulate it. Every command takes ``--import MODULE``
(:mod:`deepnet.plugins`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common.helpformat import add_command, command_parser
from common.shutdown import freeze_at_exit
from deepnet.config import USER_DATASET_DEFAULTS, RunConfig
from deepnet.plugins import PluginError, add_import_argument, plugins_from_args
from deepnet.sweep.cli import add_parser as add_sweep_parsers


def _add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "train",
        help="fine-tune one model on one dataset with one method and learning rate",
        description=(
            "Fine-tune MODEL on DATASET with METHOD at learning rate LR, evaluating ID val, ID test and "
            "every OOD split after each epoch, and write OUT/result.json (metrics of the best-on-ID-val "
            "epoch, per-epoch history, git commit, environment). Re-running the same command resumes "
            "from OUT/checkpoint.pt, or returns the finished result. For several GPUs: "
            "torchrun --nproc_per_node N -m deepnet train ... (BATCH stays the global batch). "
            "With --dataset-kind, DATASET names your own data at --data-root (folder, csv or npz)."
        ),
        examples=[
            "python -m deepnet train --model small_vit_fmnist_adamw --dataset digits --method sgd --lr 0.01",
            "python -m deepnet train --model convnext_atto --dataset my_shift --dataset-kind folder \\\n"
            "      --data-root data/my_shift --augment flip --method sgd_freeze_embed --lr 3e-3 --epochs 5",
            "python -m deepnet train --import my_plugin.py --model my_net --dataset my_data --method adamw --lr 1e-4",
        ],
        notes="Names: python -m deepnet models | datasets | methods (any timm model name works as --model).",
    )
    p.add_argument("--model", required=True, help="registered model name (e.g. clip_vit_b16, small_vit) or any timm model")
    p.add_argument("--dataset", required=True, help="registered dataset name (e.g. waterbirds, digits), or the name "
                   "of your dataset with --dataset-kind")
    p.add_argument("--method", required=True, help="registered method name, e.g. sgd, sgd_freeze_embed, lp_ft")
    p.add_argument("--lr", type=float, required=True, help="base learning rate (see the method's paper grid)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--epochs", type=int, default=None, help="default: the dataset's paper epochs")
    p.add_argument("--batch-size", type=int, default=32, help="examples per optimizer step, over all GPUs")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument("--weight-decay", type=float, default=None, help="default: the method's (SGD 0, AdamW 0.01)")
    p.add_argument("--data-root", default=None, help="dataset directory in the layout the dataset documents, or a parent "
                   "directory holding one directory per dataset name; with --dataset-kind csv / npz, the file")
    p.add_argument("--dataset-kind", default=None, help="your own data: folder, csv or npz (python -m deepnet datasets "
                   "shows the layouts); default: DATASET is registered")
    p.add_argument("--metric", default=None, help="with --dataset-kind: OOD metric acc or worst_group_acc (default acc)")
    p.add_argument("--augment", default=None, help="with --dataset-kind: train augmentation none, flip or timm "
                   "(default none: the model's eval transform)")
    p.add_argument("--no-pretrained", action="store_true", help="random weights (offline; also DEEPNET_OFFLINE=1)")
    p.add_argument("--image-size", type=int, default=None, help="override the model's input size (square)")
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on GPU (bf16, else fp16)")
    p.add_argument("--grad-checkpointing", action="store_true", help="trade compute for activation memory")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format (faster convnets)")
    p.add_argument("--max-train-steps", type=int, default=None, help="stop after N optimizer steps (smoke tests)")
    p.add_argument("--num-workers", type=int, default=2, help="data loader workers per process")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (speed option; rounds differently)")
    p.add_argument("--fused-optimizer", action="store_true", help="fused SGD / AdamW kernels (speed option)")
    p.add_argument("--tf32", action="store_true", help="float32 matmuls on TF32 tensor cores (speed option)")
    p.add_argument("--persistent-workers", action="store_true",
                   help="keep loader workers between epochs (speed option; their random streams then run on, "
                        "so a resumed run no longer replays an uninterrupted one's augmentations)")
    p.add_argument("--device", default="auto", help="auto (GPU if available), cpu, cuda, cuda:1 ...")
    p.add_argument("--out", default=None, help="run directory (default: runs/<config key>)")
    p.add_argument("--keep-checkpoint", action="store_true", help="keep OUT/checkpoint.pt after the run ends")
    p.add_argument("--no-progress", action="store_true", help="no progress bars: one line per epoch instead")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch and BLAS threads (default: torch's, one per core; on a loaded machine fewer "
                        "can be much faster)")
    p.add_argument("--eval-every", type=int, default=None, metavar="N",
                   help="also evaluate every N optimizer steps (logged to OUT/metrics.jsonl only)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write OUT/metrics.jsonl's scalars as TensorBoard events in OUT/tensorboard "
                        "(needs the tensorboard package)")
    p.add_argument("--log-grad-norms", action="store_true",
                   help="also log each optimizer step's gradient norm of the embedding, the middle and the "
                        "head groups of the model's layer map to OUT/metrics.jsonl")
    p.set_defaults(func=_run_train)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The :class:`RunConfig` of a ``train`` command line (``args.imports`` resolved by the caller)."""
    return RunConfig(
        model=args.model, dataset=args.dataset, method=args.method, lr=args.lr, seed=args.seed,
        epochs=args.epochs, batch_size=args.batch_size, grad_accum=args.grad_accum,
        weight_decay=args.weight_decay, data_root=args.data_root, pretrained=not args.no_pretrained,
        image_size=args.image_size, amp=not args.no_amp, grad_checkpointing=args.grad_checkpointing,
        channels_last=args.channels_last, max_train_steps=args.max_train_steps,
        num_workers=args.num_workers, device=args.device, dataset_kind=args.dataset_kind,
        metric=args.metric, augment=args.augment, plugins=args.imports,
        compile=args.compile, fused_optimizer=args.fused_optimizer, tf32=args.tf32,
        persistent_workers=args.persistent_workers,
        eval_every=args.eval_every, tensorboard=args.tensorboard, log_grad_norms=args.log_grad_norms,
    )


def _run_train(args: argparse.Namespace) -> int:
    from deepnet.methods import get_method
    from deepnet.sweep.states import OK
    from deepnet.train import train

    cfg = config_from_args(args)
    if args.threads is not None:
        from deepnet.sweep.runner import set_threads

        set_threads(args.threads)
    get_method(cfg.method)  # fail on an unknown method before building models and data
    out = Path(args.out) if args.out else Path("runs") / cfg.key()
    record = train(cfg, out, progress=not args.no_progress, keep_checkpoint=args.keep_checkpoint)
    summary = {k: record[k] for k in ("status", "best_epoch", "metrics", "time_s")}
    print(json.dumps({"run_dir": str(out), **summary}, indent=2))
    return 0 if record["status"] == OK else 1


def _add_methods_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "methods", help="list the registered fine-tuning methods",
                    description="List every registered method with its optimizer, default weight decay, paper LR "
                                "grid and summary.",
                    examples=["python -m deepnet methods", "python -m deepnet methods --import my_plugin.py"])
    p.set_defaults(func=_run_methods)


def _run_methods(args: argparse.Namespace) -> int:
    from deepnet.methods import METHODS

    for name, m in METHODS.items():
        grid = ", ".join(f"{lr:g}" for lr in m.lr_grid)
        print(f"{name:30s} {m.optimizer:6s} wd={m.weight_decay:g}  lr=[{grid}]\n    {m.summary}")
    return 0


def _add_models_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "models",
        help="list the registered models with their embedding share of parameters (or any timm model)",
        description="List models with their parameter count, the share of it in the embedding (the group that "
                    "freeze-embed freezes) and their layer-map groups, all computed on the meta device: no "
                    "weights are downloaded or allocated. Without names: every registered model. Any timm "
                    "model name works (grouped by timm's group_matcher, embedding = its first group). Counts "
                    "are of the backbone (the new linear head excluded).",
        examples=["python -m deepnet models", "python -m deepnet models convnext_atto vit_small_patch16_224 --groups"])
    p.add_argument("names", nargs="*", metavar="MODEL", help="models to show (default: every registered model)")
    p.add_argument("--groups", action="store_true", help="also list each layer-map group with its parameter count")
    p.set_defaults(func=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from deepnet.models.registry import MODELS, create_model, load_model_families

    load_model_families()
    groups_of = {name: backbone_groups(create_model(name, num_classes=2, pretrained=False, device="meta"))
                 for name in args.names or MODELS.names()}
    print(f"{'model':34} {'params':>10} {'embed':>8} {'groups':>6}")
    for name, groups in groups_of.items():
        total = sum(count for _, count in groups)
        print(f"{name:34} {total / 1e6:9.2f}M {100 * groups[0][1] / total:7.2f}% {len(groups):6d}")
        if args.groups:
            for label, count in groups:
                print(f"    {label:30} {count:12,d}")
    return 0


def backbone_groups(bundle) -> list[tuple[str, int]]:
    """``(label, parameter count)`` of each layer-map group of ``bundle`` but the head, bottom -> top
    (the first is the embedding)."""
    sizes = {n: p.numel() for n, p in bundle.model.named_parameters()}
    return [(label, sum(sizes[n] for n in members)) for label, members in bundle.layer_map.groups()
            if label != "head"]


def _add_datasets_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "datasets", help="list the registered datasets, the kinds of your own data, and the augmentations",
        description="List every registered dataset, then the dataset kinds for your own data (folder, csv, npz) "
                    "with their layouts and the train augmentations. With --dataset-kind and --data-root: read "
                    "your dataset, check its layout and show its classes and split sizes.",
        examples=["python -m deepnet datasets",
                  "python -m deepnet datasets --dataset-kind folder --data-root data/my_shift",
                  "python -m deepnet datasets --dataset-kind csv --data-root data/labels.csv --metric worst_group_acc"])
    p.add_argument("--dataset-kind", default=None, help="check your own data of this kind (folder, csv, npz)")
    p.add_argument("--data-root", default=None, help="with --dataset-kind: the directory (folder) or file (csv, npz)")
    p.add_argument("--metric", default=USER_DATASET_DEFAULTS["metric"],
                   help="with --dataset-kind: the OOD metric to check the data for")
    p.add_argument("--name", default="my_dataset", help="with --dataset-kind: the name to show")
    p.set_defaults(func=_run_datasets)


def _run_datasets(args: argparse.Namespace) -> int:
    from deepnet.data import AUGMENTATIONS, DATASETS, KINDS, build_splits, register_user_dataset
    from deepnet.data.registry import dataset_table

    if args.dataset_kind is None:
        print(dataset_table())
        print("\nkinds of your own data (train --dataset-kind KIND --data-root PATH; spec [dataset.NAME] kind = KIND):")
        for name, kind in KINDS.items():
            print(f"\n{name}:\n" + "\n".join(f"  {line}" for line in kind.layout.splitlines()))
        print("\naugmentations (train --augment; spec [dataset.NAME] augment):")
        for name, make in AUGMENTATIONS.items():
            print(f"  {name:8} {(make.__doc__ or '').strip()}")
        return 0
    info = register_user_dataset(args.name, args.dataset_kind, args.data_root, args.metric)
    splits = build_splits(args.name, args.data_root, train_augment=False)
    classes = DATASETS.get(args.name).build.classes
    print(f"{args.name}: {args.dataset_kind} dataset at {args.data_root}, {info.num_classes} classes "
          f"({', '.join(classes)}), metric {info.metric}")
    for split, ds in splits.items():
        print(f"  {split:16} {len(ds):8d} examples")
    return 0


def _add_plot_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "plot", help="plot train loss, LR and the eval metrics of runs against steps (PNG and PDF)",
        description="Read metrics.jsonl of each run directory given, or of every run under a sweep root, and "
                    "draw the train loss, the learning rate and each evaluated metric (ID val, ID test, each "
                    "OOD split) against optimizer steps, one line per run.",
        examples=["python -m deepnet plot runs/my_run",
                  "python -m deepnet plot out/sweeps/my_sweep --out figures/my_sweep_curves"])
    p.add_argument("paths", nargs="+", type=Path, metavar="RUN_DIR_OR_SWEEP_ROOT",
                   help="run directories or sweep roots")
    p.add_argument("--out", type=Path, default=None,
                   help="output path without suffix, written as .png and .pdf (default: FIRST_PATH/curves)")
    p.set_defaults(func=_run_plot)


def _run_plot(args: argparse.Namespace) -> int:
    from deepnet.plot import find_runs, plot_runs, save_figure

    runs = find_runs(args.paths)
    out = args.out or args.paths[0] / "curves"
    for path in save_figure(plot_runs(runs), out):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m deepnet`` parser; every subcommand takes ``--import MODULE``."""
    parser = command_parser(
        "python -m deepnet", "Fine-tune pretrained vision models with the SGD / LP-FT papers' methods.",
        ["python -m deepnet train --model small_vit_fmnist_adamw --dataset digits --method sgd --lr 0.01",
         "python -m deepnet sweep experiments/specs/smoke.toml --dry-run", "python -m deepnet COMMAND --help"])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train_parser(subparsers)
    _add_models_parser(subparsers)
    _add_datasets_parser(subparsers)
    _add_methods_parser(subparsers)
    _add_plot_parser(subparsers)
    add_sweep_parsers(subparsers)
    for command in subparsers.choices.values():
        add_import_argument(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    from deepnet.data import DatasetLayoutError
    from deepnet.metrics_log import TensorBoardUnavailable
    from deepnet.models import PretrainedUnavailableError

    args = build_parser().parse_args(argv)
    try:
        args.imports = plugins_from_args(args)
        return args.func(args)
    except (KeyError, ValueError, PluginError, DatasetLayoutError, PretrainedUnavailableError,
            TensorBoardUnavailable) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    freeze_at_exit()
    sys.exit(main())
