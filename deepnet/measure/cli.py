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
import csv
import dataclasses
import io
import json
import math
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from deepnet.plugins import PluginError, add_import_argument, plugins_from_args
from deepnet.measure.plots import (GIB, NORMALIZATIONS, plot_distortion, plot_gradnorms, plot_memory, plot_throughput,
                                   save_figure)
from common.io import atomic_path
from common.provenance import git_commit
from deepnet.results import environment

PROG = "python -m deepnet.measure"
TABLE4_MODELS = ["clip_vit_b16", "clip_vit_l14", "openclip_vit_h14"]
TABLE4_METHODS = ["adamw", "sgd", "sgd_freeze_embed", "sgd_freeze_embed_no_momentum", "sgd_no_momentum"]


# --- output -------------------------------------------------------------------------------------

def write_rows(out: Path, stem: str, rows: list[dict[str, Any]]) -> None:
    """``<stem>.jsonl`` and ``<stem>.csv`` with the same rows (CSV: scalar fields only), each atomically."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / f"{stem}.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    buf = io.StringIO()
    fields = sorted({k for r in rows for k in r if not isinstance(r[k], (dict, list))})
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(out / f"{stem}.csv") as tmp:
        tmp.write_text(buf.getvalue())


def provenance(argv: Sequence[str]) -> dict[str, Any]:
    """The commit and the command line that produced a result."""
    return {"commit": git_commit(), "command": f"{PROG} " + " ".join(argv)}


# --- shared helpers -----------------------------------------------------------------------------

def resolve_device(name: str, meta_fallback: bool) -> torch.device:
    """``auto``: the GPU if there is one, else meta (``meta_fallback``) or CPU; otherwise ``name``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else ("meta" if meta_fallback else "cpu"))
    return torch.device(name)


def _loader(dataset: Dataset, batch_size: int, seed: int, shuffle: bool, num_workers: int = 0) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      generator=torch.Generator().manual_seed(seed))


def _on(device: torch.device, batches: Iterable, limit: int | None = None) -> Iterator[list]:
    """The batches' tensors moved to ``device``, at most ``limit`` batches."""
    for i, batch in enumerate(batches):
        if limit is not None and i >= limit:
            return
        yield [t.to(device) if torch.is_tensor(t) else t for t in batch]


def _bundle_and_splits(model: str, dataset: str, data_root: str | None, pretrained: bool,
                       image_size: int | None, augment: bool = False):
    """The model bundle and the dataset's splits at the model's input size (``image_size`` overrides)."""
    from deepnet.data import build_splits, dataset_info
    from deepnet.models import create_model

    info = dataset_info(dataset)
    kw = {"img_size": image_size} if image_size else {}
    bundle = create_model(model, num_classes=info.num_classes, pretrained=pretrained, **kw)
    preprocess = bundle.preprocess
    if image_size:
        preprocess = dataclasses.replace(preprocess, input_size=(image_size, image_size))
    return bundle, build_splits(dataset, data_root, preprocess, train_augment=augment), info


# --- gradnorms ----------------------------------------------------------------------------------

