"""Second opinion from ONNX Runtime on a kann IO folder.

    python compare-onnxruntime.py MODEL.onnx IO_DIR [--classes classes.txt]

Reads the input streams kann prepared (IO_DIR/manifest.yaml + <input>.bin),
runs every frame through ONNX Runtime (CPU, graph optimisation ALL), and
compares each output with kann's (IO_DIR/<output>.bin, written by `kann run`):
cosine similarity, max abs error, and for [N, C] outputs the top-1 class of
both. Exit 1 when a top-1 differs or a cosine is below 0.9999. Used to check
the zoo's trained networks against ORT (issue 3 of 4); needs numpy and
onnxruntime (scripts/make-random-models.sh's venv has both).
"""
import argparse
import pathlib
import re
import sys

import numpy as np
import onnxruntime as ort

DTYPES = {"f32": np.float32, "f16": np.float16, "f64": np.float64, "u8": np.uint8,
          "i8": np.int8, "i32": np.int32, "i64": np.int64}


def read_manifest(io_dir):
    """The manifest's tensors as dicts (the small YAML subset kann writes)."""
    tensors, cur = [], None
    for line in (io_dir / "manifest.yaml").read_text().splitlines():
        m = re.match(r"\s*(-\s*)?(\w+):\s*(.*)$", line)
        if not m:
            continue
        if m.group(1):
            cur = {}
            tensors.append(cur)
        key, value = m.group(2), m.group(3).strip()
        if cur is None:
            continue
        if key == "shape":
            cur[key] = [int(x) for x in value.strip("[]").split(",") if x.strip()]
        elif key == "frames":
            cur[key] = int(value)
        else:
            cur[key] = value.strip('"')
    return tensors


def frames(io_dir, t):
    data = np.fromfile(io_dir / t["file"], dtype=DTYPES[t["dtype"]])
    return data.reshape([-1] + t["shape"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("io_dir")
    ap.add_argument("--classes")
    args = ap.parse_args()
    io_dir = pathlib.Path(args.io_dir)
    names = pathlib.Path(args.classes).read_text().splitlines() if args.classes else None
    tensors = read_manifest(io_dir)
    inputs = [t for t in tensors if t["role"] == "input"]
    outputs = [t for t in tensors if t["role"] == "output"]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    ins = {t["name"]: frames(io_dir, t) for t in inputs}
    kann = {t["name"]: frames(io_dir, t) for t in outputs}
    n = min(len(v) for v in ins.values())
    ok = True
    print(f"onnxruntime {ort.__version__}: {args.model}, {n} frame(s)")
    for f in range(n):
        got = sess.run([t["name"] for t in outputs], {k: v[f] for k, v in ins.items()})
        for t, o in zip(outputs, got):
            a = kann[t["name"]][f].astype(np.float64).ravel()
            b = o.astype(np.float64).ravel()
            cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))
            line = f"frame {f} {t['name']}: cosine {cos:.7f}, max abs {np.abs(a - b).max():.3e}"
            if cos < 0.9999:
                ok = False
            if len(t["shape"]) == 2:
                ka, kb = int(a.argmax()), int(b.argmax())
                label = lambda i: f"{i} {names[i]}" if names else str(i)
                line += f", top-1 kann {label(ka)} / onnxruntime {label(kb)}"
                if ka != kb:
                    ok = False
                    line += "  DIFFERENT"
            print(line)
    print("verdict: " + ("PASS" if ok else "FAIL"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
