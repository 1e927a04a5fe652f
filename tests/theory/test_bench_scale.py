"""benchmarks/bench_scale.py runs and prints its figures (a smoke run; no timed assertions)."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_prints_every_section():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_scale.py"), "--quick"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    for section in ("1. end-to-end", "max rel diff vs dense", "2. stiff FT", "3. python -m theory verify"):
        assert section in res.stdout
