#!/usr/bin/env bash
# Create .venv and install everything the project needs, on a fresh machine.
# Idempotent: a second call only checks. Torch is pinned to the release that the
# package index serves for this platform (a CUDA build that also runs on CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# Installed = findable: a check by import would spend half a minute loading torch and timm on every call.
installed() {
    .venv/bin/python -c 'import importlib.util, sys
sys.exit(any(importlib.util.find_spec(name) is None for name in sys.argv[1:]))' "$@" 2>/dev/null
}
if ! installed torch torchvision timm open_clip sympy pytest pytest_timeout xdist sklearn skimage mlxtend submitit tqdm \
        networkx pandas pytz tensorboard; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q "torch==2.14.1" "torchvision==0.29.1"
    .venv/bin/pip install -q -e ".[dev]"
fi
# Reference packages the split tests compare against (robustness: BREEDS Living-17; wilds: FMoW,
# Camelyon17). --no-deps: their declared dependencies (cox, tables, tensorboardX, ogb, ...) serve code
# the tests never import; the dev extras carry what the tested modules do import.
if ! installed robustness wilds.datasets.fmow_dataset; then
    .venv/bin/pip install -q --no-deps "robustness==1.2.1.post2" "wilds==2.0.0"
fi
# Fashion-MNIST ships as a Debian data package; install it where we may.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
        || echo "note: could not install dataset-fashion-mnist; Fashion-MNIST benchmarks will be skipped" >&2
fi
