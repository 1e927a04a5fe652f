"""Command line of the measurements: ``python -m deepnet.measure {memory,grad-norms,distortion}``.

``memory`` prints Table 4's comparison (bytes held by one training step per method) measured in
one run; ``grad-norms`` prints eq. 3.1's layer-wise gradient norms at the pretrained init (Figure 2,
Appendix F); ``distortion`` prints per-split feature change of fine-tuned runs against their
pretrained init (LP-FT paper). Each writes its figures as JSON with ``--out``.
"""
from __future__ import annotations

import argparse
import copy
import sys
from typing import Any

import torch

GIB = 2**30
TABLE4_MODELS = ["clip_vit_b16", "clip_vit_l14", "openclip_vit_h14"]
TABLE4_METHODS = ["adamw", "sgd", "sgd_freeze_embed", "sgd_freeze_embed_no_momentum"]


def _device(name: str, meta_fallback: bool) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else ("meta" if meta_fallback else "cpu"))
    return torch.device(name)


def _write(path: str | None, obj: Any) -> None:
    if path:
        from deepnet.results import write_json

        write_json(path, obj)
        print(f"wrote {path}")


def _loader(dataset, batch_size: int, num_workers: int, seed: int, shuffle: bool):
    from torch.utils.data import DataLoader

    g = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, generator=g)


def _on(device: torch.device, batches):
    for batch in batches:
        yield [t.to(device) if torch.is_tensor(t) else t for t in batch]


def run_memory(args: argparse.Namespace) -> None:
    from deepnet.measure.memory import measure_training_step
    from deepnet.methods import get_method
    from deepnet.models import create_model

    device = _device(args.device, meta_fallback=True)
    kw: dict[str, Any] = {"backend": args.backend} if args.backend else {}
    if args.image_size:
        kw["img_size"] = args.image_size
    if device.type == "meta":
        kw["device"] = "meta"  # the paper's models build shapes only; other devices build on CPU and move
    rows = []
    print(f"device {device}; batch {args.batch_size}; fp32; GiB = 2**30 bytes")
    print(f"{'model':18} {'method':30} {'trainable':>12} {'B/param':>8} {'static':>8} {'activ.':>8} "
          f"{'accounted':>9} {'cuda peak':>9} {'AdamW/this':>10}")
    for name in args.models:
        per_model = []
        for method in args.methods:
            bundle = create_model(name, num_classes=args.num_classes, pretrained=False, **kw)
            bundle.model.to(device)
            h, w = bundle.preprocess.input_size
            x = torch.randn(args.batch_size, 3, h, w, device=device)
            y = torch.zeros(args.batch_size, dtype=torch.long, device=device)
            mem = measure_training_step(bundle.model, bundle.layer_map, get_method(method), x, y)
            per_model.append({"model": name, **mem.as_dict()})
            del bundle, x, y
            if device.type == "cuda":
                torch.cuda.empty_cache()
        best = {r["method"]: (r["cuda_peak_bytes"] or r["accounted_bytes"] or r["static_bytes"]) for r in per_model}
        for r in per_model:
            ratio = best["adamw"] / best[r["method"]] if "adamw" in best else float("nan")
            r["adamw_over_this"] = ratio
            gib = lambda v: f"{v / GIB:8.3f}" if v is not None else f"{'-':>8}"  # noqa: E731
            print(f"{name:18} {r['method']:30} {r['num_trainable']:12,d} {r['bytes_per_trainable_param']:8.2f} "
                  f"{gib(r['static_bytes'])} {gib(r['saved_activation_bytes'])} {gib(r['accounted_bytes']):>9} "
                  f"{gib(r['cuda_peak_bytes']):>9} {ratio:10.3f}")
        rows += per_model
    _write(args.out, {"device": str(device), "batch_size": args.batch_size, "rows": rows})


def run_grad_norms(args: argparse.Namespace) -> None:
    from deepnet.data import build_splits, dataset_info
    from deepnet.measure.grad_norms import layer_grad_norms
    from deepnet.methods import get_method
    from deepnet.models import create_model

    device = _device(args.device, meta_fallback=False)
    torch.manual_seed(args.seed)
    info = dataset_info(args.dataset)
    kw = {"img_size": args.image_size} if args.image_size else {}
    bundle = create_model(args.model, num_classes=info.num_classes, pretrained=not args.no_pretrained, **kw)
    if args.method:
        get_method(args.method).apply_freezing(bundle.model, bundle.layer_map)
    model = bundle.model.to(device)
    train = build_splits(args.dataset, args.data_root, bundle.preprocess, train_augment=not args.no_augment)["train"]
    batches = _on(device, _loader(train, args.batch_size, args.num_workers, args.seed, shuffle=True))
    rows = layer_grad_norms(model, bundle.layer_map, batches, max_batches=args.batches, progress=True)
    print(f"{args.model} on {args.dataset}: G_l = mean over {rows[0].num_batches} minibatches of {args.batch_size} "
          f"of ||g_l|| (eq. 3.1)")
    print(f"{'group':18} {'kind':6} {'params':>11} {'G_l':>11} {'G_l/||w||':>11} {'G_l/sqrt(n)':>12}")
    for r in rows:
        print(f"{r.label:18} {r.kind:6} {r.num_params:11,d} {r.grad_norm:11.4g} {r.grad_over_param_norm:11.4g} "
              f"{r.grad_over_sqrt_numel:12.4g}")
    _write(args.out, {"model": args.model, "dataset": args.dataset, "pretrained": not args.no_pretrained,
                      "method": args.method, "batch_size": args.batch_size, "seed": args.seed,
                      "groups": [r.as_dict() for r in rows]})


