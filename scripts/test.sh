#!/usr/bin/env bash
# Set up (if needed) and run the test suite. Extra arguments go to pytest.
# The tests run in one pytest-xdist worker per core (PYTEST_WORKERS=N to choose; 0 runs them in this
# process), each worker on one BLAS / torch thread so that the workers do not compete for the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
workers=${PYTEST_WORKERS:-auto}
if [ "$workers" != 0 ]; then
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
fi
# The suite starts many interpreters (sweep workers, DDP ranks, CLIs): let them reuse compiled
# bytecode (__pycache__, git-ignored) instead of compiling the repo's modules again in each one.
unset PYTHONDONTWRITEBYTECODE
# Every interpreter the suite starts reads tests/startup/sitecustomize.py (fewer garbage collections
# while it imports torch and timm).
export PYTHONPATH="$PWD/tests/startup${PYTHONPATH:+:$PYTHONPATH}"
set +e
.venv/bin/python -m pytest -q -n "$workers" --dist worksteal "$@"
rc=$?
set -e
# pytest exits 5 when it collected no tests: that is not a failure of the code.
if [ "$rc" = 5 ]; then echo "no tests collected"; exit 0; fi
exit "$rc"
