#!/usr/bin/env bash
# Issue 5's benchmark set in one `kann bench --vs-onnxruntime` run: the nine
# light models with random weights (scripts/make-random-models.sh) and the
# zoo's architectures (scripts/zoo-fetch.sh), kann against ONNX Runtime with
# the same number of threads, interleaved, in the same process run.
#   bash scripts/bench-set.sh [CLUSTERS (2)] [FRAMES (20)] [JSON_OUT]
# Needs a release build of kann (built here) and the data (fetched here,
# cached under ~/.cache/kann-data).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kann-target}"
clusters=${1:-2}
frames=${2:-20}
json=${3:-bench-${clusters}c.json}
random=$(bash scripts/make-random-models.sh | tail -n 1 | sed 's/^data: //')
zoo=(resnet50 regnet_x_1_6gf mobilenet_v2 efficientnet_b0 googlenet efficientnet-lite0)
for name in "${zoo[@]}"; do bash scripts/zoo-fetch.sh "$name" >/dev/null; done
cargo build --release --locked -q -p kann-cli
models=()
for name in resnet50 vgg19 inception_v2 densenet121 shufflenet squeezenet inception_v1 bvlc_alexnet zfnet512; do
    models+=("$random/light/$name/model.onnx")
done
for name in "${zoo[@]}"; do models+=("zoo/$name/network.yaml"); done
exec "$CARGO_TARGET_DIR/release/kann" bench "${models[@]}" --nbr-clusters "$clusters" -n "$frames" --warmup 3 \
    --vs-onnxruntime --json "$json"
