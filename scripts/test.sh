#!/usr/bin/env bash
# The whole test suite: fetch the ONNX conformance data, make the
# random-weight models and fetch the zoo networks the tests run (all cached
# under ~/.cache/kann-data), then run every test of the workspace, the
# conformance allow-list and the real networks included.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kann-target}"
bash scripts/fetch-onnx-data.sh >/dev/null
# Random-weight versions of the light models, with ONNX Runtime's outputs.
bash scripts/make-random-models.sh >/dev/null
# The zoo's real networks the tests run (trained classifier exported with
# Debian's CPU torch, the text and layout detectors) and the sample photos.
for name in efficientnet-lite0 ppocr-det picodet-layout samples; do
    bash scripts/zoo-fetch.sh "$name" >/dev/null
done
bash scripts/check-deps.sh
# The allow-list test refuses to skip once the data are known to be there.
export KANN_REQUIRE_DATA=1
cargo test --workspace --locked --no-fail-fast "$@"
