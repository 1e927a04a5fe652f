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
