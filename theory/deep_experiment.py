"""Two-stage experiment on deep linear nets: pretrain with SGD or AdamW, fine-tune on a shifted task.

Why: mirrors Appendix E of "How to Fine-Tune Vision Models with SGD" (BiT-ResNet pretrained with SGD
vs AdamW, then fine-tuned with SGD / AdamW / SGD-freeze-embed, Tables 13-14) in a model where every
quantity is exact, so the freeze-embed mechanism can be tested and its ingredients varied.

DeepTask (one per seed, `make_deep_task`):
- pretraining: x ~ N(0, s^2 I_d) (s = ``pre_input_scale``), targets M* x with M* = A B* (``pre_out``
  outputs, rank ``rank``, B* orthonormal rows); the net [E, W_1..W_L, V_pre] starts from Gaussian layers of std
  ``init_scale / sqrt(fan_in)`` and is trained with the pretraining rule (fixed lr, cosine schedule);
- fine-tuning: scalar labels y = w* x, w* = v*^T B* + ``feature_shift`` * (a unit direction outside
  rowspace(B*)), scaled to ||w*|| = 1; ID inputs x = P_S z on a random ``id_dim``-dimensional subspace
  S (n_train train, n_val validation points); OOD inputs x ~ N(0, I_d), so the OOD loss is exactly
  ||W - w*||^2 and the ID loss (W - w*) P_S (W - w*)^T. The pretrained head is replaced by a random
  one of std ``head_scale / sqrt(fan_in)`` (as the paper replaces the classifier).

Selection (as the paper, Appendix A): each method sweeps its learning-rate grid with a cosine
schedule; the run and epoch with the lowest ID validation loss (early stopping, ties to the earliest)
is selected, and its OOD loss is reported. Diverged runs are never selected. LP is a ridge head on the
frozen pretrained features with its L2 strength selected the same way; LP-FT fine-tunes from it.
Layer gradient norms at the pretrained init follow eq. 3.1 (`theory.deep.layer_grad_norms`).

Run: ``python -m theory.deep_experiment --seeds 8 [--set widths=(64,64) --set init_scale=0.1]``.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from tqdm import tqdm

from common.grad_norms import GRAD_NORMALIZATIONS
from theory.deep import Layers, end_to_end, init_layers, layer_grad_norms, mse_of_map, train

#: six-point grids as the paper's Appendix A, placed for this model's scale (selected lrs land inside).
SGD_LRS = (3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
ADAMW_LRS = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
#: layer-wise rules step by lr * (trust ratio) relative to ||w||: LARS's trust_coeff 1e-3 needs lr ~ 1-100.
LARS_LRS = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
LAMB_LRS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)


@dataclass(frozen=True)
class DeepConfig:
    """Dimensions and training settings of the two-stage experiment (defaults: the claims' setting).

    The default shape puts few parameters in the embedding (E: 16 x 16 = 256 entries, W_1: 1024,
    W_2: 4096; a ViT-B patch embedding is 0.7% of the model), the ingredient that produces AdamW's
    embedding-gradient outlier (see README / C9). E is square, so freezing it loses no expressivity.
    """

    d: int = 16
    embed_dim: int = 16
    widths: tuple[int, ...] = (64, 64)
    pre_out: int = 8
    rank: int = 4
    init_scale: float = 0.3
    pre_n: int = 512
    pre_input_scale: float = 1.0  # pretraining inputs ~ N(0, pre_input_scale^2 I); downstream stay unit scale
    pre_epochs: int = 30
    pre_batch: int = 32
    pre_lr: tuple[tuple[str, float], ...] = (("sgd", 3e-3), ("adamw", 3e-3))
    id_dim: int = 6
    n_train: int = 32
    n_val: int = 32
    feature_shift: float = 0.3
    head_scale: float = 0.1
    ft_epochs: int = 20
    ft_batch: int = 8
    grad_batch: int = 8

    def pretrain_lr(self, pretrainer: str) -> float:
        """The fixed pretraining learning rate of `pretrainer`."""
        return dict(self.pre_lr)[pretrainer]


@dataclass(frozen=True)
class Pretrainer:
    """A pretraining rule: theory.optim name and hyperparameters (the paper's torch defaults)."""

    optimizer: str
    hparams: dict[str, float] = field(default_factory=dict)


PRETRAINERS: dict[str, Pretrainer] = {
    "sgd": Pretrainer("sgd", {"momentum": 0.9}),
    "adamw": Pretrainer("adamw", {"weight_decay": 0.01}),
}


@dataclass(frozen=True)
class DeepMethod:
    """A fine-tuning recipe: optimizer, which layers train, head initialization, lr grid."""

    optimizer: str | None  # None: closed-form linear probe, no training
    hparams: dict[str, float] = field(default_factory=dict)
    freeze_embed: bool = False
    embed_lr_mult: float = 1.0  # lr multiplier on the embedding (the paper's "5x lower LR on embed": 0.2)
    lp_head: bool = False  # start from the linear-probe head (LP-FT)
    lrs: tuple[float, ...] = ()


DEEP_METHODS: dict[str, DeepMethod] = {
    "sgd": DeepMethod("sgd", {"momentum": 0.9}, lrs=SGD_LRS),
    "sgd_freeze_embed": DeepMethod("sgd", {"momentum": 0.9}, freeze_embed=True, lrs=SGD_LRS),
    "sgd_freeze_embed_no_momentum": DeepMethod("sgd", {}, freeze_embed=True, lrs=SGD_LRS),
    "sgd_embed_lr_div5": DeepMethod("sgd", {"momentum": 0.9}, embed_lr_mult=0.2, lrs=SGD_LRS),
    "adamw": DeepMethod("adamw", {"weight_decay": 0.01}, lrs=ADAMW_LRS),
    "adamw_freeze_embed": DeepMethod("adamw", {"weight_decay": 0.01}, freeze_embed=True, lrs=ADAMW_LRS),
    "lars": DeepMethod("lars", {"momentum": 0.9}, lrs=LARS_LRS),  # the paper's Table 5 baselines
    "lamb": DeepMethod("lamb", {"weight_decay": 0.01}, lrs=LAMB_LRS),
    "lp": DeepMethod(None),  # ridge head, L2 strength selected on ID validation (RIDGES)
    # LP-FT: SGD from the LP head with the SGD grid divided by 10, as the paper's Appendix A.
    "lp_ft": DeepMethod("sgd", {"momentum": 0.9}, lp_head=True, lrs=tuple(lr / 10 for lr in SGD_LRS)),
}


@dataclass
class DeepTask:
    """One random instance: pretraining data and init, downstream task, fresh head."""

    pre_X: np.ndarray
    pre_Y: np.ndarray
    pre_init: Layers
    w_star: np.ndarray  # (1, d)
    id_basis: np.ndarray  # (d, id_dim), orthonormal basis of S
    X: np.ndarray
    Y: np.ndarray
    X_val: np.ndarray
    Y_val: np.ndarray
    head: np.ndarray  # (1, h_L) random fine-tuning head
    pre_target: np.ndarray  # M*


def make_deep_task(cfg: DeepConfig, rng: np.random.Generator) -> DeepTask:
    """Draw one problem (see module docstring)."""
    if not cfg.rank < cfg.d or not cfg.id_dim < cfg.d:
        raise ValueError(f"need rank < d and id_dim < d, got {cfg}")
    basis = np.linalg.qr(rng.standard_normal((cfg.d, cfg.rank + 1)))[0]
    B_star, outside = basis[:, : cfg.rank].T, basis[:, cfg.rank]
    M_star = rng.standard_normal((cfg.pre_out, cfg.rank)) @ B_star
    pre_X = cfg.pre_input_scale * rng.standard_normal((cfg.pre_n, cfg.d))
    pre_init = init_layers(cfg.d, cfg.embed_dim, list(cfg.widths), cfg.pre_out, cfg.init_scale, rng)
    w = rng.standard_normal(cfg.rank) @ B_star
    w = w / np.linalg.norm(w) + cfg.feature_shift * outside
    w_star = (w / np.linalg.norm(w))[None, :]
    S = np.linalg.qr(rng.standard_normal((cfg.d, cfg.id_dim)))[0]
    X = rng.standard_normal((cfg.n_train, cfg.id_dim)) @ S.T
    X_val = rng.standard_normal((cfg.n_val, cfg.id_dim)) @ S.T
    head = init_layers(cfg.d, cfg.embed_dim, list(cfg.widths), 1, cfg.head_scale, rng)[-1]
    return DeepTask(pre_X, pre_X @ M_star.T, pre_init, w_star, S, X, X @ w_star.T, X_val, X_val @ w_star.T, head, M_star)


def pretrain(cfg: DeepConfig, task: DeepTask, pretrainer: str, rng: np.random.Generator) -> tuple[Layers, float]:
    """Pretrain with `pretrainer`; returns the layers and the relative pretraining fit ||W - M*||_F^2 / ||M*||_F^2."""
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
    """Run `method` over its lr grid from the pretrained layers and the problem's fresh head; select as the paper."""
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
    """Everything measured on one problem for one pretraining rule."""

    pretrainer: str
    pre_fit: float
    grad_norms: dict[str, list[float]]  # per normalization (GRAD_NORMALIZATIONS), layers bottom to top
    embed_ratio: dict[str, float]  # G_embed / max middle G, per normalization
    selected: dict[str, Selected]


def run_seed(cfg: DeepConfig, seed: int, pretrainers: tuple[str, ...], methods: tuple[str, ...]) -> list[SeedResult]:
    """One problem (drawn from `seed`), pretrained with each rule, fine-tuned with each method."""
    out = []
    for pre in pretrainers:
        rng = np.random.default_rng([seed, 1])  # same problem for every pretrainer
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
    """The full pretrain x fine-tune x lr-grid x seed table: pretrainer -> per-seed results."""
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
    """Mean, std and standard error over seeds of OOD / ID loss per (pretrainer, method), the paired
    log(OOD / OOD_adamw) when AdamW fine-tuning was run, and the embedding-gradient ratios."""
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


def config_with(**overrides: Any) -> DeepConfig:
    """DeepConfig with some fields replaced (lists become tuples)."""
    return replace(DeepConfig(), **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})


def config_dict(cfg: DeepConfig) -> dict[str, Any]:
    """The config as a JSON-ready dict (for provenance in printed / saved summaries)."""
    return asdict(cfg)


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


def main(argv: list[str] | None = None) -> None:
    """CLI: print the pretrain x fine-tune table (OOD/ID loss mean +- std over seeds, selected lrs, grad ratios)."""
    parser = argparse.ArgumentParser(
        prog="python -m theory.deep_experiment",
        description="Two-stage deep-linear-net experiment (SGD paper, Appendix E): pretrain with SGD or AdamW, "
        "fine-tune with each method over its lr grid, select on ID validation loss with early stopping, "
        "report the OOD loss of the selected run.",
    )
    parser.add_argument("--seeds", type=int, default=8, help="number of random problems (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="base seed; problem i uses seed base+i")
    parser.add_argument("--set", dest="overrides", type=_parse_override, action="append", default=[],
                        metavar="KEY=VALUE", help="override a DeepConfig field, e.g. --set widths=(64,64) --set d=16")
    parser.add_argument("--methods", nargs="+", default=list(DEEP_METHODS), choices=list(DEEP_METHODS))
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    args = parser.parse_args(argv)
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
