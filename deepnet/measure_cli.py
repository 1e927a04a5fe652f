"""The SGD / LP-FT papers' measurements on real models, as commands that write data and a figure.

``python -m deepnet.measure_cli gradnorms``  layer-wise gradient norms at the pretrained init (SGD
    paper eq. 3.1, Fig. 2-5): G_l, G_l / ||theta_l|| and G_l / sqrt(#params_l) per layer-map group,
    embedding red squares, middle black circles, head green triangles. Claim C9 asks whether the
    embedding is an outlier for AdamW-pretrained but not for SGD-pretrained models.
``python -m deepnet.measure_cli memory``  bytes after one training step per method (Table 4): params,
    grads and the real optimizer's state (C13: 8 / 12 / 16 B per trainable parameter), on the meta
    device (shapes only, any model size) or on CPU (plus the exact saved activations).
``python -m deepnet.measure_cli distortion``  fine-tunes with FT (``sgd``) and LP-FT (``lp_ft``)
    through :func:`deepnet.train.train` and measures ||phi_ft(x) - phi_0(x)|| on ID and OOD
    splits (LP-FT paper; claims C1 and C7).

Each command writes ``<out>/<command>.jsonl`` (one JSON object per row, atomically), a CSV of the
same rows and a PNG, and prints a summary. ``--help`` on each command lists its options.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import DataLoader

from deepnet.results import atomic_path, environment, git_commit

MARKERS = {"embed": ("s", "red"), "middle": ("o", "black"), "head": ("^", "green")}
NORMALIZATIONS = (("grad_norm", "G_l (eq. 3.1)"), ("grad_over_param_norm", "G_l / ||theta_l||"),
                  ("grad_over_sqrt_numel", "G_l / sqrt(#params_l)"))
TABLE4_MODELS = ["clip_vit_b16", "clip_vit_l14", "openclip_vit_h14"]
TABLE4_METHODS = ["adamw", "sgd", "sgd_freeze_embed", "sgd_freeze_embed_no_momentum", "sgd_no_momentum"]


def write_rows(out: Path, stem: str, rows: list[dict[str, Any]]) -> None:
    """``<stem>.jsonl`` and ``<stem>.csv`` with the same rows, each written atomically."""
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


def save_figure(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def provenance() -> dict[str, Any]:
    return {"commit": git_commit(), "command": "python -m deepnet.measure_cli " + " ".join(sys.argv[1:])}


def _loader(dataset, batch_size: int, seed: int, shuffle: bool = True) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=0,
                      generator=torch.Generator().manual_seed(seed))


def _bundle_and_splits(model: str, dataset: str, data_root: str | None, pretrained: bool, image_size: int | None):
    """The model bundle and the dataset's splits (no train augmentation) at the model's input size."""
    from deepnet.data import build_splits, dataset_info
    from deepnet.models import create_model

    info = dataset_info(dataset)
    kw = {"img_size": image_size} if image_size else {}
    bundle = create_model(model, num_classes=info.num_classes, pretrained=pretrained, **kw)
    preprocess = bundle.preprocess
    if image_size:
        preprocess = dataclasses.replace(preprocess, input_size=(image_size, image_size))
    return bundle, build_splits(dataset, data_root, preprocess, train_augment=False), info


# --- gradnorms ----------------------------------------------------------------------------------

def outlier_summary(rows: list[dict[str, Any]], omit: Sequence[str]) -> dict[str, Any]:
    """Embedding value vs the middle groups' values for each normalization (omitted labels skipped).

    ``ratio_to_max_middle`` > 1 means the embedding's value exceeds every middle group's: the
    paper's "outlier" (Fig. 2); ``rank`` is the embedding's rank among embed + middle (1 = largest).
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


def plot_gradnorms(rows: list[dict[str, Any]], models: list[str], omit: Sequence[str], title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(NORMALIZATIONS), len(models), figsize=(3.6 * len(models), 8.5), squeeze=False)
    for j, model in enumerate(models):
        mrows = [r for r in rows if r["model"] == model and r["label"] not in omit]
        for i, (key, ylabel) in enumerate(NORMALIZATIONS):
            ax = axes[i][j]
            for x, r in enumerate(mrows):
                if r["kind"] == "head" and i > 0:  # Appendix F leaves the head out of the normalized plots
                    continue
                marker, color = MARKERS[r["kind"]]
                ax.scatter([x], [r[key]], marker=marker, color=color, s=36 if r["kind"] != "middle" else 18)
            ax.set_yscale("log")
            ax.set_xticks([])
            if j == 0:
                ax.set_ylabel(ylabel)
            if i == 0:
                ax.set_title(model, fontsize=9)
        axes[-1][j].set_xlabel("layer group (bottom -> top)")
    fig.suptitle(title)
    return fig


