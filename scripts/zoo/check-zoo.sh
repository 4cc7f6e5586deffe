#!/usr/bin/env bash
# Check zoo networks with kann: generate for 2 clusters (KANN_ZOO_CLUSTERS),
# infer (latency), then run a seeded random input (numpy from the venv of
# scripts/fetch-onnx-data.sh) and prove it against kann's reference
# interpreter with kann diff.
#   bash scripts/zoo/check-zoo.sh KANN_BINARY NAME... (models from zoo-fetch.sh)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
kann=$1
shift
py="${KANN_DATA:-$HOME/.cache/kann-data}/venv/bin/python"
clusters=${KANN_ZOO_CLUSTERS:-2}
for name in "$@"; do
    gen=/tmp/zoo-gen/$name io=/tmp/zoo-io/$name
    rm -rf "$gen" "$io" && mkdir -p "$io" "$(dirname "$gen")"
    echo "== $name"
    if ! "$kann" generate "zoo/$name/network.yaml" -d "$gen" --nbr-clusters "$clusters" >"$gen.generate.log" 2>&1; then
        echo "generate FAILED:" && tail -n 5 "$gen.generate.log" && continue
    fi
    grep -E "total: .*FLOP|parameters:" "$gen/log.txt"
    "$kann" infer "$gen" -n 3 2>&1 | grep -E "PERF|rror"
    "$py" - "$gen/network.dump.yaml" "$io" <<'PY'
import sys, numpy as np, re
# network.dump.yaml writes flow lists: input_nodes_name: ["a"], input_nodes_shape: [[1, 3, 224, 224]]
text = open(sys.argv[1]).read()
names = re.findall(r'"([^"]+)"', re.search(r"^input_nodes_name: (.*)$", text, re.M).group(1))
shapes = re.findall(r"\[([\d, ]+)\]", re.search(r"^input_nodes_shape: (.*)$", text, re.M).group(1))
rng = np.random.default_rng(0)
for n, s in zip(names, shapes):
    dims = [int(d) for d in s.split(",")]
    np.save(f"{sys.argv[2]}/{n}.npy", rng.standard_normal(dims).astype(np.float32))
PY
    "$kann" run "$gen" "$io" --nb-frames 1 >"$gen.run.log" 2>&1 || { echo "run FAILED:"; tail -n 5 "$gen.run.log"; continue; }
    "$kann" genref "$gen" "$io" >"$gen.genref.log" 2>&1 || { echo "genref FAILED:"; tail -n 5 "$gen.genref.log"; continue; }
    "$kann" diff "$io" "$io/genref" --top-k 5 2>&1 | tail -n 12
done
