"""The shared result type and registry behave as every package relies on."""
import pytest

from common.registry import Registry
from theory.verdict import ClaimResult


def test_claim_result_rejects_unknown_verdict():
    with pytest.raises(ValueError, match="verdict"):
        ClaimResult("C1", "ok")


def test_registry_reports_known_names():
    reg: Registry[int] = Registry("widget")
    reg.add("a", 1)
    assert reg.get("a") == 1
    with pytest.raises(KeyError, match="known: a"):
        reg.get("b")
    with pytest.raises(KeyError, match="already"):
        reg.add("a", 2)


def test_registry_subscript_is_get():
    reg: Registry[int] = Registry("widget")
    reg.add("a", 1)
    assert reg["a"] == 1
    with pytest.raises(KeyError, match="unknown widget 'b'; known: a"):
        reg["b"]


def test_theory_registries_reject_a_second_entry_of_a_name():
    from theory.optim import OPTIMIZERS
    from theory.verdict import CLAIM_CHECKS, load_claim_checks, register_claim

    load_claim_checks()
    with pytest.raises(KeyError, match="claim check 'C1' is already registered"):
        register_claim("C1")(lambda instances, seed: None)
    assert CLAIM_CHECKS.names() and "C1" in CLAIM_CHECKS
    with pytest.raises(KeyError, match="optimizer 'sgd' is already registered"):
        OPTIMIZERS.add("sgd", OPTIMIZERS.get("adamw"))
