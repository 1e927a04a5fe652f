"""Claims C9-C12 (the freeze-embed mechanism) checked on the two-stage deep-linear-net experiment.

Each check runs `theory.deep_experiment.run_table` on min(instances, MAX_PROBLEMS) random problems
(one problem = one seed: pretraining task and init, shifted downstream task, fresh head), both
pretraining rules, the fine-tuning methods the claim needs; each problem's results are computed once
per process and shared by the four checks and by every problem count drawn from the same seed (the
problems of a smaller count are the first ones of a larger). Comparisons of OOD losses are paired per problem in
log space, r = log(OOD_a / OOD_b), with the tolerance LOG_TOL (about 5%) stated in every result.
C10-C12 are statements about averages (the paper's are averages over datasets). A claimed effect
("SGD is worse", "the gap is larger") must be established: mean - Z_SEM * sem > LOG_TOL, sem the
standard error over problems (0 for a single problem); a claimed absence ("matches", "gains
nothing") holds when the mean is within LOG_TOL. `violations` counts the problems on which the
statement fails alone. Verdicts report what the simulator finds; a "fail" carries its numbers.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from theory.deep_experiment import DeepConfig, SeedResult, run_table
from theory.deep_methods import PRETRAINERS
from theory.verdict import ClaimResult, register_claim

#: problems per check, whatever `instances` says (keeps `python -m theory verify` cheap).
MAX_PROBLEMS = 8
#: paired log-ratio tolerance: |log(a/b)| <= 0.05 counts as "equal" (about 5%).
LOG_TOL = 0.05
#: an effect counts as established when its mean exceeds the tolerance by Z_SEM standard errors.
Z_SEM = 2.0
_METHODS = ("sgd", "sgd_freeze_embed", "sgd_freeze_embed_no_momentum", "adamw", "adamw_freeze_embed")


@lru_cache(maxsize=4 * MAX_PROBLEMS)
def _problem(problem_seed: int) -> dict[str, list[SeedResult]]:
    """`run_table` of one problem (callers copy its lists, never change them)."""
    return run_table(DeepConfig(), [problem_seed], methods=_METHODS)


def _table(problems: int, seed: int) -> dict[str, list[SeedResult]]:
    """`run_table` on the first `problems` problem seeds drawn from `seed`, from the per-problem cache."""
    rows = [_problem(int(s)) for s in np.random.SeedSequence(seed).generate_state(problems)]
    return {pre: [res for row in rows for res in row[pre]] for pre in PRETRAINERS}


def _problems(instances: int) -> int:
    if instances < 1:
        raise ValueError(f"instances must be >= 1, got {instances}")
    return min(instances, MAX_PROBLEMS)


def _log_ratio(results: list[SeedResult], a: str, b: str) -> np.ndarray:
    """Per-problem log(OOD_a / OOD_b) of the selected runs."""
    return np.array([np.log(r.selected[a].ood_loss / r.selected[b].ood_loss) for r in results])


def _sem(a: np.ndarray) -> float:
    """Standard error of the mean over problems (0 for one problem)."""
    return float(a.std(ddof=1) / np.sqrt(a.size)) if a.size > 1 else 0.0


def _established(a: np.ndarray) -> tuple[bool, float]:
    """(mean - Z_SEM sem > LOG_TOL, that margin): is a positive paired effect established?"""
    margin = float(a.mean() - Z_SEM * _sem(a) - LOG_TOL)
    return margin > 0, margin


def c10_margin(res: list[SeedResult]) -> float:
    """C10's margin on AdamW-pretrained results: min(established SGD/AdamW gap, LOG_TOL - mean log(sgd_freeze_embed/adamw))."""
    return min(_established(_log_ratio(res, "sgd", "adamw"))[1],
               LOG_TOL - float(_log_ratio(res, "sgd_freeze_embed", "adamw").mean()))


def c11_margin(res: list[SeedResult]) -> float:
    """C11's margin on AdamW-pretrained results: LOG_TOL - mean log(OOD_adamw / OOD_adamw_freeze_embed)."""
    return LOG_TOL - float(_log_ratio(res, "adamw", "adamw_freeze_embed").mean())


def c12_margin(table: dict[str, list[SeedResult]]) -> float:
    """C12's margin: min over (gap after AdamW pretraining, its paired excess over SGD pretraining) of
    mean - Z_SEM sem - LOG_TOL."""
    g = {pre: _log_ratio(table[pre], "sgd", "adamw") for pre in ("sgd", "adamw")}
    return min(_established(g["adamw"])[1], _established(g["adamw"] - g["sgd"])[1])


