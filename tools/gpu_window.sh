#!/bin/sh
# One GPU window: train the shipped architecture on a carried training pack for a wall-clock
# budget, writing fp16 weights, the log and the validation figures to OUT every 2 minutes.
#
#   tools/gpu_window.sh PACK MINUTES OUT [python -m lqz.train.device options...]
#
# Run from anywhere on a machine with torch, numpy, numba and safetensors (no pip, no network):
# lqz is imported from this checkout through tools/pythonpath. See README.md, "Training".
set -eu
if [ $# -lt 3 ]; then
    echo "usage: $0 PACK MINUTES OUT [lqz.train.device options]" >&2
    exit 1
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PACK=$1 MINUTES=$2 OUT=$3
shift 3
export PYTHONPATH="$ROOT/tools/pythonpath${PYTHONPATH:+:$PYTHONPATH}"
PYTHON=${PYTHON:-python3}
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
exec "$PYTHON" -m lqz.train.device --data "$PACK" --minutes "$MINUTES" --out "$OUT" "$@"
