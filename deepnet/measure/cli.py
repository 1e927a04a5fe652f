"""The SGD / LP-FT papers' measurements on real models: ``python -m deepnet.measure COMMAND``.

``gradnorms``   layer-wise gradient norms at the pretrained init (SGD paper eq. 3.1, Fig. 2-5):
    G_l, G_l / ||theta_l|| and G_l / sqrt(#params_l) per layer-map group (embedding red squares,
    middle black circles, head green triangles). Claim C9 asks whether the embedding is an outlier
    for AdamW-pretrained but not for SGD-pretrained models.
``memory``      bytes after one training step per method (Table 4): params, grads and the real
    optimizer's state (C13: 8 / 12 / 16 B per trainable parameter) on the meta device (shapes only,
    any model size), plus the exact saved activations on CPU or the CUDA peak on a GPU.
``throughput``  images/s and peak memory of timed training steps per method (real ViT-B/16 etc. on
    a GPU when one is lent; any device works), with the device named.
``distortion``  feature change ||phi_ft(x) - phi_0(x)|| on ID and OOD splits (LP-FT paper; claims
    C1, C7): either fine-tunes with FT (``sgd``) and LP-FT (``lp_ft``) through
    :func:`deepnet.train.train`, or (``--runs``) measures existing run directories kept with their
    checkpoint.
``probehead``   the head the linear probe hands to LP-FT, per feature scaling: its norm, the batch
    loss in eval and train mode, and the backbone's gradient norm (why LP-FT can collapse at once).

Each command writes ``<out>/<stem>.jsonl`` (one JSON object per row), a CSV of the same rows, a PNG
(not ``probehead``: a few numbers per row) and ``<out>/<stem>_summary.json`` (with the commit and command), all atomically, and prints a
summary; ``<stem>`` is the command's name (``memory_<device type>`` / ``throughput_<device type>``
for memory / throughput).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from common.helpformat import add_command, command_parser
from common.io import write_text
from common.provenance import git_commit
from deepnet.config import RunConfig
from deepnet.methods.linear_probe import SCALINGS
from deepnet.measure.batches import loader, on_device
from deepnet.measure.output import DISTORTION, GRADNORMS, write_rows
from deepnet.measure.per_method import each_model
from deepnet.measure.plots import GIB, plot_distortion, plot_gradnorms, plot_memory, plot_throughput, save_figure
from deepnet.plugins import PluginError, add_import_argument, plugins_from_args
from deepnet.results import environment

PROG = "python -m deepnet.measure"
TABLE4_MODELS = ["clip_vit_b16", "clip_vit_l14", "openclip_vit_h14"]
TABLE4_METHODS = ["adamw", "sgd", "sgd_freeze_embed", "sgd_freeze_embed_no_momentum", "sgd_no_momentum"]
THROUGHPUT_METHODS = ["sgd", "adamw", "sgd_freeze_embed", "sgd_freeze_embed_no_momentum", "adamw_freeze_embed",
                      "sgd_no_momentum"]
EXAMPLES = {
    "gradnorms": "--models small_vit_fmnist_sgd small_vit_fmnist_adamw --dataset spurious_fmnist --image-size 28 "
                 "--out out/gradnorms",
    "memory": "--models clip_vit_b16 --device meta --out out/memory",
    "throughput": "--models clip_vit_b16 --device cuda --batch-size 64 --out out/throughput",
    "distortion": "--model small_vit_fmnist_adamw --dataset digits --ft-lr 0.03 --lpft-lr 1e-5 --epochs 1 "
                  "--max-train-steps 100 --image-size 28 --out out/distortion",
    "probehead": "--model small_vit_fmnist_sgd --dataset digits --image-size 28 --out out/probe_head",
}


def provenance(argv: Sequence[str]) -> dict[str, Any]:
    """The commit and the command line that produced a result."""
    return {"commit": git_commit(), "command": f"{PROG} " + " ".join(argv)}


def resolve_device(name: str, meta_fallback: bool) -> torch.device:
    """``auto``: the GPU if there is one, else meta (``meta_fallback``) or CPU; otherwise ``name``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else ("meta" if meta_fallback else "cpu"))
    return torch.device(name)


