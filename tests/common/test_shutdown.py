"""freeze_at_exit registers one atexit handler however often it is called, and the process still exits 0."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_freeze_at_exit_registers_one_handler():
    code = ("import atexit; n = atexit._ncallbacks(); from common.shutdown import freeze_at_exit; "
            "freeze_at_exit(); freeze_at_exit(); print(atexit._ncallbacks() - n)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"