def cmd_gradnorms(a: argparse.Namespace) -> dict[str, Any]:
    from deepnet.measure import layer_grad_norms

    rows, summary = [], {}
    for model in a.models:
        torch.manual_seed(a.seed)  # the random head is the same draw for every model of a width
        bundle, splits, info = _bundle_and_splits(model, a.dataset, a.data_root, not a.no_pretrained, a.image_size)
        batches = _loader(splits["train"], a.batch_size, a.seed)
        norms = layer_grad_norms(bundle.model, bundle.layer_map, batches, max_batches=a.batches, progress=True)
        mrows = [{"model": model, "dataset": a.dataset, "index": i, **n.as_dict()} for i, n in enumerate(norms)]
        rows += mrows
        summary[model] = outlier_summary(mrows, a.omit)
        s = summary[model]["grad_norm"]
        print(f"{model}: G_embed={s['embed']:.4g} max middle={s['max_middle']:.4g} "
              f"ratio={s['ratio_to_max_middle']:.3g} rank {s['rank']}/{s['of']}")
    write_rows(a.out, "gradnorms", rows)
    fig = plot_gradnorms(rows, a.models, a.omit, f"Layer gradient norms at the pretrained init, {a.dataset} "
                         f"({a.batches} batches of {a.batch_size}); red = embed, green = head")
    save_figure(fig, a.out / "gradnorms.png")
    return {"dataset": a.dataset, "batches": a.batches, "batch_size": a.batch_size, "omit": list(a.omit),
            "summary": summary}


# --- memory -------------------------------------------------------------------------------------

def cmd_memory(a: argparse.Namespace) -> dict[str, Any]:
    from deepnet.measure import measure_training_step
    from deepnet.methods import get_method
    from deepnet.models import create_model

    rows = []
    for model in a.models:
        for method in a.methods:
            torch.manual_seed(0)
            bundle = create_model(model, num_classes=a.num_classes, pretrained=False, device=a.device)
            h, w = bundle.preprocess.input_size
            x = torch.randn(a.batch_size, 3, h, w, device=a.device)
            y = torch.zeros(a.batch_size, dtype=torch.long, device=a.device)
            mem = measure_training_step(bundle.model, bundle.layer_map, get_method(method), x, y)
            row = {"model": model, "batch_size": a.batch_size, "input_size": [h, w], **mem.as_dict()}
            rows.append(row)
            acc = mem.accounted_bytes
            print(f"{model:18s} {method:30s} {mem.bytes_per_trainable_param:5.2f} B/param  static "
                  f"{mem.static_bytes / 2**30:6.3f} GiB" + (f"  + activations {acc / 2**30:6.3f} GiB" if acc else ""))
            del bundle, x, y
    write_rows(a.out, f"memory_{a.device}", rows)
    save_figure(plot_memory(rows, a.models, a.methods), a.out / f"memory_{a.device}.png")
    return {"device": a.device, "rows": len(rows)}


def plot_memory(rows: list[dict[str, Any]], models: list[str], methods: list[str]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 + 1.7 * len(models), 3.6))
    width = 0.8 / len(methods)
    for k, method in enumerate(methods):
        vals = [next(r["static_bytes"] for r in rows if r["model"] == m and r["method"] == method) / 2**30
                for m in models]
        ax.bar([i + k * width for i in range(len(models))], vals, width, label=method)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(models))], models)
    ax.set_ylabel("params + grads + optimizer state (GiB)")
    ax.legend(fontsize=7)
    ax.set_title("Training memory without activations (exact tensor accounting)")
    return fig


# --- distortion ---------------------------------------------------------------------------------

