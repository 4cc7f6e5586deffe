#!/usr/bin/env bash
# kann's main job end to end on its embedded default: ResNet-50 as shipped in
# the onnx wheel (fetched from PyPI, cached). Builds kann, computes the golden
# output with the reference interpreter, proves it against ONNX's own expected
# output with `kann diff`, then runs the nine light models' conformance.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kann-target}"
step() { printf '\n== %s\n' "$*"; }

step "1/4 fetch the ONNX test data (onnx==1.23.2 from PyPI; cached after the first run)"
data=$(bash scripts/fetch-onnx-data.sh | tail -n 1 | sed 's/^data: //')
echo "data in $data"

step "2/4 build kann (release)"
cargo build --release --locked -p kann-cli
kann="$CARGO_TARGET_DIR/release/kann"

step "3/4 genref + diff on ResNet-50 (input arange(n)/n, as ONNX's runner feeds it)"
model="$data/light/resnet50"
io=$(mktemp -d)
"$kann" convert "$model/test_data_set_0/input_0.pb" -o "$io"
"$kann" convert "$model/test_data_set_0/output_0.pb" -o "$io/expected"
"$kann" genref "$model/model.onnx" "$io"
"$kann" diff "$io/genref" "$io/expected" --rtol 1e-3 --atol 1e-7

step "4/4 conformance of the nine light models"
"$kann" conformance "$data/light"
rm -rf "$io"