def _ood_means(results: list[SeedResult]) -> dict[str, float]:
    return {m: float(np.mean([r.selected[m].ood_loss for r in results])) for m in results[0].selected}


def _scope(k: int) -> str:
    return f"{k} problems (min(instances, {MAX_PROBLEMS})), default DeepConfig, LOG_TOL={LOG_TOL}"


@register_claim("C9")
def check_c9(instances: int, seed: int) -> ClaimResult:
    """AdamW pretraining leaves the embedding with outlier gradients at init (eq. 3.1), SGD pretraining does not.

    Holds on a problem if G_embed / max_l G_mid > 1 after AdamW pretraining and exceeds the same ratio
    after SGD pretraining (raw norms; the two normalizations are reported).
    """
    k = _problems(instances)
    table = _table(k, seed)
    ra = np.array([r.embed_ratio["raw"] for r in table["adamw"]])
    rs = np.array([r.embed_ratio["raw"] for r in table["sgd"]])
    margins = ra - np.maximum(1.0, rs)
    violations = int(np.sum(margins <= 0))
    na = np.array([r.embed_ratio["param_norm"] for r in table["adamw"]])
    ns = np.array([r.embed_ratio["param_norm"] for r in table["sgd"]])
    held_normalized = int(np.sum(na - np.maximum(1.0, ns) > 0))
    numbers = {
        "problems_held_raw": k - violations,
        "mean_margin_raw": float(margins.mean()),
        "sem_margin_raw": _sem(margins),
        "problems_held_param_norm": held_normalized,
        "embed_ratio_raw_adamw_pre": float(ra.mean()),
        "embed_ratio_raw_sgd_pre": float(rs.mean()),
        **{f"embed_ratio_{kind}_{pre}_pre": float(np.mean([r.embed_ratio[kind] for r in table[pre]]))
           for kind in ("param_norm", "sqrt_numel") for pre in ("adamw", "sgd")},
    }
    return ClaimResult(
        "C9", "pass" if violations == 0 else "fail", numbers,
        f"G_embed/max G_mid (raw): AdamW-pretrained {ra.mean():.2f}, SGD-pretrained {rs.mean():.2f}, outlier "
        f"on {k - violations}/{k} problems; divided by ||theta_l|| (Fig. 4): {na.mean():.2f} vs {ns.mean():.2f}, "
        f"outlier on {held_normalized}/{k}; {_scope(k)}",
        instances=k, violations=violations, worst_margin=float(margins.min()),
    )


@register_claim("C10")
def check_c10(instances: int, seed: int) -> ClaimResult:
    """On AdamW-pretrained nets, SGD is worse than AdamW OOD and SGD-freeze-embed matches AdamW.

    Two parts: (a) the gap r = log(OOD_sgd/OOD_adamw) is established (mean - Z_SEM sem > LOG_TOL);
    (b) mean log(OOD_sgd_freeze_embed/OOD_adamw) <= LOG_TOL (freezing closes it). Fails if either part fails.
    """
    k = _problems(instances)
    res = _table(k, seed)["adamw"]
    gap = _log_ratio(res, "sgd", "adamw")
    closed = _log_ratio(res, "sgd_freeze_embed", "adamw")
    no_momentum = _log_ratio(res, "sgd_freeze_embed_no_momentum", "adamw")
    has_gap = _established(gap)[0]
    violations = int(np.sum(closed > LOG_TOL))
    numbers = {
        "mean_log_ood_sgd_over_adamw": float(gap.mean()),
        "sem_log_ood_sgd_over_adamw": _sem(gap),
        "mean_log_ood_sgd_freeze_embed_over_adamw": float(closed.mean()),
        "sem_log_ood_sgd_freeze_embed_over_adamw": _sem(closed),
        "mean_log_ood_sgd_freeze_embed_no_momentum_over_adamw": float(no_momentum.mean()),
        "embed_move_sgd": float(np.mean([r.selected["sgd"].embed_move for r in res])),
        "embed_move_adamw": float(np.mean([r.selected["adamw"].embed_move for r in res])),
        "embed_move_perp_adamw": float(np.mean([r.selected["adamw"].embed_move_perp for r in res])),
        **{f"ood_{m}": v for m, v in _ood_means(res).items()},
    }
    margin = c10_margin(res)
    detail = (
        f"AdamW-pretrained: OOD sgd {numbers['ood_sgd']:.3f}, adamw {numbers['ood_adamw']:.3f}, "
        f"sgd_freeze_embed {numbers['ood_sgd_freeze_embed']:.3f}, "
        f"sgd_freeze_embed_no_momentum {numbers['ood_sgd_freeze_embed_no_momentum']:.3f}; "
        f"gap log(sgd/adamw) {gap.mean():+.3f} +- {_sem(gap):.3f} sem "
        f"({'established' if has_gap else f'NOT established: mean - {Z_SEM:g} sem <= {LOG_TOL}'}); "
        f"log(sgd_freeze_embed/adamw) {closed.mean():+.3f} +- {_sem(closed):.3f}; embedding moved "
        f"{numbers['embed_move_sgd']:.2f} (SGD) vs {numbers['embed_move_adamw']:.2f} (AdamW, "
        f"{numbers['embed_move_perp_adamw']:.2f} of it on S_perp, where SGD cannot move it); {_scope(k)}"
    )
    return ClaimResult("C10", "pass" if margin > 0 else "fail", numbers, detail, instances=k,
                       violations=violations, worst_margin=margin)


