#!/usr/bin/env bash
# Seeds the ONNX-reader fuzz corpus with the node-test models (small, varied)
# from the fetched conformance data, then prints the command that fuzzes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
data=$(bash scripts/fetch-onnx-data.sh | tail -n 1 | sed 's/^data: //')
corpus=fuzz/corpus/onnx_import
mkdir -p "$corpus"
for d in "$data"/node/*/; do
    m="$d/model.onnx"
    [ -f "$m" ] && [ "$(stat -c %s "$m")" -lt 20000 ] && cp "$m" "$corpus/$(basename "$d").onnx"
done
echo "$(ls "$corpus" | wc -l) seeds in $corpus"
echo "run: (cd fuzz && cargo +nightly fuzz run onnx_import corpus/onnx_import -- -max_total_time=600 -rss_limit_mb=4096)"
