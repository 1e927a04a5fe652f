"""Two-stage experiment on deep linear nets: pretrain with SGD or AdamW, fine-tune on a shifted task.

Why: mirrors Appendix E of "How to Fine-Tune Vision Models with SGD" (BiT-ResNet pretrained with SGD
vs AdamW, then fine-tuned with SGD / AdamW / SGD-freeze-embed, Tables 13-14) in a model where every
quantity is exact, so the freeze-embed mechanism can be tested and its ingredients varied.

The task (one per seed) and its configuration: `theory.deep_task`; the pretraining rules and the
fine-tuning methods with their grids: `theory.deep_methods`.

Selection (as the paper, Appendix A): each method sweeps its learning-rate grid with a cosine
schedule; the run and epoch with the lowest ID validation loss (early stopping, ties to the earliest)
is selected, and its OOD loss is reported. Diverged runs are never selected. LP is a ridge head on the
frozen pretrained features with its L2 strength selected the same way; LP-FT fine-tunes from it.
Layer gradient norms at the pretrained init follow eq. 3.1 (`theory.deep_grad_norms.layer_grad_norms`).

Run: ``python -m theory.deep_experiment --seeds 8 [--set widths=(64,64) --set init_scale=0.1]``.

References
----------
.. [1] A. Kumar, R. Shen, S. Bubeck, S. Gunasekar, "How to Fine-Tune Vision Models with SGD",
   arXiv:2211.09359 (Appendix A: grids and selection; Appendix E: SGD- vs AdamW-pretrained).
.. [2] A. Kumar, A. Raghunathan, R. Jones, T. Ma, P. Liang, "Fine-Tuning can Distort Pretrained
   Features and Underperform Out-of-Distribution", ICLR 2022, arXiv:2202.10054 (LP and LP-FT).

Examples
--------
>>> cfg = config_with(d=6, embed_dim=6, widths=[8], pre_out=3, rank=2, id_dim=3, pre_n=32, pre_epochs=5,
...                   pre_batch=8, n_train=8, n_val=8, ft_epochs=2, ft_batch=4)
>>> table = run_table(cfg, [0, 1], methods=("sgd", "adamw", "sgd_freeze_embed"))
>>> [len(table[pre]) for pre in table], sorted(table["adamw"][0].selected)
([2, 2], ['adamw', 'sgd', 'sgd_freeze_embed'])
>>> s = summarize(table)["adamw"]
>>> s["sgd_freeze_embed"]["embed_move"]["mean"], sorted(s["grad_norms"])
(0.0, ['param_norm', 'raw', 'sqrt_numel'])
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from common.grad_norms import GRAD_NORMALIZATIONS
from common.helpformat import command_parser
from theory.deep import Layers, end_to_end, mse_of_map, train
from theory.deep_grad_norms import layer_grad_norms
from theory.deep_methods import DEEP_METHODS, PRETRAINERS
from theory.deep_task import DeepConfig, DeepTask, config_dict, config_with, make_deep_task

def pretrain(cfg: DeepConfig, task: DeepTask, pretrainer: str, rng: np.random.Generator) -> tuple[Layers, float]:
    """Train the task's initial net on its pretraining data with the rule `pretrainer`.

    Parameters
    ----------
    cfg : DeepConfig
        Epochs, batch size and the rule's learning rate (``cfg.pretrain_lr``).
    task : DeepTask
        Pretraining data and initial layers.
    pretrainer : str
        A key of PRETRAINERS.
    rng : numpy.random.Generator
        Minibatch order.

    Returns
    -------
    layers : list of ndarray
        The pretrained [E, W_1..W_L, V_pre].
    fit : float
        Relative pretraining fit ||W - M*||_F^2 / ||M*||_F^2.

    Raises
    ------
    KeyError
        An unknown pretrainer.
    RuntimeError
        Pretraining diverged.
    """
    rule = PRETRAINERS[pretrainer]
    res = train(task.pre_init, task.pre_X, task.pre_Y, rule.optimizer, cfg.pretrain_lr(pretrainer),
                cfg.pre_epochs, cfg.pre_batch, rng, **rule.hparams)
    if res.diverged:
        raise RuntimeError(f"pretraining with {pretrainer} diverged at lr {cfg.pretrain_lr(pretrainer)}")
    M = task.pre_target
    fit = mse_of_map(end_to_end(res.layers), M, np.eye(cfg.d)) / float(np.sum(M * M))
    return res.layers, fit


RIDGES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def ridge_probe_head(features: Layers, X: np.ndarray, Y: np.ndarray, ridge: float) -> np.ndarray:
    """Ridge regression head on the frozen features Phi = X (W_L..E)^T: (Phi^T Phi + n*ridge I)^-1 Phi^T Y."""
    Phi = X @ end_to_end(features).T
    A = Phi.T @ Phi + X.shape[0] * ridge * np.eye(Phi.shape[1])
    return np.linalg.solve(A, Phi.T @ Y).T


def linear_probe(features: Layers, task: DeepTask) -> np.ndarray:
    """LP as the papers: ridge head with the L2 strength selected on ID validation loss over RIDGES."""
    heads = [ridge_probe_head(features, task.X, task.Y, r) for r in RIDGES]
    vals = [_val_loss(end_to_end([*features, h]), task.X_val, task.Y_val) for h in heads]
    return heads[int(np.argmin(vals))]


@dataclass
class Selected:
    """The early-stopped run chosen on ID validation loss, with its losses and embedding movement."""

    lr: float | None
    epoch: int
    val_loss: float
    id_loss: float
    ood_loss: float
    embed_move: float  # ||E - E0||_F / ||E0||_F of the selected run's final layers
    embed_move_perp: float  # ||(E - E0) P_perp||_F / ||E0||_F: movement on S_perp (0 for SGD, by the invariant)
    diverged_lrs: int


def _val_loss(W: np.ndarray, X: np.ndarray, Y: np.ndarray) -> float:
    r = X @ W.T - Y
    return float(np.mean(r * r))


def finetune(cfg: DeepConfig, task: DeepTask, pretrained: Layers, method: str, rng: np.random.Generator) -> Selected:
    """Fine-tune with `method` over its lr grid and select the run and epoch as the paper does.

    The start is the pretrained features with the task's fresh head (or the linear-probe head for
    LP and LP-FT); the selected run is the one with the lowest ID validation loss at its best epoch.

    Parameters
    ----------
    cfg : DeepConfig
        Fine-tuning epochs and batch size.
    task : DeepTask
        The downstream task.
    pretrained : list of ndarray
        Layers from `pretrain` (the pretraining head is dropped).
    method : str
        A key of DEEP_METHODS.
    rng : numpy.random.Generator
        Minibatch order, one stream through the whole grid.

    Returns
    -------
    Selected

    Raises
    ------
    KeyError
        An unknown method.
    RuntimeError
        Every learning rate of the grid diverged.

    References
    ----------
    .. [1] arXiv:2211.09359, Appendix A (grids, early stopping on ID validation).
    """
    m = DEEP_METHODS[method]
    features = pretrained[:-1]
    head = task.head
    if m.lp_head or m.optimizer is None:
        head = linear_probe(features, task)
    start = [*features, head]
    id_cov = task.id_basis @ task.id_basis.T
    eye = np.eye(cfg.d)
    if m.optimizer is None:
        W = end_to_end(start)
        return Selected(None, 0, _val_loss(W, task.X_val, task.Y_val), mse_of_map(W, task.w_star, id_cov),
                        mse_of_map(W, task.w_star, eye), 0.0, 0.0, 0)
    frozen = [True] + [False] * (len(start) - 1) if m.freeze_embed else None
    lr_mults = [m.embed_lr_mult] + [1.0] * (len(start) - 1)
    best: Selected | None = None
    diverged = 0
    for lr in m.lrs:
        res = train(start, task.X, task.Y, m.optimizer, lr, cfg.ft_epochs, cfg.ft_batch, rng, frozen=frozen,
                    lr_mults=lr_mults, **m.hparams)
        diverged += res.diverged
        if res.diverged:
            continue
        vals = [_val_loss(W, task.X_val, task.Y_val) for W in res.maps]
        epoch = int(np.argmin(vals))
        if best is None or vals[epoch] < best.val_loss:
            W = res.maps[epoch]
            dE, norm0 = res.layers[0] - start[0], np.linalg.norm(start[0])
            move = float(np.linalg.norm(dE) / norm0)
            move_perp = float(np.linalg.norm(dE @ (eye - id_cov)) / norm0)
            best = Selected(lr, epoch, vals[epoch], mse_of_map(W, task.w_star, id_cov),
                            mse_of_map(W, task.w_star, eye), move, move_perp, 0)
    if best is None:
        raise RuntimeError(f"{method}: every learning rate in {m.lrs} diverged")
    best.diverged_lrs = diverged
    return best


@dataclass
class SeedResult:
    """Everything measured on one task for one pretraining rule."""

    pretrainer: str
    pre_fit: float
    grad_norms: dict[str, list[float]]  # per normalization (GRAD_NORMALIZATIONS), layers bottom to top
    embed_ratio: dict[str, float]  # G_embed / max middle G, per normalization
    selected: dict[str, Selected]


def run_seed(cfg: DeepConfig, seed: int, pretrainers: tuple[str, ...], methods: tuple[str, ...]) -> list[SeedResult]:
    """One task (drawn from `seed`), pretrained with each rule, fine-tuned with each method.

    Parameters
    ----------
    cfg : DeepConfig
        The experiment's settings.
    seed : int
        Seeds the task, the pretraining, the gradient-norm minibatches and the fine-tuning streams.
    pretrainers, methods : tuple of str
        Keys of PRETRAINERS and DEEP_METHODS.

    Returns
    -------
    list of SeedResult
        One per pretrainer, in order.
    """
    out = []
    for pre in pretrainers:
        rng = np.random.default_rng([seed, 1])  # same task for every pretrainer
        task = make_deep_task(cfg, rng)
        layers, fit = pretrain(cfg, task, pre, np.random.default_rng([seed, 2]))
        gn = layer_grad_norms([*layers[:-1], task.head], task.X, task.Y, cfg.grad_batch, np.random.default_rng([seed, 3]))
        selected = {mth: finetune(cfg, task, layers, mth, np.random.default_rng([seed, 4])) for mth in methods}
        out.append(SeedResult(pre, fit, {k: gn.normalized(k).tolist() for k in GRAD_NORMALIZATIONS},
                              {k: gn.embed_outlier_ratio(k) for k in GRAD_NORMALIZATIONS}, selected))
    return out


def run_table(
    cfg: DeepConfig,
    seeds: list[int],
    pretrainers: tuple[str, ...] = tuple(PRETRAINERS),
    methods: tuple[str, ...] = tuple(DEEP_METHODS),
    progress: bool = False,
) -> dict[str, list[SeedResult]]:
    """The full pretrain x fine-tune x lr-grid x seed table.

    Parameters
    ----------
    cfg : DeepConfig
        The experiment's settings.
    seeds : list of int
        One task per seed (`run_seed`).
    pretrainers, methods : tuple of str
        Keys of PRETRAINERS and DEEP_METHODS (default: all).
    progress : bool
        Show a progress bar over seeds.

    Returns
    -------
    dict
        Pretrainer -> its SeedResult per seed.

    Raises
    ------
    KeyError
        An unknown pretrainer or method, before any computing.
    """
    for name in pretrainers:
        if name not in PRETRAINERS:
            raise KeyError(f"unknown pretrainer {name!r}; known: {sorted(PRETRAINERS)}")
    for name in methods:
        if name not in DEEP_METHODS:
            raise KeyError(f"unknown method {name!r}; known: {sorted(DEEP_METHODS)}")
    table: dict[str, list[SeedResult]] = {p: [] for p in pretrainers}
    for seed in tqdm(seeds, desc="deep table", disable=not progress):
        for res in run_seed(cfg, seed, pretrainers, methods):
            table[res.pretrainer].append(res)
    return table


def summarize(table: dict[str, list[SeedResult]]) -> dict[str, Any]:
    """Statistics over seeds of a `run_table` table.

    Parameters
    ----------
    table : dict
        Pretrainer -> list of SeedResult.

    Returns
    -------
    dict
        Per pretrainer: {"mean", "std", "sem"} of the embedding-gradient ratios (raw, param_norm),
        the pretraining fit, and per method of the OOD and ID loss, the embedding movement and,
        when AdamW fine-tuning was run, the paired log(OOD / OOD_adamw); plus the mean eq. 3.1
        norms per layer and normalization under "grad_norms".
    """
    out: dict[str, Any] = {}
    for pre, results in table.items():
        methods = results[0].selected.keys()
        out[pre] = {
            "embed_ratio_raw": _ms([r.embed_ratio["raw"] for r in results]),
            "embed_ratio_param_norm": _ms([r.embed_ratio["param_norm"] for r in results]),
            "pre_fit": _ms([r.pre_fit for r in results]),
            # eq. 3.1 per layer (embed, mid1.., head), mean over seeds, for the Figures 2-8 style plot
            "grad_norms": {kind: np.mean([r.grad_norms[kind] for r in results], axis=0).tolist()
                           for kind in results[0].grad_norms},
            **{m: {"ood": _ms([r.selected[m].ood_loss for r in results]),
                   "id": _ms([r.selected[m].id_loss for r in results]),
                   "embed_move": _ms([r.selected[m].embed_move for r in results]),
                   "embed_move_perp": _ms([r.selected[m].embed_move_perp for r in results]),
                   **({"log_ood_vs_adamw": _ms([np.log(r.selected[m].ood_loss / r.selected["adamw"].ood_loss)
                                                for r in results])} if "adamw" in methods else {})}
               for m in methods},
        }
    return out


def _ms(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    return {"mean": float(a.mean()), "std": std, "sem": std / np.sqrt(a.size)}


def _parse_override(text: str) -> tuple[str, Any]:
    """"key=value" with value parsed as a Python literal (numbers, tuples); strings stay strings."""
    import ast

    key, sep, value = text.partition("=")
    if not sep or key not in DeepConfig.__dataclass_fields__:
        raise argparse.ArgumentTypeError(f"expected key=value with key in {sorted(DeepConfig.__dataclass_fields__)}, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m theory.deep_experiment``."""
    parser = command_parser(
        "python -m theory.deep_experiment",
        "Two-stage deep-linear-net experiment (SGD paper, Appendix E): pretrain with SGD or AdamW, "
        "fine-tune with each method over its lr grid, select on ID validation loss with early stopping, "
        "report the OOD loss of the selected run.",
        ["python -m theory.deep_experiment --seeds 2",
         "python -m theory.deep_experiment --methods sgd sgd_freeze_embed adamw --set d=16 --json"],
    )
    parser.add_argument("--seeds", type=int, default=8, help="number of random problems (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="base seed; problem i uses seed base+i")
    parser.add_argument("--set", dest="overrides", type=_parse_override, action="append", default=[],
                        metavar="KEY=VALUE", help="override a DeepConfig field, e.g. --set widths=(64,64) --set d=16")
    parser.add_argument("--methods", nargs="+", default=list(DEEP_METHODS), choices=list(DEEP_METHODS), metavar="METHOD",
                        help=f"fine-tuning methods (default: all of {', '.join(DEEP_METHODS)})")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    return parser


def main(argv: list[str] | None = None) -> None:
    """CLI: print the pretrain x fine-tune table (OOD/ID loss mean +- std over seeds, selected lrs, grad ratios)."""
    args = build_parser().parse_args(argv)
    cfg = config_with(**dict(args.overrides))
    table = run_table(cfg, list(range(args.seed, args.seed + args.seeds)), methods=tuple(args.methods), progress=True)
    summary = summarize(table)
    if args.json:
        print(json.dumps({"config": config_dict(cfg), "summary": summary}, indent=1))
        return
    print(f"config: {config_dict(cfg)}")
    for pre, s in summary.items():
        print(f"\npretrained with {pre}: relative pretraining fit {s['pre_fit']['mean']:.1e}; G_embed/max G_mid "
              f"raw {s['embed_ratio_raw']['mean']:.2f} +- {s['embed_ratio_raw']['std']:.2f}, "
              f"per-param-norm {s['embed_ratio_param_norm']['mean']:.2f} +- {s['embed_ratio_param_norm']['std']:.2f}")
        for kind, values in s["grad_norms"].items():
            print(f"  eq. 3.1 {kind:<15} " + "  ".join(f"{v:.3g}" for v in values) + "  (embed, mid.., head)")
        print(f"  {'method':<13} {'OOD loss (+- std)':>19} {'log(OOD/adamw) +- sem':>22} {'ID loss':>9} "
              f"{'|dE|/|E0|':>9} {'on S_perp':>9}  selected lrs")
        for m in args.methods:
            lrs = [r.selected[m].lr for r in table[pre]]
            rel = s[m].get("log_ood_vs_adamw")
            rel_text = f"{rel['mean']:+.3f} +- {rel['sem']:.3f}" if rel else "-"
            print(f"  {m:<13} {s[m]['ood']['mean']:8.4f} +- {s[m]['ood']['std']:.4f} {rel_text:>22} "
                  f"{s[m]['id']['mean']:9.2e} {s[m]['embed_move']['mean']:9.3f} {s[m]['embed_move_perp']['mean']:9.3f}  {lrs}")


if __name__ == "__main__":
    main()