@register_claim("C11")
def check_c11(instances: int, seed: int) -> ClaimResult:
    """On AdamW-pretrained nets, freezing the embedding gains AdamW nothing OOD.

    Holds if mean log(OOD_adamw / OOD_adamw_freeze_embed) <= LOG_TOL (freezing improves AdamW by at most ~5%).
    """
    k = _problems(instances)
    res = _table(k, seed)["adamw"]
    gain = _log_ratio(res, "adamw", "adamw_freeze_embed")
    sgd_gain = _log_ratio(res, "sgd", "sgd_freeze_embed")
    means = _ood_means(res)
    numbers = {"mean_log_gain_adamw_from_freeze_embed": float(gain.mean()), "sem_log_gain_adamw_from_freeze_embed": _sem(gain),
               "mean_log_gain_sgd_from_freeze_embed": float(sgd_gain.mean()),
               "ood_adamw": means["adamw"], "ood_adamw_freeze_embed": means["adamw_freeze_embed"]}
    detail = (f"AdamW-pretrained: OOD adamw {means['adamw']:.3f} vs adamw_freeze_embed {means['adamw_freeze_embed']:.3f} "
              f"(log gain from freezing {gain.mean():+.3f} +- {_sem(gain):.3f} sem; SGD's {sgd_gain.mean():+.3f}); "
              f"{_scope(k)}")
    margin = c11_margin(res)
    return ClaimResult("C11", "pass" if margin >= 0 else "fail", numbers, detail, instances=k,
                       violations=int(np.sum(gain > LOG_TOL)), worst_margin=margin)


@register_claim("C12")
def check_c12(instances: int, seed: int) -> ClaimResult:
    """The SGD-vs-AdamW fine-tuning gap comes from the pretrain/fine-tune optimizer mismatch.

    With g_pre = log(OOD_sgd / OOD_adamw) per problem after pretraining with `pre`: holds if both
    g_adamw (a gap after AdamW pretraining) and g_adamw - g_sgd (paired per problem: larger than after
    SGD pretraining) are established (mean - Z_SEM sem > LOG_TOL).
    """
    k = _problems(instances)
    table = _table(k, seed)
    g = {pre: _log_ratio(table[pre], "sgd", "adamw") for pre in ("sgd", "adamw")}
    diff = g["adamw"] - g["sgd"]
    gap_ok, diff_ok = _established(g["adamw"])[0], _established(diff)[0]
    margin = c12_margin(table)
    numbers = {
        "gap_after_adamw_pre": float(g["adamw"].mean()),
        "sem_gap_after_adamw_pre": _sem(g["adamw"]),
        "gap_after_sgd_pre": float(g["sgd"].mean()),
        "sem_gap_after_sgd_pre": _sem(g["sgd"]),
        "mismatch_effect": float(diff.mean()),
        "sem_mismatch_effect": _sem(diff),
        **{f"ood_{pre}_pre_{m}": v for pre in ("sgd", "adamw") for m, v in _ood_means(table[pre]).items()
           if m in ("sgd", "adamw", "sgd_freeze_embed")},
    }
    detail = (f"log(OOD sgd/adamw): after AdamW pretraining {g['adamw'].mean():+.3f} +- {_sem(g['adamw']):.3f} "
              f"({'established' if gap_ok else 'not established'}), after SGD pretraining {g['sgd'].mean():+.3f} "
              f"+- {_sem(g['sgd']):.3f}; paired difference {diff.mean():+.3f} +- {_sem(diff):.3f} "
              f"({'established' if diff_ok else 'not established'}); {_scope(k)}")
    return ClaimResult("C12", "pass" if margin > 0 else "fail", numbers, detail, instances=k,
                       violations=int(np.sum(np.minimum(g["adamw"], diff) <= LOG_TOL)), worst_margin=margin)
