"""Theory figures from the linear-network simulator (``theory`` package): OOD loss over time for
LP / FT / LP-FT, the LP/FT OOD ratio as the feature error eps shrinks (Thm 3.4/3.5), and FT's lower
bound (Thm 3.2/3.3) against the actual min over t of its OOD error."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from paper_figs import style

PROBLEM = dict(d=40, k=3, n=12)
#: flow horizon: FT has fit the training data (train loss ~1e-5) by then on these problems; the
#: default horizon (~1e4) costs minutes per flow and changes min_t L_ood little.
T_MAX = 200.0


def ood_over_time_figure(eps: float = 0.05, seed: int = 0) -> Figure:
    """OOD loss against gradient-flow time: one line each for LP, FT and LP-FT on one problem."""
    from theory.flows import simulate
    from theory.problem import make_problem

    p = make_problem(**PROBLEM, eps=eps, ood="out_S", ood_share=0.99, seed=seed)
    fig, ax = style.plt.subplots(figsize=(5, 3.2))
    for method in ("lp", "ft", "lp_ft"):
        tr = simulate(p, method, t_max=T_MAX, n_times=60)
        ax.plot(tr.t, tr.ood_loss, label=style.label(method), color=style.color(method))
    ax.set_yscale("log")
    ax.set_xscale("symlog", linthresh=1e-2)
    ax.set_xlim(left=0.0)
    ax.set_xlabel("gradient-flow time t")
    ax.set_ylabel("OOD loss")
    ax.set_title(f"d={p.d}, k={p.k}, n={p.n}, eps={eps}")
    ax.legend()
    return fig


def ood_over_time(out_dir: Path, results=None, eps: float = 0.05, seed: int = 0) -> list[Path]:
    """Write :func:`ood_over_time_figure` as ``theory_ood_over_time.png`` and ``.pdf``."""
    return style.save(ood_over_time_figure(eps, seed), out_dir / "theory_ood_over_time.png")


def ratio_vs_eps_figure(seeds: int = 1) -> Figure:
    """L_ood(LP) / min_t L_ood(FT) against eps: one line (x = eps, y = the ratio) per problem seed."""
    from theory.flows import lp_limit, simulate
    from theory.problem import make_problem

    eps_grid = (0.4, 0.2, 0.1, 0.05, 0.025)
    fig, ax = style.plt.subplots(figsize=(5, 3.2))
    for seed in range(seeds):
        ratios = []
        for eps in eps_grid:
            p = make_problem(**PROBLEM, eps=eps, ood="out_S", ood_share=0.99, seed=seed)
            e_lp = p.B0.T @ lp_limit(p) - p.w_star
            lp_ood = float(e_lp @ p.Sigma @ e_lp)
            ft_ood = float(simulate(p, "ft", t_max=T_MAX, n_times=40).ood_loss.min())
            ratios.append(lp_ood / ft_ood)
        ax.plot(eps_grid, ratios, "o-", label=f"problem seed {seed}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("feature error eps")
    ax.set_ylabel("L_ood(LP) / min_t L_ood(FT)")
    ax.set_title("Thm 3.5: ratio -> 0 as eps -> 0")
    ax.legend()
    return fig


def ratio_vs_eps(out_dir: Path, results=None, seeds: int = 1) -> list[Path]:
    """Write :func:`ratio_vs_eps_figure` as ``theory_ratio_vs_eps.png`` and ``.pdf``."""
    return style.save(ratio_vs_eps_figure(seeds), out_dir / "theory_ratio_vs_eps.png")


def bound_vs_actual_figure(instances: int = 4) -> Figure:
    """FT's Thm 3.3 lower bound (y) against its actual min_t sqrt(L_ood) (x), one point per instance."""
    from theory.flows import simulate
    from theory.problem import make_problem
    from theory.quantities import ft_lower_bound

    bounds, actual = [], []
    for seed in range(instances):
        p = make_problem(**PROBLEM, eps=0.01, ood="identity", head_scale=1.0, seed=seed)
        bounds.append(ft_lower_bound(p))
        actual.append(float(np.sqrt(simulate(p, "ft", t_max=T_MAX, n_times=40).ood_loss.min())))
    fig, ax = style.plt.subplots(figsize=(4, 3.5))
    pos = [(b, a) for b, a in zip(bounds, actual)]
    ax.scatter([a for _, a in pos], [max(b, 1e-8) for b, _ in pos], color="black", s=14)
    lim = [min(actual) * 0.5, max(actual) * 2]
    ax.plot(lim, lim, "--", color="grey", label="bound = actual")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("actual min_t sqrt(L_ood(FT))")
    ax.set_ylabel("Thm 3.3 lower bound (<= 0 drawn at 1e-8)")
    ax.legend()
    return fig


def bound_vs_actual(out_dir: Path, results=None, instances: int = 4) -> list[Path]:
    """Write :func:`bound_vs_actual_figure` as ``theory_bound_vs_actual.png`` and ``.pdf``."""
    return style.save(bound_vs_actual_figure(instances), out_dir / "theory_bound_vs_actual.png")
