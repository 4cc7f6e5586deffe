#!/usr/bin/env bash
# kann's main job end to end on its embedded default: ResNet-50 (the ONNX
# architecture shipped in the onnx wheel, given random weights, with ONNX
# Runtime's output as the expected answer; everything from PyPI, cached).
# Builds kann, computes the golden output with kann's reference interpreter,
# proves it against ONNX Runtime with `kann diff`, then runs the conformance
# of the nine light models (ONNX's expected outputs and ORT's).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kann-target}"
step() { printf '\n== %s\n' "$*"; }

step "1/4 fetch ONNX's test data and make the random-weight models (PyPI: onnx, onnxruntime; minutes the first time, cached after)"
data=$(bash scripts/fetch-onnx-data.sh | tail -n 1 | sed 's/^data: //')
random=$(bash scripts/make-random-models.sh | tail -n 1 | sed 's/^data: //')
echo "data in $data and $random"

step "2/4 build kann (release)"
cargo build --release --locked -p kann-cli
kann="$CARGO_TARGET_DIR/release/kann"

step "3/4 ResNet-50: kann's reference interpreter vs ONNX Runtime (genref + diff)"
model="$random/light/resnet50"
io=$(mktemp -d)
"$kann" convert "$model/test_data_set_0/input_0.pb" -o "$io"
"$kann" convert "$model/test_data_set_0/output_0.pb" -o "$io/onnxruntime"
"$kann" genref "$model/model.onnx" "$io"
"$kann" diff "$io/genref" "$io/onnxruntime" --rtol 1e-3 --atol 1e-5 --top-k 5

step "4/4 conformance of the nine light models (ONNX's expected outputs, then ORT's on random weights)"
"$kann" conformance "$data/light"
"$kann" conformance "$random/light"
rm -rf "$io"
