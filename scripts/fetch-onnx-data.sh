#!/usr/bin/env bash
# Fetch/generate kann's ONNX conformance data (node tests + light models) from
# the onnx==1.23.2 wheel on PyPI. Idempotent: returns at once when the data exist.
# Last line of stdout: "data: <dir>". Progress goes to stderr.
set -euo pipefail

ONNX_VERSION=1.23.2
KANN_DATA="${KANN_DATA:-$HOME/.cache/kann-data}"
DATA_DIR="$KANN_DATA/onnx-$ONNX_VERSION"
STAMP="$DATA_DIR/.complete"

if [[ -f "$STAMP" ]]; then
    echo "onnx $ONNX_VERSION conformance data already present" >&2
    echo "data: $DATA_DIR"
    exit 0
fi

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$KANN_DATA/venv"
PY="$VENV/bin/python"
PIP_FLAGS=(--disable-pip-version-check --quiet)

make_venv() {
    rm -rf "$VENV"
    if python3 -m venv "$VENV" >&2 && "$PY" -m pip --version >/dev/null 2>&1; then
        return 0
    fi
    # Debian without python3-venv has no ensurepip: bootstrap virtualenv from PyPI.
    echo "python3 -m venv unusable; bootstrapping virtualenv from PyPI" >&2
    rm -rf "$VENV"
    local boot="$KANN_DATA/virtualenv-boot"
    python3 -m pip install "${PIP_FLAGS[@]}" --upgrade --target "$boot" virtualenv >&2
    PYTHONPATH="$boot" python3 -m virtualenv --quiet "$VENV" >&2
}

mkdir -p "$KANN_DATA"
if ! "$PY" -m pip --version >/dev/null 2>&1; then
    echo "creating venv $VENV" >&2
    make_venv
fi
if ! "$PY" -c "import numpy, onnx, sys; sys.exit(onnx.__version__ != '$ONNX_VERSION')" >/dev/null 2>&1; then
    echo "installing onnx==$ONNX_VERSION and numpy into $VENV" >&2
    "$PY" -m pip install "${PIP_FLAGS[@]}" "onnx==$ONNX_VERSION" numpy >&2
fi

echo "generating data in $DATA_DIR" >&2
"$PY" "$SCRIPT_DIR/fetch_onnx_data.py" "$DATA_DIR"

if [[ ! -f "$STAMP" ]]; then
    echo "error: generation finished without writing $STAMP" >&2
    exit 1
fi
echo "data: $DATA_DIR"
