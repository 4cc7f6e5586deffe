"""Per-node ONNX Runtime times, to set against `kann infer`'s per-step table.

    ~/.cache/kann-data/venv/bin/python scripts/ort-profile.py MODEL.onnx [THREADS (1)] [FRAMES (20)]

Runs the model with profiling on (random inputs, graph optimisation ALL, the given intra-op threads),
after 3 warm-up frames, and prints each node's median kernel time in microseconds, in execution order,
then their sum. ORT names its NCHWc-rewritten nodes after their outputs (`..._nchwc`).
"""
import collections
import json
import os
import sys

import numpy as np
import onnxruntime as ort


def main():
    model = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    frames = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(os.environ.get("TMPDIR", "/tmp"), "kann-ort-profile")
    session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {}
    for i in session.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        feeds[i.name] = rng.random(shape, dtype=np.float32)
    for _ in range(3 + frames):
        session.run(None, feeds)
    path = session.end_profiling()
    with open(path) as f:
        events = json.load(f)
    os.remove(path)
    times, ops = collections.defaultdict(list), {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            name = e["name"][: -len("_kernel_time")]
            times[name].append(e["dur"])
            ops[name] = e["args"].get("op_name", "?")
    total = 0.0
    for name, durations in times.items():
        # The warm-up frames' events come first.
        median = float(np.median(durations[3:] or durations))
        total += median
        print(f"{median:9.1f}  {ops[name]:22s} {name}")
    print(f"{total:9.1f}  TOTAL (median per node, us)")


if __name__ == "__main__":
    main()