def run_distortion(args: argparse.Namespace) -> None:
    from deepnet.config import RunConfig
    from deepnet.measure.distortion import feature_distortion
    from deepnet.models.registry import offline_requested
    from deepnet.train import CHECKPOINT, build_inputs

    states, configs = [], []
    for run_dir in args.runs:
        state = torch.load(f"{run_dir}/{CHECKPOINT}", map_location="cpu", weights_only=False)
        states.append(state["model"])
        configs.append(RunConfig.from_dict(state["config"]))
    first = configs[0]
    if any((c.model, c.dataset, c.image_size) != (first.model, first.dataset, first.image_size) for c in configs):
        sys.exit("all runs must share model, dataset and image size (their features are compared to one init)")
    if not first.pretrained or offline_requested():
        sys.exit("distortion is measured against the pretrained features, which a random-weight run "
                 "(--no-pretrained / DEEPNET_OFFLINE=1) cannot rebuild")
    if args.data_root:
        first = RunConfig.from_dict({**first.to_dict(), "data_root": args.data_root})
    device = _device(args.device, meta_fallback=False)
    inputs = build_inputs(first)
    model_0 = inputs.bundle.model.to(device)
    splits = args.splits or ["id_test", *inputs.ood_splits]
    eval_splits = {s: inputs.splits[s] for s in splits}
    results = []
    for run_dir, cfg, state in zip(args.runs, configs, states):
        tuned = copy.deepcopy(model_0)
        tuned.load_state_dict(state)
        loaders = {s: _on(device, _limit(_loader(d, args.batch_size, args.num_workers, 0, shuffle=False), args.batches))
                   for s, d in eval_splits.items()}
        stats = feature_distortion(model_0, tuned, loaders, progress=True)
        for s in stats.values():
            print(f"{cfg.method:24} {s.split:12} n={s.n:6d} mean={s.mean:.4g} median={s.median:.4g} "
                  f"std={s.std:.4g} relative={s.relative_mean:.4g}")
        results.append({"run": str(run_dir), "method": cfg.method, "lr": cfg.lr,
                        "splits": {k: v.as_dict() for k, v in stats.items()}})
    _write(args.out, {"model": first.model, "dataset": first.dataset, "runs": results})


def _limit(batches, n: int | None):
    for i, batch in enumerate(batches):
        if n is not None and i >= n:
            return
        yield batch


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deepnet.measure", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("memory", help="bytes of one training step per method (Table 4)",
                       description="Build each model with random weights (memory does not depend on their "
                                   "values), take one step of each method on a random batch and print params + "
                                   "grads + optimizer state (exact), saved activations (CPU) and the CUDA peak "
                                   "(GPU). --device auto uses the GPU if present, else the meta device (static "
                                   "bytes only, no memory needed, seconds even for ViT-H/14).")
    p.add_argument("--models", nargs="+", default=TABLE4_MODELS)
    p.add_argument("--methods", nargs="+", default=TABLE4_METHODS)
    p.add_argument("--batch-size", type=int, default=1, help="Table 4 used micro-batch 1 (default)")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--backend", choices=["timm", "open_clip"], default=None, help="CLIP backend (default timm)")
    p.add_argument("--device", default="auto", help="auto, meta, cpu, cuda, cuda:1 ...")
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    p.set_defaults(func=run_memory)

    p = sub.add_parser("grad-norms", help="layer-wise gradient norms at init (eq. 3.1)",
                       description="Mean over minibatches of the training split of each layer-map group's "
                                   "gradient norm at the pretrained initialization, also divided by the "
                                   "parameter norm and by sqrt(#params) (Appendix F). No step is taken.")
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root", default=None)
    p.add_argument("--batches", type=int, default=20, help="minibatches m in eq. 3.1 (default 20)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--method", default=None, help="apply this method's freezing first (frozen groups are left out)")
    p.add_argument("--no-pretrained", action="store_true", help="random weights (offline)")
    p.add_argument("--no-augment", action="store_true", help="train split with the eval transform")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None)
    p.set_defaults(func=run_grad_norms)

    p = sub.add_parser("distortion", help="feature change of fine-tuned runs vs the pretrained init",
                       description="For run directories trained with --keep-checkpoint (same model and "
                                   "dataset, e.g. one FT and one LP-FT run), print per split the mean, median "
                                   "and std of ||phi_ft(x) - phi_0(x)|| and its mean relative to ||phi_0(x)||.")
    p.add_argument("runs", nargs="+", help="run directories holding checkpoint.pt")
    p.add_argument("--splits", nargs="+", default=None, help="default: id_test and the dataset's OOD splits")
    p.add_argument("--data-root", default=None, help="override the runs' data root")
    p.add_argument("--batches", type=int, default=None, help="at most this many batches per split")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None)
    p.set_defaults(func=run_distortion)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)