def cmd_distortion(a: argparse.Namespace) -> dict[str, Any]:
    from deepnet.config import RunConfig
    from deepnet.measure import feature_distortion
    from deepnet.train import CHECKPOINT, train

    bundle_0, splits, info = _bundle_and_splits(a.model, a.dataset, a.data_root, not a.no_pretrained, a.image_size)
    eval_splits = ["id_test", *info.ood_splits]
    rows, results = [], {}
    for method, lr in (("sgd", a.ft_lr), ("lp_ft", a.lpft_lr)):
        cfg = RunConfig(model=a.model, dataset=a.dataset, method=method, lr=lr, seed=a.seed, epochs=a.epochs,
                        batch_size=a.batch_size, pretrained=not a.no_pretrained, image_size=a.image_size,
                        max_train_steps=a.max_train_steps, num_workers=0, data_root=a.data_root)
        run_dir = a.out / "runs" / cfg.key()
        record = train(cfg, run_dir, keep_checkpoint=True)
        state = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=False)["model"]
        bundle_ft, _, _ = _bundle_and_splits(a.model, a.dataset, a.data_root, not a.no_pretrained, a.image_size)
        bundle_ft.model.load_state_dict(state)
        stats = feature_distortion(bundle_0.model, bundle_ft.model,
                                   {s: _loader(splits[s], 256, a.seed, shuffle=False) for s in eval_splits})
        results[method] = {"metrics": record["metrics"], "status": record["status"], "run_dir": run_dir.name}
        for split, st in stats.items():
            rows.append({"model": a.model, "dataset": a.dataset, "method": method, "lr": lr,
                         "kind": "id" if split == "id_test" else "ood", **st.as_dict()})
            print(f"{method:6s} {split:10s} mean ||dphi|| {st.mean:.4g} (relative {st.relative_mean:.4g}), n={st.n}")
    write_rows(a.out, "distortion", rows)
    save_figure(plot_distortion(rows, f"{a.model} on {a.dataset}"), a.out / "distortion.png")
    def mean_change(method: str, kind: str) -> float:
        vals = [r["mean"] for r in rows if r["method"] == method and r["kind"] == kind]
        return sum(vals) / len(vals)

    ft_id, ft_ood, lpft_id = mean_change("sgd", "id"), mean_change("sgd", "ood"), mean_change("lp_ft", "id")
    return {"runs": results, "ft_id_change": ft_id, "ft_ood_change": ft_ood, "lpft_id_change": lpft_id,
            "lpft_ood_change": mean_change("lp_ft", "ood"), "ft_id_over_ood": ft_id / ft_ood,
            "ft_over_lpft_id": ft_id / lpft_id if lpft_id > 0 else math.inf}


def plot_distortion(rows: list[dict[str, Any]], title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(dict.fromkeys(r["split"] for r in rows))
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    for k, method in enumerate(("sgd", "lp_ft")):
        vals = [next(r["mean"] for r in rows if r["method"] == method and r["split"] == s) for s in splits]
        ax.bar([i + 0.4 * k for i in range(len(splits))], vals, 0.4, label="FT" if method == "sgd" else "LP-FT")
    ax.set_xticks([i + 0.2 for i in range(len(splits))], splits)
    ax.set_ylabel("mean ||phi_ft(x) - phi_0(x)||")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title(f"Feature change, {title}", fontsize=9)
    return fig


# --- CLI ----------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m deepnet.measure_cli", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("gradnorms", help="layer-wise gradient norms at the pretrained init (eq. 3.1)")
    g.add_argument("--models", nargs="+", required=True, help="registered model names")
    g.add_argument("--dataset", required=True, help="registered dataset (its train split is measured)")
    g.add_argument("--batches", type=int, default=20, help="minibatches m in eq. 3.1 (default 20)")
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--omit", nargs="*", default=["tokens"],
                   help="group labels left out of the figure and outlier summary (default: the ViT's "
                        "cls token / position embedding group, as Appendix F omits them)")

    m = sub.add_parser("memory", help="bytes per parameter and per method after one training step (Table 4)")
    m.add_argument("--models", nargs="+", default=TABLE4_MODELS)
    m.add_argument("--methods", nargs="+", default=TABLE4_METHODS)
    m.add_argument("--device", choices=["meta", "cpu", "cuda"], default="meta",
                   help="meta: shapes only (no activations); cpu/cuda: real tensors, activations counted")
    m.add_argument("--batch-size", type=int, default=1, help="micro-batch (Table 4 used 1)")
    m.add_argument("--num-classes", type=int, default=10)

    d = sub.add_parser("distortion", help="feature change ID vs OOD after FT and LP-FT (LP-FT paper)")
    d.add_argument("--model", required=True)
    d.add_argument("--dataset", required=True)
    d.add_argument("--ft-lr", type=float, required=True, help="learning rate of FT (method sgd)")
    d.add_argument("--lpft-lr", type=float, required=True, help="learning rate of LP-FT's fine-tuning stage")
    d.add_argument("--epochs", type=int, default=None, help="default: the dataset's paper epochs")
    d.add_argument("--max-train-steps", type=int, default=None)
    d.add_argument("--batch-size", type=int, default=32)

    for s in (g, d):
        s.add_argument("--data-root", default=None, help="dataset root (offline benchmarks need none)")
        s.add_argument("--image-size", type=int, default=None, help="override the model's input size")
        s.add_argument("--no-pretrained", action="store_true", help="random weights (offline smoke runs)")
        s.add_argument("--seed", type=int, default=0)
    for s in (g, m, d):
        s.add_argument("--out", type=Path, required=True, help="output folder for .jsonl/.csv/.png/summary")
    return p


COMMANDS = {"gradnorms": cmd_gradnorms, "memory": cmd_memory, "distortion": cmd_distortion}


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    summary = COMMANDS[a.command](a)
    summary.update(provenance(), env=environment())
    stem = f"memory_{a.device}" if a.command == "memory" else a.command
    with atomic_path(a.out / f"{stem}_summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1, sort_keys=True, default=str) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "env"}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
