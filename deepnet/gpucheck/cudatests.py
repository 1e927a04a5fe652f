"""Run the CUDA tests (``pytest -m cuda tests/cuda``) in a child process and read their outcome."""
from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from common.io import write_text

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests" / "cuda"


def parse_junit(path: Path) -> dict[str, Any]:
    """Counts and per-test outcomes of a pytest JUnit XML report.

    Returns
    -------
    dict
        ``passed``, ``failed``, ``errors``, ``skipped`` and ``cases``: one ``{name, outcome,
        message, seconds}`` per test case (outcome ``passed``, ``failed``, ``error`` or ``skipped``).
    """
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                message = child.get("message") or (child.text or "")
                break
        cases.append({"name": f"{case.get('classname', '')}::{case.get('name')}", "outcome": outcome,
                      "message": message.strip(), "seconds": float(case.get("time", 0.0))})
    count = {o: sum(c["outcome"] == o for c in cases) for o in ("passed", "failed", "error", "skipped")}
    return {"passed": count["passed"], "failed": count["failed"], "errors": count["error"],
            "skipped": count["skipped"], "cases": cases}


def run_cuda_tests(out: Path, timeout_s: float) -> dict[str, Any]:
    """``pytest -m cuda tests/cuda`` with its log (``cuda_tests.log``) and JUnit XML in ``out``.

    Raises
    ------
    FileNotFoundError
        Where the repository's ``tests/cuda`` is absent (an installed package, not a checkout).
    subprocess.TimeoutExpired
        Where the tests run past ``timeout_s``.
    """
    if not TESTS.is_dir():
        raise FileNotFoundError(f"{TESTS} not found: the CUDA tests run from a checkout of the repository")
    xml = out / "cuda_tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", str(TESTS.relative_to(REPO)), "-q", "-rA",
           "-p", "no:cacheprovider", f"--junitxml={xml}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    write_text(out / "cuda_tests.log", proc.stdout + proc.stderr)
    if not xml.is_file():
        raise RuntimeError(f"pytest wrote no report (exit {proc.returncode}): {(proc.stdout + proc.stderr)[-500:]}")
    return {"returncode": proc.returncode, "command": "python " + " ".join(cmd[1:6]), **parse_junit(xml)}
