"""Claims C9-C12 (the freeze-embed mechanism) checked on the two-stage deep-linear-net experiment.

Each check runs `theory.deep_experiment.run_table` on min(instances, MAX_PROBLEMS) random problems
(one problem = one seed: pretraining task and init, shifted downstream task, fresh head), both
pretraining rules, the fine-tuning methods the claim needs; the table is computed once per
(problems, seed) and shared by the four checks. Comparisons of OOD losses are paired per problem in
log space, r = log(OOD_a / OOD_b), with the tolerance LOG_TOL (about 5%) stated in every result.
C10-C12 are statements about averages (the paper's are averages over datasets): their verdict uses
the mean of r over problems; `violations` counts the problems on which the statement fails alone.
Verdicts report what the simulator finds; a "fail" carries the numbers behind it.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from theory.deep_experiment import DeepConfig, SeedResult, run_table
from theory.verdict import ClaimResult, register_claim

#: problems per check, whatever `instances` says (keeps `python -m theory verify` cheap).
MAX_PROBLEMS = 8
#: paired log-ratio tolerance: |log(a/b)| <= 0.05 counts as "equal" (about 5%).
LOG_TOL = 0.05
_METHODS = ("sgd", "sgd_fe", "sgd_fe_nomom", "adamw", "adamw_fe")


@lru_cache(maxsize=4)
def _table(problems: int, seed: int) -> dict[str, list[SeedResult]]:
    seeds = [int(s) for s in np.random.SeedSequence(seed).generate_state(problems)]
    return run_table(DeepConfig(), seeds, methods=_METHODS)


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
    numbers = {
        "embed_ratio_raw_adamw_pre": float(ra.mean()),
        "embed_ratio_raw_sgd_pre": float(rs.mean()),
        **{f"embed_ratio_{kind}_{pre}_pre": float(np.mean([r.embed_ratio[kind] for r in table[pre]]))
           for kind in ("per_param_norm", "per_sqrt_numel") for pre in ("adamw", "sgd")},
    }
    return ClaimResult(
        "C9", "pass" if violations == 0 else "fail", numbers,
        f"G_embed/max G_mid (raw): AdamW-pretrained {ra.mean():.2f}, SGD-pretrained {rs.mean():.2f} "
        f"(per-param-norm {numbers['embed_ratio_per_param_norm_adamw_pre']:.2f} vs "
        f"{numbers['embed_ratio_per_param_norm_sgd_pre']:.2f}); {_scope(k)}",
        instances=k, violations=violations, worst_margin=float(margins.min()),
    )


@register_claim("C10")
def check_c10(instances: int, seed: int) -> ClaimResult:
    """On AdamW-pretrained nets, SGD is worse than AdamW OOD and SGD-freeze-embed matches AdamW.

    Two parts: (a) mean log(OOD_sgd/OOD_adamw) > LOG_TOL (a gap exists); (b) mean
    log(OOD_sgd_fe/OOD_adamw) <= LOG_TOL (freezing closes it). Fails if either part fails.
    """
    k = _problems(instances)
    res = _table(k, seed)["adamw"]
    gap = _log_ratio(res, "sgd", "adamw")
    closed = _log_ratio(res, "sgd_fe", "adamw")
    nomom = _log_ratio(res, "sgd_fe_nomom", "adamw")
    violations = int(np.sum(closed > LOG_TOL))
    has_gap = bool(gap.mean() > LOG_TOL)
    numbers = {
        "mean_log_ood_sgd_over_adamw": float(gap.mean()),
        "sem_log_ood_sgd_over_adamw": _sem(gap),
        "mean_log_ood_sgdfe_over_adamw": float(closed.mean()),
        "sem_log_ood_sgdfe_over_adamw": _sem(closed),
        "mean_log_ood_sgdfe_nomom_over_adamw": float(nomom.mean()),
        "embed_move_sgd": float(np.mean([r.selected["sgd"].embed_move for r in res])),
        "embed_move_adamw": float(np.mean([r.selected["adamw"].embed_move for r in res])),
        **{f"ood_{m}": v for m, v in _ood_means(res).items()},
    }
    verdict = "pass" if has_gap and closed.mean() <= LOG_TOL else "fail"
    detail = (
        f"AdamW-pretrained: OOD sgd {numbers['ood_sgd']:.3f}, adamw {numbers['ood_adamw']:.3f}, "
        f"sgd_fe {numbers['ood_sgd_fe']:.3f}, sgd_fe_nomom {numbers['ood_sgd_fe_nomom']:.3f}; "
        f"gap log(sgd/adamw) {gap.mean():+.3f} +- {_sem(gap):.3f} sem ({'present' if has_gap else 'ABSENT: SGD is not worse than AdamW here'}); "
        f"log(sgd_fe/adamw) {closed.mean():+.3f} +- {_sem(closed):.3f}, matches/beats AdamW on {k - violations}/{k} problems; {_scope(k)}"
    )
    return ClaimResult("C10", verdict, numbers, detail, instances=k, violations=violations,
                       worst_margin=float(min(gap.mean() - LOG_TOL, LOG_TOL - closed.mean())))


@register_claim("C11")
def check_c11(instances: int, seed: int) -> ClaimResult:
    """On AdamW-pretrained nets, freezing the embedding gains AdamW nothing OOD.

    Holds if mean log(OOD_adamw / OOD_adamw_fe) <= LOG_TOL (freezing improves AdamW by at most ~5%).
    """
    k = _problems(instances)
    res = _table(k, seed)["adamw"]
    gain = _log_ratio(res, "adamw", "adamw_fe")
    sgd_gain = _log_ratio(res, "sgd", "sgd_fe")
    violations = int(np.sum(gain > LOG_TOL))
    means = _ood_means(res)
    numbers = {"mean_log_gain_adamw_from_fe": float(gain.mean()), "sem_log_gain_adamw_from_fe": _sem(gain),
               "mean_log_gain_sgd_from_fe": float(sgd_gain.mean()),
               "ood_adamw": means["adamw"], "ood_adamw_fe": means["adamw_fe"]}
    detail = (f"AdamW-pretrained: OOD adamw {means['adamw']:.3f} vs adamw_fe {means['adamw_fe']:.3f} "
              f"(log gain from freezing {gain.mean():+.3f} +- {_sem(gain):.3f} sem; SGD's {sgd_gain.mean():+.3f}); {_scope(k)}")
    return ClaimResult("C11", "pass" if gain.mean() <= LOG_TOL else "fail", numbers, detail, instances=k,
                       violations=violations, worst_margin=float(LOG_TOL - gain.mean()))


@register_claim("C12")
def check_c12(instances: int, seed: int) -> ClaimResult:
    """The SGD-vs-AdamW fine-tuning gap comes from the pretrain/fine-tune optimizer mismatch.

    With g(pre) = mean log(OOD_sgd / OOD_adamw) after pretraining with `pre`: holds if
    g(adamw) > LOG_TOL (a gap after AdamW pretraining) and g(adamw) - g(sgd) > LOG_TOL (larger than after SGD pretraining).
    """
    k = _problems(instances)
    table = _table(k, seed)
    g = {pre: _log_ratio(table[pre], "sgd", "adamw") for pre in ("sgd", "adamw")}
    margin = min(g["adamw"].mean() - LOG_TOL, g["adamw"].mean() - g["sgd"].mean() - LOG_TOL)
    numbers = {
        "gap_after_adamw_pre": float(g["adamw"].mean()),
        "sem_gap_after_adamw_pre": _sem(g["adamw"]),
        "gap_after_sgd_pre": float(g["sgd"].mean()),
        "sem_gap_after_sgd_pre": _sem(g["sgd"]),
        **{f"ood_{pre}_pre_{m}": v for pre in ("sgd", "adamw") for m, v in _ood_means(table[pre]).items()
           if m in ("sgd", "adamw", "sgd_fe")},
    }
    detail = (f"log(OOD sgd/adamw): after AdamW pretraining {g['adamw'].mean():+.3f} +- {_sem(g['adamw']):.3f}, "
              f"after SGD pretraining {g['sgd'].mean():+.3f} +- {_sem(g['sgd']):.3f} (sem); {_scope(k)}")
    return ClaimResult("C12", "pass" if margin > 0 else "fail", numbers, detail, instances=k,
                       violations=int(margin <= 0), worst_margin=float(margin))