def outlier_summary(rows: list[dict[str, Any]], omit: Sequence[str]) -> dict[str, Any]:
    """Embedding value vs the middle groups' values for each normalization (omitted labels skipped).

    ``ratio_to_max_middle`` > 1 means the embedding's value exceeds every middle group's: the
    paper's "outlier" (Fig. 2); ``rank`` is the embedding's rank among embed + middle (1 = largest).
    Empty when the embedding or every middle group is absent (e.g. frozen by ``--method``).
    """
    embed = [r for r in rows if r["kind"] == "embed"]
    middle = [r for r in rows if r["kind"] == "middle" and r["label"] not in omit]
    if not embed or not middle:
        return {}
    out = {}
    for key, _ in NORMALIZATIONS:
        e, mids = embed[0][key], [r[key] for r in middle]
        out[key] = {"embed": e, "max_middle": max(mids), "median_middle": sorted(mids)[len(mids) // 2],
                    "ratio_to_max_middle": e / max(mids), "rank": 1 + sum(m > e for m in mids),
                    "of": 1 + len(mids)}
    return out


def cmd_gradnorms(a: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    from deepnet.measure.grad_norms import layer_grad_norms
    from deepnet.methods import get_method

    device = resolve_device(a.device, meta_fallback=False)
    rows, summary = [], {}
    for model in a.models:
        torch.manual_seed(a.seed)  # the random head is the same draw for every model of a width
        bundle, splits, _ = _bundle_and_splits(model, a.dataset, a.data_root, not a.no_pretrained, a.image_size,
                                               augment=a.augment)
        if a.method:
            get_method(a.method).apply_freezing(bundle.model, bundle.layer_map)
        net = bundle.model.to(device)
        batches = _on(device, _loader(splits["train"], a.batch_size, a.seed, shuffle=True, num_workers=a.num_workers))
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
    write_rows(a.out, "gradnorms", rows)
    fig = plot_gradnorms(rows, a.models, a.omit, f"Layer gradient norms at the pretrained init, {a.dataset} "
                         f"({a.batches} batches of {a.batch_size}); red = embed, green = head")
    save_figure(fig, a.out / "gradnorms.png")
    return "gradnorms", {"dataset": a.dataset, "batches": a.batches, "batch_size": a.batch_size,
                         "omit": list(a.omit), "method": a.method, "summary": summary}


# --- memory -------------------------------------------------------------------------------------

def cmd_memory(a: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    from deepnet.measure.memory import measure_training_step
    from deepnet.methods import get_method
    from deepnet.models import create_model

    device = resolve_device(a.device, meta_fallback=True)
    kw: dict[str, Any] = {"device": device}
    if a.backend:
        kw["backend"] = a.backend
    if a.image_size:
        kw["img_size"] = a.image_size
    rows, ratios = [], {}
    print(f"device {device}; batch {a.batch_size}; {'bf16 autocast' if a.amp else 'fp32'}; GiB = 2**30 bytes")
    print(f"{'model':18} {'method':30} {'trainable':>12} {'B/param':>8} {'static':>8} {'activ.':>8} "
          f"{'accounted':>9} {'cuda peak':>9} {'AdamW/this':>10}")
    for model in a.models:
        per_model = []
        for method in a.methods:
            torch.manual_seed(0)
            bundle = create_model(model, num_classes=a.num_classes, pretrained=False, **kw)
            h, w = bundle.preprocess.input_size
            x = torch.randn(a.batch_size, 3, h, w, device=device)
            y = torch.zeros(a.batch_size, dtype=torch.long, device=device)
            mem = measure_training_step(bundle.model, bundle.layer_map, get_method(method), x, y, amp=a.amp)
            per_model.append({"model": model, "batch_size": a.batch_size, "input_size": [h, w], **mem.as_dict()})
            del bundle, x, y
            if device.type == "cuda":
                torch.cuda.empty_cache()
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
    return stem, {"device": str(device), "rows": len(rows), "batch_size": a.batch_size, "amp": a.amp,
                  "adamw_over_this": ratios}


# --- throughput ---------------------------------------------------------------------------------

def cmd_throughput(a: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    from deepnet.measure.throughput import device_name, measure_throughput
    from deepnet.methods import get_method
    from deepnet.models import create_model

    device = resolve_device(a.device, meta_fallback=False)
    if device.type == "meta":
        sys.exit("throughput needs real tensors: --device cpu, cuda or auto")
    kw: dict[str, Any] = {"device": device}
    if a.backend:
        kw["backend"] = a.backend
    if a.image_size:
        kw["img_size"] = a.image_size
    name = device_name(device)
    rows = []
    print(f"{name}; batch {a.batch_size}; {a.warmup} warm-up + {a.steps} timed steps; "
          f"{'bf16 autocast' if a.amp else 'fp32'}; GiB = 2**30 bytes")
    print(f"{'model':18} {'method':30} {'trainable':>12} {'images/s':>9} {'step ms':>8} {'cuda peak':>9} {'vs sgd':>7}")
    for model in a.models:
        per_model = []
        for method in a.methods:
            torch.manual_seed(0)
            bundle = create_model(model, num_classes=a.num_classes, pretrained=False, **kw)
            if a.channels_last:
                bundle.model.to(memory_format=torch.channels_last)
            h, w = bundle.preprocess.input_size
            x = torch.randn(a.batch_size, 3, h, w, device=device)
            y = torch.randint(0, a.num_classes, (a.batch_size,), device=device)
            t = measure_throughput(bundle.model, bundle.layer_map, get_method(method), x, y,
                                   steps=a.steps, warmup=a.warmup, amp=a.amp)
            per_model.append({"model": model, "input_size": [h, w], "device_name": name, **t.as_dict()})
            del bundle, x, y
            if device.type == "cuda":
                torch.cuda.empty_cache()
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
                  "warmup": a.warmup, "amp": a.amp,
                  "images_per_s": {f"{r['model']}/{r['method']}": r["images_per_s"] for r in rows}}


# --- distortion ---------------------------------------------------------------------------------

def _sample(dataset: Dataset, n: int | None) -> Dataset:
    """``n`` examples of ``dataset`` drawn at random (seed 0, so every call picks the same), or all."""
    if n is None or n >= len(dataset):
        return dataset
    return Subset(dataset, torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:n].tolist())


def measure_distortion(model_0: torch.nn.Module, runs: list[dict[str, Any]], splits: dict[str, Dataset],
                       a: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    """Rows of per-split feature change for each run (``method``, ``lr``, ``state`` and row fields)."""
    from deepnet.measure.distortion import feature_distortion

    model_0 = model_0.to(device)
    rows = []
    for run in runs:
        tuned = copy.deepcopy(model_0)
        tuned.load_state_dict(run["state"])
        loaders = {s: _on(device, _loader(d, a.eval_batch_size, a.seed, shuffle=False), a.eval_batches)
                   for s, d in splits.items()}
        for split, st in feature_distortion(model_0, tuned, loaders, progress=True).items():
            rows.append({**run["row"], "kind": "id" if split.startswith("id_") else "ood", **st.as_dict()})
            print(f"{run['row']['method']:24s} {split:10s} mean ||dphi|| {st.mean:.4g} "
                  f"(relative {st.relative_mean:.4g}), median {st.median:.4g}, n={st.n}")
        del tuned
    return rows


def _train_ft_and_lpft(a: argparse.Namespace) -> tuple[Any, dict[str, Dataset], list[dict[str, Any]], dict]:
    """Fine-tune ``sgd`` and ``lp_ft`` (kept checkpoints under ``<out>/runs``) from one pretrained init."""
    from deepnet.config import RunConfig
    from deepnet.train import CHECKPOINT, build_inputs, seed_everything, train

    bundle_0, splits, info = _bundle_and_splits(a.model, a.dataset, a.data_root, not a.no_pretrained, a.image_size)
    runs, summary = [], {}
    for method, lr in (("sgd", a.ft_lr), ("lp_ft", a.lpft_lr)):
        cfg = RunConfig(model=a.model, dataset=a.dataset, method=method, lr=lr, seed=a.seed, epochs=a.epochs,
                        batch_size=a.batch_size, pretrained=not a.no_pretrained, image_size=a.image_size,
                        max_train_steps=a.max_train_steps, num_workers=0, data_root=a.data_root)
        run_dir = a.out / "runs" / cfg.key()
        inputs = None
        if a.subset is not None:
            seed_everything(cfg.seed)  # as train() does before building the model: same head init
            full = build_inputs(cfg)
            inputs = dataclasses.replace(full, splits={k: _sample(v, a.subset) for k, v in full.splits.items()},
                                         probe_train=lambda full=full: _sample(full.probe_train(), a.subset))
        record = train(cfg, run_dir, keep_checkpoint=True, inputs=inputs)
        state = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=False)["model"]
        runs.append({"state": state, "row": {"model": a.model, "dataset": a.dataset, "method": method, "lr": lr,
                                                "seed": a.seed}})
        summary[method] = {"metrics": record["metrics"], "status": record["status"], "run_dir": run_dir.name}
    eval_splits = {s: _sample(splits[s], a.subset) for s in ["id_test", *info.ood_splits]}
    return bundle_0.model, eval_splits, runs, summary


def _load_runs(a: argparse.Namespace) -> tuple[Any, dict[str, Dataset], list[dict[str, Any]], dict]:
    """Existing run directories (trained with ``keep_checkpoint``) and their shared pretrained init."""
    from deepnet.config import RunConfig
    from deepnet.models.registry import pretrained_weights_used
    from deepnet.train import CHECKPOINT, RESULT

    runs, configs, summary = [], [], {}
    for run_dir in map(Path, a.runs):
        if not (run_dir / CHECKPOINT).exists():
            sys.exit(f"{run_dir} holds no {CHECKPOINT}; train the run with keep_checkpoint (--keep-checkpoint)")
        state = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=False)
        cfg = RunConfig.from_dict(state["config"])
        configs.append(cfg)
        runs.append({"state": state["model"], "row": {"model": cfg.model, "dataset": cfg.dataset,
                                                       "method": cfg.method, "lr": cfg.lr, "seed": cfg.seed,
                                                       "run": str(run_dir)}})
        result = run_dir / RESULT
        summary[str(run_dir)] = {"method": cfg.method, "lr": cfg.lr,
                                 "metrics": json.loads(result.read_text())["metrics"] if result.exists() else None}
    first = configs[0]
    if any((c.model, c.dataset, c.image_size) != (first.model, first.dataset, first.image_size) for c in configs):
        sys.exit("all runs must share model, dataset and image size (their features are compared to one init)")
    if not (first.pretrained and pretrained_weights_used(first.model, True)):
        sys.exit("distortion is measured against the pretrained features, which a random-weight run "
                 "(--no-pretrained, or DEEPNET_OFFLINE=1 for hub weights) cannot rebuild")
    bundle_0, splits, info = _bundle_and_splits(first.model, first.dataset, a.data_root or first.data_root, True,
                                                first.image_size)
    names = a.splits or ["id_test", *info.ood_splits]
    return bundle_0.model, {s: _sample(splits[s], a.subset) for s in names}, runs, summary


def distortion_ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean change per (method, ID/OOD) and the paper's ratios, when exactly one FT and one LP-FT run."""
    def mean_change(method: str, kind: str) -> float:
        vals = [r["mean"] for r in rows if r["method"] == method and r["kind"] == kind]
        return sum(vals) / len(vals)

    runs = {(r["method"], r["lr"]) for r in rows}
    if len(runs) != 2 or {m for m, _ in runs} != {"sgd", "lp_ft"}:
        return {}
    ft_id, ft_ood, lpft_id = mean_change("sgd", "id"), mean_change("sgd", "ood"), mean_change("lp_ft", "id")
    return {"ft_id_change": ft_id, "ft_ood_change": ft_ood, "lpft_id_change": lpft_id,
            "lpft_ood_change": mean_change("lp_ft", "ood"), "ft_id_over_ood": _ratio(ft_id, ft_ood),
            "ft_over_lpft_id": _ratio(ft_id, lpft_id)}


def _ratio(num: float, den: float) -> float:
    """``num / den``; ``inf`` for a zero denominator (``nan`` for 0 / 0)."""
    if den > 0:
        return num / den
    return math.inf if num > 0 else math.nan


def cmd_distortion(a: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    if a.runs:
        model_0, splits, runs, summary = _load_runs(a)
    else:
        missing = [f"--{n.replace('_', '-')}" for n in ("model", "dataset", "ft_lr", "lpft_lr") if getattr(a, n) is None]
        if missing:
            sys.exit(f"distortion needs {', '.join(missing)} (or --runs DIR ... to measure existing runs)")
        model_0, splits, runs, summary = _train_ft_and_lpft(a)
    rows = measure_distortion(model_0, runs, splits, a, resolve_device(a.device, meta_fallback=False))
    write_rows(a.out, "distortion", rows)
    save_figure(plot_distortion(rows, f"{rows[0]['model']} on {rows[0]['dataset']}"), a.out / "distortion.png")
    extra = {"subset": a.subset} if a.subset is not None else {}
    return "distortion", {"runs": summary, **distortion_ratios(rows), **extra}


# --- probehead ----------------------------------------------------------------------------------

def cmd_probehead(a: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    from deepnet.config import RunConfig
    from deepnet.measure.probe_head import probe_head_stats
    from deepnet.methods.linear_probe import fit_linear_probe, load_probe_into_head
    from deepnet.train import build_inputs, frozen_features, seed_everything

    cfg = RunConfig(model=a.model, dataset=a.dataset, method="lp_ft", lr=1.0, seed=a.seed,
                    batch_size=a.batch_size, image_size=a.image_size, num_workers=0, data_root=a.data_root)
    seed_everything(cfg.seed)
    inputs = build_inputs(cfg)  # the model and splits a run of this config trains on
    model = inputs.bundle.model.eval()
    fresh_head_norm = model.head.weight.detach().norm().item()
    initial = copy.deepcopy(model.state_dict())  # train-mode passes move BatchNorm statistics
    probe_train = _loader(inputs.probe_train(), a.eval_batch_size, a.seed, shuffle=False)
    id_val = _loader(inputs.splits["id_val"], a.eval_batch_size, a.seed, shuffle=False)
    train_x, train_y = frozen_features(model, ((x, y) for x, y, _ in probe_train))
    val_x, val_y = frozen_features(model, ((x, y) for x, y, _ in id_val))
    x, y, _ = next(iter(_loader(inputs.splits["train"], a.batch_size, a.seed, shuffle=True)))
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

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("gradnorms", help="layer-wise gradient norms at the pretrained init (eq. 3.1)",
                       description="Mean over minibatches of the training split of each layer-map group's "
                                   "gradient norm at the pretrained init, also divided by the parameter norm "
                                   "and by sqrt(#params) (Appendix F). No optimizer step is taken.")
    g.add_argument("--models", nargs="+", required=True, help="registered model names")
    g.add_argument("--dataset", required=True, help="registered dataset (its train split is measured)")
    g.add_argument("--batches", type=int, default=20, help="minibatches m in eq. 3.1 (default 20)")
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--omit", nargs="*", default=["tokens"],
                   help="group labels left out of the figure and outlier summary (default: the ViT's "
                        "cls token / position embedding group, as Appendix F omits them)")
    g.add_argument("--method", default=None, help="apply this method's freezing first (frozen groups are left out)")
    g.add_argument("--augment", action="store_true", help="train split with its training augmentation")
    g.add_argument("--num-workers", type=int, default=0)

    m = sub.add_parser("memory", help="bytes per parameter and per method after one training step (Table 4)",
                       description="Build each model with random weights (memory does not depend on their "
                                   "values), take one step of each method on a random batch and account "
                                   "params + grads + optimizer state (exact), saved activations (CPU) and "
                                   "the CUDA peak (GPU).")
    m.add_argument("--models", nargs="+", default=TABLE4_MODELS)
    m.add_argument("--methods", nargs="+", default=TABLE4_METHODS)
    m.add_argument("--device", default="meta",
                   help="meta (default): shapes only, no activations, seconds even for ViT-H/14; cpu: real "
                        "tensors, saved activations counted; cuda[:i]: plus the CUDA peak; auto: cuda if "
                        "present, else meta")
    m.add_argument("--batch-size", type=int, default=1, help="micro-batch (Table 4 used 1)")
    m.add_argument("--num-classes", type=int, default=10)
    m.add_argument("--image-size", type=int, default=None, help="override the model's input size")
    m.add_argument("--backend", choices=["timm", "open_clip"], default=None, help="CLIP backend (default timm)")
    m.add_argument("--amp", action="store_true", help="bfloat16 autocast for forward and loss (default fp32)")

    t = sub.add_parser("throughput", help="images/s and peak memory of timed training steps per method",
                       description="Build each model with random weights (speed does not depend on their values), "
                                   "then per method time whole training steps (forward, backward, the method's "
                                   "real optimizer step) on a random batch after warm-up steps; report images/s, "
                                   "the median step time and, on a GPU, torch.cuda.max_memory_allocated. The "
                                   "device is named in every row. Data loading is not included.")
    t.add_argument("--models", nargs="+", default=["clip_vit_b16"])
    t.add_argument("--methods", nargs="+", default=["sgd", "adamw", "sgd_freeze_embed", "sgd_freeze_embed_no_momentum",
                                                    "adamw_freeze_embed", "sgd_no_momentum"])
    t.add_argument("--device", default="auto", help="auto (cuda if present, else cpu), cpu, cuda, cuda:1 ...")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--steps", type=int, default=10, help="timed steps per method (default 10)")
    t.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    t.add_argument("--amp", action="store_true", help="bfloat16 autocast for forward and loss")
    t.add_argument("--channels-last", action="store_true", help="channels_last memory format (convnets)")
    t.add_argument("--num-classes", type=int, default=10)
    t.add_argument("--image-size", type=int, default=None, help="override the model's input size")
    t.add_argument("--backend", choices=["timm", "open_clip"], default=None, help="CLIP backend (default timm)")

    d = sub.add_parser("distortion", help="feature change ID vs OOD after FT and LP-FT (LP-FT paper)",
                       description="Either fine-tune FT (method sgd at --ft-lr) and LP-FT (lp_ft at --lpft-lr) "
                                   "from one pretrained init, or measure existing run directories (--runs) "
                                   "trained with --keep-checkpoint on one model and dataset; then per split "
                                   "the mean, median and std of ||phi_ft(x) - phi_0(x)|| and its mean "
                                   "relative to ||phi_0(x)||.")
    d.add_argument("--runs", nargs="+", default=None, help="run directories holding checkpoint.pt (no training)")
    d.add_argument("--model", default=None)
    d.add_argument("--dataset", default=None)
    d.add_argument("--ft-lr", type=float, default=None, help="learning rate of FT (method sgd)")
    d.add_argument("--lpft-lr", type=float, default=None, help="learning rate of LP-FT's fine-tuning stage")
    d.add_argument("--epochs", type=int, default=None, help="default: the dataset's paper epochs")
    d.add_argument("--max-train-steps", type=int, default=None)
    d.add_argument("--batch-size", type=int, default=32, help="training batch size")
    d.add_argument("--splits", nargs="+", default=None, help="with --runs: splits to measure "
                                                             "(default: id_test and the dataset's OOD splits)")
    d.add_argument("--subset", type=int, default=None,
                   help="use only N random examples (seed 0) of every split, for training and measuring (smoke runs)")
    d.add_argument("--eval-batches", type=int, default=None, help="at most this many batches per measured split")
    d.add_argument("--eval-batch-size", type=int, default=256)
    d.add_argument("--device", default="auto", help="device of the measurement (auto: cuda if present, else cpu)")

    h = sub.add_parser("probehead", help="the linear probe's head that LP-FT starts from, per feature scaling",
                       description="Fit the linear probe (the paper's C grid, chosen on ID val) on the frozen "
                                   "features of the model a run of --model / --dataset trains, once per feature "
                                   "scaling, put it in the head, and report on one training batch (CPU): ||W||, "
                                   "the loss in eval and train mode, and the backbone's gradient norm in train "
                                   "mode. No optimizer step is taken.")
    h.add_argument("--model", required=True)
    h.add_argument("--dataset", required=True)
    h.add_argument("--scalings", nargs="+", default=["per_feature", "global"], choices=["per_feature", "global"],
                   help="probe feature scalings (default both; per_feature is what LP / LP-FT use)")
    h.add_argument("--batch-size", type=int, default=32, help="the training batch measured (default 32)")
    h.add_argument("--eval-batch-size", type=int, default=256, help="batch size of feature extraction")

    for s in (g, d, h):
        s.add_argument("--data-root", default=None, help="dataset root (offline benchmarks need none)")
        s.add_argument("--seed", type=int, default=0)
    for s in (g, d, h):
        s.add_argument("--image-size", type=int, default=None, help="override the model's input size")
    for s in (g, d):
        s.add_argument("--no-pretrained", action="store_true", help="random weights (offline smoke runs)")
    g.add_argument("--device", default="auto", help="auto (cuda if present, else cpu), cpu, cuda, cuda:1 ...")
    for s in (g, m, t, d, h):
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
    with atomic_path(a.out / f"{stem}_summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1, sort_keys=True, default=str) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "env"}, indent=1, default=str))
    return 0
