#!/usr/bin/env bash
# Set up (if needed) and run the main job on the embedded default: theory verification,
# a small real deep-net comparison on offline data, the claims report and the figures.
# Extra arguments go to `python -m pipeline main` (see its --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pipeline main "$@"
