#!/usr/bin/env bash
# The prepared GPU check (python -m pipeline gpucheck) in one call, packed for a device machine.
#
#   scripts/gpu_check.sh OUT [arguments of python -m pipeline gpucheck]
#
# Runs the check into a scratch folder under a hard time limit (GPUCHECK_TIMEOUT_S, default 450 s;
# the check itself starts nothing new after --deadline-s, default 390 s), then leaves in OUT the few
# files a device call brings back (at most 8): summary.md, summary.json, readme_table.md,
# gpucheck.log (nvidia-smi and the check's output) and gpucheck.tar.gz (the whole folder: row files,
# profile trace, CUDA tests' log and JUnit XML). Exit status: the check's (124 when cut off).
# Examples:
#   scripts/gpu_check.sh "$OUT" --commit 0123abc     # on one GPU (the device machine has no git)
#   scripts/gpu_check.sh /tmp/gpucheck --tiny --device cpu   # every stage on the CPU
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
out=$1
shift
# the project's venv here; on the device machine (no venv travels) the python3 that holds torch
py=.venv/bin/python
[ -x "$py" ] || py=python3
work=$(mktemp -d)
log=$work/gpucheck.log
mkdir -p "$work/gpucheck"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv 2>&1 | tee "$log"
fi
timeout --kill-after=20 "${GPUCHECK_TIMEOUT_S:-450}" "$py" -m pipeline gpucheck --out "$work/gpucheck" "$@" 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
mkdir -p "$out"
for f in summary.md summary.json readme_table.md; do
    [ -f "$work/gpucheck/$f" ] && cp "$work/gpucheck/$f" "$out/"
done
cp "$log" "$out/"
tar -czf "$out/gpucheck.tar.gz" -C "$work" gpucheck gpucheck.log
rm -rf "$work"
echo "gpu_check: exit $rc; files in $out: $(ls "$out" | tr '\n' ' ')"
exit "$rc"
