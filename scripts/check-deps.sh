#!/usr/bin/env bash
# The dependency rules of docs/architecture.md, checked on the real crate graph:
# the runtime side stays lean, the reference stays an independent oracle, the
# IR stays format-neutral. Exits 1 naming each broken rule.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
status=0
check() { # crate, forbidden-regex, why
    local crate=$1 forbidden=$2 why=$3
    if ! cargo tree -p "$crate" -e normal --prefix none --locked >/dev/null 2>&1; then
        return 0 # the crate does not exist yet
    fi
    local bad
    bad=$(cargo tree -p "$crate" -e normal --prefix none --locked | awk '{print $1}' | sort -u | grep -xE "$forbidden" | paste -sd' ' || true)
    if [[ -n "$bad" ]]; then
        echo "dependency rule broken: $crate depends on $bad ($why)"
        status=1
    fi
}
check kann-runtime 'kann-(ir|onnx|compiler|reference|config)' "the runtime never links the compiler's world"
check kann-artifact 'kann-(ir|onnx|compiler|reference|runtime)' "the artifact format is read by the runtime alone"
check kann-capi 'kann-(ir|onnx|compiler|reference)' "the C API sits on the runtime alone"
check kann-reference 'kann-(kernels|compiler|runtime)' "the reference is an independent oracle"
check kann-kernels 'kann-(ir|onnx|compiler)' "kernels know tiles, not graphs"
check kann-ir 'kann-onnx' "the IR is format-neutral"
[[ $status == 0 ]] && echo "dependency rules hold"
exit $status
