#!/usr/bin/env bash
# The GPU check of SPEC section 6 (issue 14): run from the repository root with the project installed, on a
# machine with a CUDA GPU. Nothing is downloaded. About 2 minutes on one H100 (under 5); prints a Markdown
# table to paste into benchmarks/RESULTS.md. Arguments go to benchmarks/gpu_check.py, for example:
#
#   bash benchmarks/gpu_check.sh                        # the full check on cuda
#   bash benchmarks/gpu_check.sh --quick --json gpu.json
#   bash benchmarks/gpu_check.sh --device cpu --n 4 --points 2 --repeats 1 --batch-size 2 --compile-backend eager
#   bash benchmarks/gpu_check.sh --large                # a 1 B bf16 LM per --pristine mode (benchmarks/gpu_large.py)
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/gpu: /' || true
fi
if [ "${1:-}" = "--large" ]; then
  shift
  exec "${PYTHON:-python}" benchmarks/gpu_large.py "$@"
fi
exec "${PYTHON:-python}" benchmarks/gpu_check.py "$@"
