#!/usr/bin/env bash
# Make random-weight versions of onnx's 9 light models, with expected outputs
# from ONNX Runtime (see make_random_models.py). Needs the light models from
# fetch-onnx-data.sh (run first, idempotent) and onnxruntime==1.32.0 from PyPI.
# Idempotent: returns at once when the data exist.
# Last line of stdout: "data: <dir>". Progress goes to stderr.
set -euo pipefail

ONNX_VERSION=1.23.2
ORT_VERSION=1.32.0
KANN_DATA="${KANN_DATA:-$HOME/.cache/kann-data}"
export KANN_DATA
DATA_DIR="$KANN_DATA/random-models-v1"
STAMP="$DATA_DIR/.complete"

if [[ -f "$STAMP" ]]; then
    echo "random-weight light models already present" >&2
    echo "data: $DATA_DIR"
    exit 0
fi

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$KANN_DATA/venv"
PY="$VENV/bin/python"
PIP_FLAGS=(--disable-pip-version-check --quiet)

# The light models (and the venv with onnx and numpy) come from fetch-onnx-data.sh.
ONNX_DATA="$("$SCRIPT_DIR/fetch-onnx-data.sh" | tail -n 1)"
ONNX_DATA="${ONNX_DATA#data: }"
if [[ ! -d "$ONNX_DATA/light" ]]; then
    echo "error: fetch-onnx-data.sh gave no light models in $ONNX_DATA" >&2
    exit 1
fi

if ! "$PY" -c "import numpy, onnx, onnxruntime, sys; sys.exit(onnx.__version__ != '$ONNX_VERSION' or onnxruntime.__version__ != '$ORT_VERSION')" >/dev/null 2>&1; then
    echo "installing onnxruntime==$ORT_VERSION into $VENV" >&2
    "$PY" -m pip install "${PIP_FLAGS[@]}" "onnx==$ONNX_VERSION" "onnxruntime==$ORT_VERSION" numpy >&2
fi

echo "generating random-weight models in $DATA_DIR" >&2
"$PY" "$SCRIPT_DIR/make_random_models.py" "$ONNX_DATA/light" "$DATA_DIR" >&2

if [[ ! -f "$STAMP" ]]; then
    echo "error: generation finished without writing $STAMP" >&2
    exit 1
fi
echo "data: $DATA_DIR"