def use_amp(amp: bool | None, device: torch.device) -> bool:
    """``--amp`` / ``--no-amp`` as given, else on for a GPU, as a run of ``python -m deepnet train``."""
    return device.type == "cuda" if amp is None else amp


def _run_config(a: argparse.Namespace, model: str, method: str, lr: float, **fields: Any) -> RunConfig:
    """The config of a run of ``model`` on the command's dataset (its model and splits: ``build_inputs``)."""
    return RunConfig(model=model, dataset=a.dataset, method=method, lr=lr, seed=a.seed, batch_size=a.batch_size,
                     image_size=a.image_size, num_workers=0, data_root=a.data_root, **fields)


# --- gradnorms ----------------------------------------------------------------------------------

def cmd_gradnorms(a: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    from deepnet.measure.grad_norms import layer_grad_norms, outlier_summary
    from deepnet.methods import get_method
    from deepnet.run_inputs import build_inputs

    device = resolve_device(a.device, meta_fallback=False)
    rows, summary = [], {}
    for model in a.models:
        torch.manual_seed(a.seed)  # the random head is the same draw for every model of a width
        inputs = build_inputs(_run_config(a, model, a.method or "sgd", 1.0, pretrained=not a.no_pretrained))
        bundle = inputs.bundle
        if a.method:
            get_method(a.method).apply_freezing(bundle.model, bundle.layer_map)
        net = bundle.model.to(device)
        train = inputs.splits["train"] if a.augment else inputs.probe_train()
        batches = on_device(device, loader(train, a.batch_size, a.seed, shuffle=True, num_workers=a.num_workers))
        norms = layer_grad_norms(net, bundle.layer_map, batches, max_batches=a.batches, progress=True)
        mrows = [{"model": model, "dataset": a.dataset, "index": i, **n.as_dict()} for i, n in enumerate(norms)]
        rows += mrows
        summary[model] = outlier_summary(mrows, a.omit)
        print(f"{model} on {a.dataset}: G_l = mean over {norms[0].num_batches} minibatches of {a.batch_size} "
              f"of ||g_l|| (eq. 3.1)")
        print(f"{'group':18} {'kind':6} {'params':>11} {'G_l':>11} {'G_l/||w||':>11} {'G_l/sqrt(n)':>12}")
        for n in norms:
            print(f"{n.label:18} {n.kind:6} {n.num_params:11,d} {n.grad_norm:11.4g} {n.grad_over_param_norm:11.4g} "
                  f"{n.grad_over_sqrt_numel:12.4g}")
        if summary[model]:
            s = summary[model]["grad_norm"]
            print(f"embedding / max middle = {s['ratio_to_max_middle']:.3g}, rank {s['rank']}/{s['of']}")
    write_rows(a.out, GRADNORMS, rows)
    fig = plot_gradnorms(rows, a.models, a.omit, f"Layer gradient norms at the pretrained init, {a.dataset} "
                         f"({a.batches} batches of {a.batch_size}); red = embed, green = head")
    save_figure(fig, a.out / f"{GRADNORMS}.png")
    return "gradnorms", {"dataset": a.dataset, "batches": a.batches, "batch_size": a.batch_size,
                         "omit": list(a.omit), "method": a.method, "summary": summary}


# --- memory and throughput ----------------------------------------------------------------------

def cmd_memory(a: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    from deepnet.measure.memory import measure_training_step

    device = resolve_device(a.device, meta_fallback=True)
    amp = use_amp(a.amp, device)

    def measure(bundle: Any, method: Any, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        mem = measure_training_step(bundle.model, bundle.layer_map, method, x, y, amp=amp)
        return {"batch_size": a.batch_size, **mem.as_dict()}

    rows, ratios = [], {}
    print(f"device {device}; batch {a.batch_size}; {'bf16 autocast' if amp else 'fp32'}; GiB = 2**30 bytes")
    print(f"{'model':18} {'method':30} {'trainable':>12} {'B/param':>8} {'static':>8} {'activ.':>8} "
          f"{'accounted':>9} {'cuda peak':>9} {'AdamW/this':>10}")
    for model, per_model in each_model(a.models, a.methods, measure, device, a.batch_size, a.num_classes,
                                       a.backend, a.image_size):
        held = {r["method"]: r["held_bytes"] for r in per_model}
        ratios[model] = {m: (held["adamw"] / v if "adamw" in held else math.nan) for m, v in held.items()}
        for r in per_model:
            gib = lambda v: f"{v / GIB:8.3f}" if v is not None else f"{'-':>8}"  # noqa: E731
            print(f"{model:18} {r['method']:30} {r['num_trainable']:12,d} {r['bytes_per_trainable_param']:8.2f} "
                  f"{gib(r['static_bytes'])} {gib(r['saved_activation_bytes'])} {gib(r['accounted_bytes']):>9} "
                  f"{gib(r['cuda_peak_bytes']):>9} {ratios[model][r['method']]:10.3f}")
        rows += per_model
    stem = f"memory_{device.type}"
    write_rows(a.out, stem, rows)
    save_figure(plot_memory(rows, a.models, a.methods), a.out / f"{stem}.png")
    return stem, {"device": str(device), "rows": len(rows), "batch_size": a.batch_size, "amp": amp,
                  "adamw_over_this": ratios}


def cmd_throughput(a: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    from deepnet.measure.throughput import device_name, measure_throughput

    device = resolve_device(a.device, meta_fallback=False)
    if device.type == "meta":
        sys.exit("throughput needs real tensors: --device cpu, cuda or auto")
    amp = use_amp(a.amp, device)
    name = device_name(device)

    def measure(bundle: Any, method: Any, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        t = measure_throughput(bundle.model, bundle.layer_map, method, x, y, steps=a.steps, warmup=a.warmup, amp=amp)
        return {"device_name": name, **t.as_dict()}

    rows = []
    print(f"{name}; batch {a.batch_size}; {a.warmup} warm-up + {a.steps} timed steps; "
          f"{'bf16 autocast' if amp else 'fp32'}; GiB = 2**30 bytes")
    print(f"{'model':18} {'method':30} {'trainable':>12} {'images/s':>9} {'step ms':>8} {'cuda peak':>9} {'vs sgd':>7}")
    for model, per_model in each_model(a.models, a.methods, measure, device, a.batch_size, a.num_classes,
                                       a.backend, a.image_size, a.channels_last):
        base = next((r["images_per_s"] for r in per_model if r["method"] == "sgd"), math.nan)
        for r in per_model:
            peak = f"{r['cuda_peak_bytes'] / GIB:9.3f}" if r["cuda_peak_bytes"] is not None else f"{'-':>9}"
            print(f"{model:18} {r['method']:30} {r['num_trainable']:12,d} {r['images_per_s']:9.1f} "
                  f"{r['step_ms_median']:8.1f} {peak} {r['images_per_s'] / base:7.2f}")
        rows += per_model
    stem = f"throughput_{device.type}"
    write_rows(a.out, stem, rows)
    save_figure(plot_throughput(rows, a.models, a.methods, f"{name}, batch {a.batch_size}"), a.out / f"{stem}.png")
    return stem, {"device": str(device), "device_name": name, "batch_size": a.batch_size, "steps": a.steps,
                  "warmup": a.warmup, "amp": amp,
                  "images_per_s": {f"{r['model']}/{r['method']}": r["images_per_s"] for r in rows}}


# --- distortion ---------------------------------------------------------------------------------

def cmd_distortion(a: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    from deepnet.measure.distortion import distortion_ratios, measure_distortion
    from deepnet.measure.distortion_runs import load_runs, train_ft_and_lpft

    if a.runs:
        try:
            model_0, splits, runs, summary = load_runs(a.runs, a.data_root, a.splits, a.subset)
        except ValueError as err:
            sys.exit(str(err))
    else:
        missing = [f"--{n.replace('_', '-')}" for n in ("model", "dataset", "ft_lr", "lpft_lr") if getattr(a, n) is None]
        if missing:
            sys.exit(f"distortion needs {', '.join(missing)} (or --runs DIR ... to measure existing runs)")
        base = _run_config(a, a.model, "sgd", a.ft_lr, epochs=a.epochs, pretrained=not a.no_pretrained,
                           max_train_steps=a.max_train_steps)
        model_0, splits, runs, summary = train_ft_and_lpft(base, {"sgd": a.ft_lr, "lp_ft": a.lpft_lr},
                                                           a.out / "runs", a.subset)
    rows = measure_distortion(model_0, runs, splits, resolve_device(a.device, meta_fallback=False),
                              a.eval_batch_size, a.seed, a.eval_batches)
    write_rows(a.out, DISTORTION, rows)
    save_figure(plot_distortion(rows, f"{rows[0]['model']} on {rows[0]['dataset']}"), a.out / f"{DISTORTION}.png")
    extra = {"subset": a.subset} if a.subset is not None else {}
    return "distortion", {"runs": summary, **distortion_ratios(rows), **extra}


# --- probehead ----------------------------------------------------------------------------------

def cmd_probehead(a: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    from deepnet.measure.probe_head import probe_head_stats
    from deepnet.methods.linear_probe import fit_linear_probe, load_probe_into_head
    from deepnet.features import frozen_features
    from deepnet.run_inputs import build_inputs
    from deepnet.runtime import seed_everything

    cfg = _run_config(a, a.model, "lp_ft", 1.0)
    seed_everything(cfg.seed)
    inputs = build_inputs(cfg)  # the model and splits a run of this config trains on
    model = inputs.bundle.model.eval()
    fresh_head_norm = model.head.weight.detach().norm().item()
    initial = copy.deepcopy(model.state_dict())  # train-mode passes move BatchNorm statistics
    probe_train = loader(inputs.probe_train(), a.eval_batch_size, a.seed, shuffle=False)
    id_val = loader(inputs.splits["id_val"], a.eval_batch_size, a.seed, shuffle=False)
    train_x, train_y = frozen_features(model, ((x, y) for x, y, _ in probe_train))
    val_x, val_y = frozen_features(model, ((x, y) for x, y, _ in id_val))
    x, y, _ = next(iter(loader(inputs.splits["train"], a.batch_size, a.seed, shuffle=True)))
    rows = []
    for scaling in a.scalings:
        fit = fit_linear_probe(train_x, train_y, val_x, val_y, inputs.num_classes, scaling=scaling)
        model.load_state_dict(initial)
        load_probe_into_head(model.head, fit)
        row = {"model": a.model, "dataset": a.dataset, "scaling": scaling, "C": fit.C, "probe_id_val": fit.val_acc,
               "fresh_head_weight_norm": fresh_head_norm, "batch_size": a.batch_size, "seed": a.seed,
               **probe_head_stats(model, x, y)}
        rows.append(row)
        print(f"{scaling:12s} C {fit.C:.3g}  probe ID val {fit.val_acc:.3f}  ||W|| {row['head_weight_norm']:.4g} "
              f"(fresh head {fresh_head_norm:.3g})  batch loss eval {row['batch_loss_eval']:.3f} / train "
              f"{row['batch_loss_train']:.3f}  backbone grad norm {row['backbone_grad_norm_train']:.4g}")
    stem = f"probehead_{a.model}_{a.dataset}"
    write_rows(a.out, stem, rows)
    return stem, {"rows": rows}



# --- CLI ----------------------------------------------------------------------------------------

def _subparser(sub: argparse._SubParsersAction, name: str, help: str, description: str) -> argparse.ArgumentParser:
    return add_command(sub, name, help, description, [f"{PROG} {name} {EXAMPLES[name]}"])


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(PROG, __doc__, [f"{PROG} {name} {EXAMPLES[name]}" for name in ("gradnorms", "memory")])
    sub = p.add_subparsers(dest="command", required=True)

    g = _subparser(sub, "gradnorms", "layer-wise gradient norms at the pretrained init (eq. 3.1)",
                   "Mean over minibatches of the training split of each layer-map group's gradient norm at the "
                   "pretrained init, also divided by the parameter norm and by sqrt(#params) (Appendix F). No "
                   "optimizer step is taken.")
    g.add_argument("--models", nargs="+", required=True, help="registered model names")
    g.add_argument("--dataset", required=True, help="registered dataset (its train split is measured)")
    g.add_argument("--batches", type=int, default=20, help="minibatches m in eq. 3.1")
    g.add_argument("--batch-size", type=int, default=64, help="examples per minibatch")
    g.add_argument("--omit", nargs="*", default=["tokens"],
                   help="group labels left out of the figure and outlier summary (the ViT's cls token / "
                        "position embedding group, as Appendix F omits them)")
    g.add_argument("--method", default=None, help="apply this method's freezing first (frozen groups are left out)")
    g.add_argument("--augment", action="store_true", help="train split with its training augmentation")
    g.add_argument("--num-workers", type=int, default=0, help="data loader workers")

    m = _subparser(sub, "memory", "bytes per parameter and per method after one training step (Table 4)",
                   "Build each model with random weights (memory does not depend on their values), take one "
                   "step of each method on a random batch and account params + grads + optimizer state "
                   "(exact), saved activations (CPU) and the CUDA peak (GPU).")
    m.add_argument("--models", nargs="+", default=TABLE4_MODELS, help="registered model names")
    m.add_argument("--methods", nargs="+", default=TABLE4_METHODS, help="registered method names")
    m.add_argument("--device", default="meta",
                   help="meta: shapes only, no activations, seconds even for ViT-H/14; cpu: real tensors, saved "
                        "activations counted; cuda[:i]: plus the CUDA peak; auto: cuda if present, else meta")
    m.add_argument("--batch-size", type=int, default=1, help="micro-batch (Table 4 used 1)")

    t = _subparser(sub, "throughput", "images/s and peak memory of timed training steps per method",
                   "Build each model with random weights (speed does not depend on their values), then per "
                   "method time whole training steps (forward, backward, the method's real optimizer step) on "
                   "a random batch after warm-up steps; report images/s, the median step time and, on a GPU, "
                   "torch.cuda.max_memory_allocated. The device is named in every row. Data loading is not "
                   "included.")
    t.add_argument("--models", nargs="+", default=["clip_vit_b16"], help="registered model names")
    t.add_argument("--methods", nargs="+", default=THROUGHPUT_METHODS, help="registered method names")
    t.add_argument("--batch-size", type=int, default=32, help="examples per timed step")
    t.add_argument("--steps", type=int, default=10, help="timed steps per method")
    t.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    t.add_argument("--channels-last", action="store_true", help="channels_last memory format (convnets)")
    for s in (m, t):
        s.add_argument("--num-classes", type=int, default=10, help="classes of the random head and labels")
        s.add_argument("--backend", choices=["timm", "open_clip"], default=None, help="CLIP backend (default timm)")
        s.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                       help="bfloat16 autocast for forward and loss; default: on a GPU (as python -m deepnet "
                            "train), fp32 on the CPU and meta; --amp also on the CPU, --no-amp fp32 everywhere")

    d = _subparser(sub, "distortion", "feature change ID vs OOD after FT and LP-FT (LP-FT paper)",
                   "Either fine-tune FT (method sgd at --ft-lr) and LP-FT (lp_ft at --lpft-lr) from one "
                   "pretrained init, or measure existing run directories (--runs) trained with --keep-checkpoint "
                   "on one model and dataset; then per split the mean, median and std of ||phi_ft(x) - "
                   "phi_0(x)|| and its mean relative to ||phi_0(x)||.")
    d.add_argument("--runs", nargs="+", default=None, help="run directories holding checkpoint.pt (no training)")
    d.add_argument("--model", default=None, help="registered model name (without --runs)")
    d.add_argument("--dataset", default=None, help="registered dataset name (without --runs)")
    d.add_argument("--ft-lr", type=float, default=None, help="learning rate of FT (method sgd)")
    d.add_argument("--lpft-lr", type=float, default=None, help="learning rate of LP-FT's fine-tuning stage")
    d.add_argument("--epochs", type=int, default=None, help="default: the dataset's paper epochs")
    d.add_argument("--max-train-steps", type=int, default=None, help="stop each run after N optimizer steps")
    d.add_argument("--batch-size", type=int, default=32, help="training batch size")
    d.add_argument("--splits", nargs="+", default=None, help="with --runs: splits to measure "
                                                             "(default: id_test and the dataset's OOD splits)")
    d.add_argument("--subset", type=int, default=None,
                   help="use only N random examples (seed 0) of every split, for training and measuring (smoke runs)")
    d.add_argument("--eval-batches", type=int, default=None, help="at most this many batches per measured split")

    h = _subparser(sub, "probehead", "the linear probe's head that LP-FT starts from, per feature scaling",
                   "Fit the linear probe (the paper's C grid, chosen on ID val) on the frozen features of the "
                   "model a run of --model / --dataset trains, once per feature scaling, put it in the head, and "
                   "report on one training batch (CPU): ||W||, the loss in eval and train mode, and the "
                   "backbone's gradient norm in train mode. No optimizer step is taken.")
    h.add_argument("--model", required=True, help="registered model name")
    h.add_argument("--dataset", required=True, help="registered dataset name")
    h.add_argument("--scalings", nargs="+", default=list(SCALINGS), choices=SCALINGS,
                   help="probe feature scalings (per_feature is what LP / LP-FT use)")
    h.add_argument("--batch-size", type=int, default=32, help="the training batch measured")

    for s in (d, h):
        s.add_argument("--eval-batch-size", type=int, default=256, help="batch size of feature extraction")
    for s in (g, d, h):
        s.add_argument("--data-root", default=None, help="dataset root (offline benchmarks need none)")
        s.add_argument("--seed", type=int, default=0, help="random seed")
    for s in (g, d):
        s.add_argument("--no-pretrained", action="store_true", help="random weights (offline smoke runs)")
    for s in (g, t, d):
        s.add_argument("--device", default="auto", help="auto (cuda if present, else cpu), cpu, cuda, cuda:1 ...")
    for s in (g, m, t, d, h):
        s.add_argument("--image-size", type=int, default=None, help="override the model's input size")
        s.add_argument("--out", type=Path, required=True, help="output folder for .jsonl/.csv/.png/summary")
    for command in sub.choices.values():
        add_import_argument(command)
    return p


COMMANDS = {"gradnorms": cmd_gradnorms, "memory": cmd_memory, "throughput": cmd_throughput,
            "distortion": cmd_distortion, "probehead": cmd_probehead}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = build_parser().parse_args(argv)
    try:
        plugins_from_args(a)
    except PluginError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stem, summary = COMMANDS[a.command](a)
    summary.update(provenance(argv), env=environment())
    write_text(a.out / f"{stem}_summary.json", json.dumps(summary, indent=1, sort_keys=True, default=str) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "env"}, indent=1, default=str))
    return 0
