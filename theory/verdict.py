"""One result type for every claim check, shared by theory, the paper's tables and our runs.

The claims ledger (`experiments`) joins these; each producer reports the same way.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from common.registry import Registry

VERDICTS = ("pass", "fail", "vacuous", "missing")


@dataclass
class ClaimResult:
    """Verdict of one claim check.

    verdict: "pass" (the statement held on every instance), "fail" (it was violated; numbers say
    where), "vacuous" (the check ran but the statement says nothing, e.g. a negative lower bound),
    "missing" (the check is not built or its data are absent; never counts as passing).
    numbers: the measured quantities behind the verdict (JSON-serialisable scalars).
    """

    claim: str
    verdict: str
    numbers: dict[str, Any] = field(default_factory=dict)
    detail: str = ""
    instances: int = 0
    violations: int = 0
    worst_margin: float | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "verdict": self.verdict,
            "instances": self.instances,
            "violations": self.violations,
            "worst_margin": self.worst_margin,
            "numbers": self.numbers,
            "detail": self.detail,
        }


ClaimCheck = Callable[..., ClaimResult]
"""Signature of a theory check: ``check(instances: int, seed: int) -> ClaimResult``.
Runs the claim over `instances` random problems drawn reproducibly from `seed`."""

#: claim id -> theory check; filled by @register_claim in the modules that implement checks.
CLAIM_CHECKS: Registry[ClaimCheck] = Registry("claim check")


def register_claim(claim_id: str) -> Callable[[ClaimCheck], ClaimCheck]:
    """Decorator registering a theory check for claim `claim_id` (e.g. "C1").

    Parameters
    ----------
    claim_id : str
        The claim the check decides; each id once (a second check raises ``KeyError``).

    Returns
    -------
    callable
        The decorator; it returns the check unchanged.
    """
    return CLAIM_CHECKS.register(claim_id)


#: modules whose import registers checks (with @register_claim); the one list every caller uses.
CHECK_MODULES = ("theory.claims", "theory.deep_claims", "theory.optimizer_memory")


def load_claim_checks() -> Registry[ClaimCheck]:
    """Import every module in :data:`CHECK_MODULES` and return the filled :data:`CLAIM_CHECKS`."""
    for name in CHECK_MODULES:
        importlib.import_module(name)
    return CLAIM_CHECKS
