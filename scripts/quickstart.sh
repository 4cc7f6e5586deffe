#!/usr/bin/env bash
# kann's main job end to end on its embedded default: ResNet-50 (the ONNX
# architecture shipped in the onnx wheel, given random weights, with ONNX
# Runtime's output as a second opinion; everything from PyPI, cached).
# Builds kann, generates the network into a .kann artifact for two clusters,
# runs it on the runtime's pinned workers, computes the golden output with
# kann's reference interpreter and proves the compiled output against it and
# against ONNX Runtime with `kann diff`, then runs the conformance of the
# nine light models through the reference and the compiled path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kann-target}"
step() { printf '\n== %s\n' "$*"; }

step "1/6 fetch ONNX's test data and make the random-weight models (PyPI: onnx, onnxruntime; minutes the first time, cached after)"
data=$(bash scripts/fetch-onnx-data.sh | tail -n 1 | sed 's/^data: //')
random=$(bash scripts/make-random-models.sh | tail -n 1 | sed 's/^data: //')
echo "data in $data and $random"

step "2/6 build kann (release)"
cargo build --release --locked -p kann-cli
kann="$CARGO_TARGET_DIR/release/kann"

model="$random/light/resnet50"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step "3/6 generate ResNet-50 for 2 clusters (passes, lowering, memory plan, schedule, .kann artifact)"
"$kann" generate "$model/model.onnx" -d "$work/gen" --nbr-clusters 2 --arch generic

step "4/6 run it on the runtime (pinned workers) on ONNX Runtime's test input"
"$kann" convert "$model/test_data_set_0/input_0.pb" -o "$work/io"
"$kann" convert "$model/test_data_set_0/output_0.pb" -o "$work/onnxruntime"
"$kann" run "$work/gen" "$work/io" --nb-frames 3

step "5/6 prove it: golden output from kann's reference interpreter, then kann diff (compiled vs reference, compiled vs ONNX Runtime)"
"$kann" genref "$work/gen" "$work/io"
"$kann" diff "$work/io" "$work/io/genref" --top-k 5
"$kann" diff "$work/io" "$work/onnxruntime" --rtol 1e-3 --atol 1e-5 --top-k 5

step "6/6 conformance of the nine light models, reference and compiled (ONNX's expected outputs, then ORT's on random weights)"
"$kann" conformance "$data/light" --compiled
"$kann" conformance "$random/light" --compiled
